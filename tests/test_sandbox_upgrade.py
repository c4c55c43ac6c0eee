"""A rolling upgrade of a 3-control-plane sandbox cluster, Talos v1.13.8 -> v1.13.9 and
Kubernetes 1.35.3 -> 1.36.2, killed with SIGKILL twice in the middle (a node rebooting into the
new Talos, then a node taking its new Kubernetes), resumed by plain deploys: it finishes with every
node at both targets, no node upgraded twice, in the order control planes one at a time. A node
whose new Talos does not boot stops the roll there, and the next deploy resumes at that node."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from tierzero.adapters.retry import Policy
from tierzero.cli.session import Session
from tierzero.engine.state import StateStore
from tierzero.sandbox import talos
from tierzero.sandbox.world import World
from tierzero.workspace import Workspace

from sandbox_runs import deploy_process as _deploy, starter_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OLD = ("v1.13.8", "1.35.3")
NEW = ("v1.13.9", "1.36.2")


def _versions(spec: Path, talos: str, kubernetes: str) -> None:
    text = spec.read_text()
    for key, value in (("talos_version", talos), ("kubernetes_version", kubernetes)):
        lines = [line for line in text.splitlines() if line.strip().startswith(f"{key}:")]
        assert len(lines) == 1, lines
        indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
        text = text.replace(lines[0], f"{indent}{key}: {value}")
    spec.write_text(text)


def _done(events: list[dict[str, Any]]) -> set[str]:
    return {e["step"] for e in events if e["event"] == "step_done"}


def _outputs(spec: Path, step: str) -> dict[str, Any]:
    store = StateStore.open(spec.parent / ".tierzero" / "state", "sandbox")
    try:
        return dict(store.records()[step].outputs)
    finally:
        store.close()


def _world(spec: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(Talos version per machine hostname, kubelet version per Node) as the sandbox keeps them."""
    world = World.open(Workspace(spec.parent / ".tierzero"))
    talos = world.file("talos").load() or {}
    kube = world.file("kubernetes-main").load() or {}
    nodes = next(items for prefix, _ns, plural, items in kube["objects"] if prefix == "/api/v1" and plural == "nodes")
    return ({m["hostname"]: m["image"]["version"] for m in talos["machines"].values()},
            {name: obj["status"]["nodeInfo"]["kubeletVersion"] for name, obj in nodes.items()})


def _is_wait(step: str, text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "wait" and e.get("step") == step and text in str(e.get("message", ""))


def test_upgrade_killed_twice_resumes_and_finishes(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    _versions(spec, *OLD)
    _deploy(spec)
    talos, kubelets = _world(spec)
    assert sorted(talos.values()) == [OLD[0]] * 3 and sorted(kubelets.values()) == [f"v{OLD[1]}"] * 3

    _versions(spec, *NEW)
    plan = subprocess.run([sys.executable, "-m", "tierzero", "deploy", "-f", str(spec), "--target", "sandbox", "--dry-run", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr[-2000:]
    running = [p["step"] for p in json.loads(plan.stdout)["plan"] if p["action"] == "run"]
    roll = [s for s in running if s.startswith(("platform/main/upgrade/", "platform/main/config/"))]
    assert roll == [f"platform/main/{kind}/cp-{i}" for kind in ("upgrade", "config") for i in (1, 2, 3)]

    # kill -9 once cp-2 acknowledged its upgrade and is rebooting into v1.13.9
    killed, first = _deploy(spec, _is_wait("platform/main/upgrade/cp-2", "back at Talos"))
    assert killed
    done = _done(first)
    assert "platform/main/upgrade/cp-1" in done and _outputs(spec, "platform/main/upgrade/cp-1")["upgraded"] is True
    assert "platform/main/upgrade/cp-2" not in done

    # kill -9 once cp-2 took its new machine config (Kubernetes 1.36.2), before it is seen healthy
    killed, second = _deploy(spec, _is_wait("platform/main/config/cp-2", "services healthy"))
    assert killed
    done = _done(second)
    assert {"platform/main/upgrade/cp-2", "platform/main/upgrade/cp-3", "platform/main/config/cp-1"} <= done
    # cp-2 rebooted into the new Talos while tierzero was dead: the resume sees it there and leaves it
    assert _outputs(spec, "platform/main/upgrade/cp-2") == {"node": "cp-2", "from": NEW[0], "to": NEW[0], "upgraded": False}
    assert _outputs(spec, "platform/main/upgrade/cp-3")["upgraded"] is True
    assert _outputs(spec, "platform/main/config/cp-1")["applied"] is True
    assert "platform/main/upgrade/cp-1" not in done  # finished before the first kill: not run again

    killed, third = _deploy(spec)
    assert not killed
    done = _done(third)
    assert {"platform/main/config/cp-2", "platform/main/config/cp-3", "validate/checks"} <= done
    assert not {s for s in done if s.startswith("platform/main/upgrade/")}  # every Talos upgrade finished before
    talos, kubelets = _world(spec)
    assert talos == {"cp-1": NEW[0], "cp-2": NEW[0], "cp-3": NEW[0]}
    assert kubelets == {"cp-1": f"v{NEW[1]}", "cp-2": f"v{NEW[1]}", "cp-3": f"v{NEW[1]}"}

    _, fourth = _deploy(spec)
    assert not {s for s in _done(fourth) if s.startswith(("platform/main/upgrade/", "platform/main/config/"))}


def test_a_node_whose_upgrade_fails_stops_the_roll_and_the_next_deploy_resumes_there(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    _versions(spec, *OLD)
    _deploy(spec)
    _versions(spec, *NEW)
    session = Session(spec, "sandbox")
    with session as runner:
        cp2 = next(n for n in session.sandbox.context[talos.MACHINES].machines.values() if n.hostname == "cp-2")
        cp2.fail_upgrades = 1  # v1.13.9 does not boot on cp-2: Talos comes back at v1.13.8
        runner.connections.retry.wait = Policy(base=0.05, cap=0.2, deadline=3.0)  # fail in seconds, not the sandbox's 2 minutes
        with pytest.raises(Exception, match="platform/main/upgrade/cp-2"):
            asyncio.run(runner.run())
        records = runner.state.records()
    assert records["platform/main/upgrade/cp-1"].status == "done"
    failed = records["platform/main/upgrade/cp-2"]
    assert failed.status == "failed" and "cp-2 runs v1.13.8" in str(failed.last_error), failed.last_error
    assert records["platform/main/upgrade/cp-3"].outputs["to"] == OLD[0]  # what the first deploy left: not run this time
    assert _world(spec)[0] == {"cp-1": NEW[0], "cp-2": OLD[0], "cp-3": OLD[0]}  # cp-3 untouched

    _, events = _deploy(spec)  # the fault is gone (a new run, a node that boots): the roll resumes at cp-2
    done = _done(events)
    assert {"platform/main/upgrade/cp-2", "platform/main/upgrade/cp-3"} <= done and "platform/main/upgrade/cp-1" not in done
    assert _outputs(spec, "platform/main/upgrade/cp-2") == {"node": "cp-2", "from": OLD[0], "to": NEW[0], "upgraded": True}
    assert _world(spec) == ({"cp-1": NEW[0], "cp-2": NEW[0], "cp-3": NEW[0]}, {f"cp-{i}": f"v{NEW[1]}" for i in (1, 2, 3)})
