"""The upgrade path rules (`tierzero.render.upgrade_path`): Talos never downgraded nor a minor
skipped, Kubernetes one minor at a time, both within Talos' support matrix, control planes first."""

from __future__ import annotations

import pytest

from tierzero.render import upgrade_path
from tierzero.render.upgrade_path import NodeVersions
from tierzero.spec.semantic import supported_versions


@pytest.mark.parametrize(("current", "target", "problem"), [
    ("v1.13.8", "v1.13.9", None),
    ("v1.13.9", "v1.13.9", None),
    ("v1.12.11", "v1.13.0", None),
    ("v1.12.3", "v1.13.9", None),  # not the newest 1.12 patch first: advice only, not refused
    ("v1.11.6", "v1.13.9", "skips a minor release"),
    ("v1.13.9", "v1.13.8", "older than the v1.13.9 it runs"),
    ("v1.13.0", "v1.12.11", "talosctl rollback"),
])
def test_talos_paths(current: str, target: str, problem: str | None) -> None:
    found = upgrade_path.talos_problem(current, target)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.parametrize(("current", "target", "problem"), [
    ("v1.35.3", "1.36.2", None),
    ("1.36.0", "1.36.2", None),
    ("v1.34.1", "1.36.2", "skips a minor release"),
    ("v1.36.2", "1.35.3", "not downgraded"),
])
def test_kubernetes_paths(current: str, target: str, problem: str | None) -> None:
    found = upgrade_path.kubernetes_problem(current, target)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_the_running_kubernetes_must_be_supported_by_the_new_talos() -> None:
    matrix = supported_versions()
    assert upgrade_path.support_problem("v1.13.9", "v1.36.2", matrix) is None
    problem = upgrade_path.support_problem("v1.13.9", "v1.30.4", matrix)
    assert problem is not None and "supports Kubernetes 1.31 to 1.36, not 1.30.4" in problem and "support matrix v1.13" in problem
    assert "not in tierzero's support matrix" in str(upgrade_path.support_problem("v1.99.0", "1.36.0", matrix))


def test_check_names_every_node_with_its_problem_and_the_order_is_control_planes_first() -> None:
    nodes = [NodeVersions("w-1", "worker", "v1.12.11", "v1.35.3"), NodeVersions("cp-1", "controlplane", "v1.11.6", "v1.35.3"),
             NodeVersions("cp-2", "controlplane", "v1.13.9", "v1.36.2")]
    problems = upgrade_path.check(nodes, "v1.13.9", "1.36.2", supported_versions())
    assert len(problems) == 1 and problems[0].startswith("cp-1: Talos v1.11.6 -> v1.13.9 skips a minor release")
    assert upgrade_path.order(nodes) == ["cp-1", "cp-2", "w-1"]
    with pytest.raises(ValueError, match="not a version"):
        upgrade_path.parse("latest")
