"""Kill -9 at every step boundary of the real sandbox pipeline, resume each time, and end
with the world an uninterrupted deploy builds: same guests, one cluster, one token, one
machine identity, nodes bootstrapped once; secrets written once and never again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_runs import deploy_process
from sandbox_world import normalized_world

# Dozens of deploys, each killed and resumed: on 2 busy cores this outlasts the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _init(path: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "tierzero", "init", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return path / "tierzero.yaml"


def _deploy(spec: Path, kill_after_new_step_of: set[str] | None = None) -> tuple[bool, list[dict[str, Any]]]:
    """Deploy in the sandbox. With a set: kill -9 the moment a step finishes that is not in it
    (and add it); steps the run skipped as finished are added too (a step can finish between
    the event being read and the kill landing). Returns (killed, events)."""
    done = kill_after_new_step_of
    if done is None:
        return deploy_process(spec)

    def new_step_done(event: dict[str, Any]) -> bool:
        if event["event"] == "step_skipped":
            done.add(event["step"])
        if event["event"] == "step_done" and event["step"] not in done:
            done.add(event["step"])
            return True
        return False

    return deploy_process(spec, new_step_done)


def _secrets(ws: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ws)): p.read_bytes() for p in (ws / "secrets").rglob("*.sops.yaml")}


def test_killed_at_every_step_boundary_ends_in_the_uninterrupted_world(tmp_path: Path) -> None:
    reference = _init(tmp_path / "reference")
    _, events = _deploy(reference)
    steps = {e["step"] for e in events if e["event"] == "step_done"}

    spec = _init(tmp_path / "killed")
    ws = spec.parent / ".tierzero"
    done: set[str] = set()
    first_seen: dict[str, bytes] = {}
    kills = 0
    while True:
        killed, events = _deploy(spec, kill_after_new_step_of=done)
        for name, blob in _secrets(ws).items():  # generated or issued, a secret is written once
            assert first_seen.setdefault(name, blob) == blob, f"{name} changed after a resume (kill {kills})"
        if not killed:
            break
        kills += 1
    print(f"{kills} kill -9 / resume cycles over {len(steps)} steps")  # shown with -s
    assert done == steps, sorted(steps ^ done)
    assert kills >= len(steps) * 3 // 4, f"only {kills} of {len(steps)} step boundaries were hit"
    assert set(first_seen) == set(_secrets(reference.parent / ".tierzero"))

    assert normalized_world(ws) == normalized_world(reference.parent / ".tierzero")
    _, events = _deploy(spec)  # the world is complete: only the push (it looks at the remote every time) and the checks run
    assert [e["step"] for e in events if e["event"] == "step_started"] == ["gitops/main/push", "validate/checks"]


# The steps this blueprint adds on a stock install, and those whose effect spans two stand-ins
# (a VM start boots a Talos machine; pveum changes fakepve's ACL): a kill -9 right after each.
PROXMOX_KILLS = ("hypervisors/api-token", "hypervisors/capabilities", "hypervisors/storage-content", "platform/lab/schematic",
                 "platform/lab/image/pve2", "platform/lab/vm/lab-cp-2", "platform/lab/vm/lab-w-3", "platform/lab/talos",
                 "platform/lab/bootstrap", "services/lxc/infisical")


def test_the_proxmox_blueprint_killed_after_its_stock_install_steps_resumes(tmp_path: Path) -> None:
    def init(path: Path) -> Path:
        proc = subprocess.run([sys.executable, "-m", "tierzero", "init", str(path), "--blueprint", "proxmox"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return path / "tierzero.yaml"

    reference = init(tmp_path / "reference")
    _, events = _deploy(reference)
    steps = {e["step"] for e in events if e["event"] == "step_done"}
    assert set(PROXMOX_KILLS) <= steps
    spec = init(tmp_path / "killed")
    done = steps - set(PROXMOX_KILLS)  # kill only when one of PROXMOX_KILLS finishes
    kills = 0
    while True:
        killed, events = _deploy(spec, kill_after_new_step_of=done)
        if not killed:
            break
        kills += 1
    assert kills >= len(PROXMOX_KILLS) * 3 // 4, f"only {kills} of {len(PROXMOX_KILLS)} kills landed"
    ws = spec.parent / ".tierzero"
    killed_world, reference_world = normalized_world(ws), normalized_world(reference.parent / ".tierzero")
    assert set(killed_world) == set(reference_world)
    for name in reference_world:  # one document at a time, so a difference shows in full
        assert killed_world[name] == reference_world[name], name
    _, events = _deploy(spec)
    assert [e["step"] for e in events if e["event"] == "step_started"] == ["gitops/lab/push", "validate/checks"]
