"""A deploy killed with `kill -9` while terraform/tofu applies takes its children with it: the
kernel signals them (PR_SET_PDEATHSIG), the tool stops gracefully, writes its state and
releases its state lock, and nothing of the run is left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierzero.adapters.child import tied_to_this_process

pytestmark = pytest.mark.slow


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, command name, state) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        out[int(entry.name)] = (int(ppid), name, state)
    return out


def _descendants(root: int) -> dict[int, str]:
    procs = _processes()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, name, _) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = name
                frontier.append(pid)
    return found


def _alive(pids: set[int]) -> set[int]:
    procs = _processes()
    return {pid for pid in pids if pid in procs and procs[pid][2] not in ("Z", "X")}  # a zombie has exited


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def test_kill_9_of_a_deploy_stops_the_terraform_it_started(tmp_path: Path) -> None:
    init = subprocess.run([sys.executable, "-m", "tierzero", "init", str(tmp_path / "demo")], capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    spec = tmp_path / "demo" / "tierzero.yaml"
    # Each twin instance create takes 10 minutes: the apply is surely running when the kill lands.
    env = {**os.environ, "TIERZERO_TWIN_CREATE_SECONDS": "600"}
    deploy = subprocess.Popen([sys.executable, "-m", "tierzero", "deploy", "-f", str(spec), "--target", "sandbox", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert deploy.stdout is not None
        for line in deploy.stdout:
            if json.loads(line).get("step") == "cloud/oci":
                break
        tools = ("terraform", "tofu")

        def applying() -> dict[int, str]:
            tree = _descendants(deploy.pid)
            return tree if any(n in tools for n in tree.values()) and "sleep" in tree.values() else {}

        tree = _wait_for(applying, 180, "terraform to run an instance create")
    finally:
        os.kill(deploy.pid, signal.SIGKILL)
        deploy.wait(timeout=60)
    tool_pids = {pid for pid, name in tree.items() if name in tools}
    assert tool_pids, tree
    # Gracefully stopped: the tool kills the create it ran, records the state and exits.
    _wait_for(lambda: not _alive(set(tree)), 120, f"the deploy's children {tree} to exit")
    cloud = spec.parent / ".tierzero" / "cloud"
    assert (cloud / "terraform.tfstate").exists()
    assert not (cloud / ".terraform.tfstate.lock.info").exists(), "the state lock was released"


def test_a_child_started_from_a_worker_thread_dies_with_the_process(tmp_path: Path) -> None:
    """The signal follows the thread that started the child: the adapters start theirs from the
    thread that waits for them, so it lives as long as they do. Here: a parent process that
    starts `sleep` and is then killed with SIGKILL."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "from tierzero.adapters.child import tied_to_this_process\n"
        "argv, options = tied_to_this_process(['sleep', '600'])\n"
        "child = subprocess.Popen(argv, **options)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    _wait_for(lambda: _processes().get(child, (0, ""))[1] == "sleep", 60, "the child to exec sleep")
    assert os.getpgid(child) == child != os.getpgid(parent.pid), "the child has a process group of its own"
    parent.kill()
    parent.wait(timeout=60)
    _wait_for(lambda: not _alive({child}), 60, "the child to die with its parent")


def test_the_command_is_wrapped_to_set_the_death_signal() -> None:
    argv, options = tied_to_this_process(["tofu", "apply"], signal.SIGINT)
    assert options == {"process_group": 0}
    assert argv[1:3] == ["--pdeathsig", "INT"] and argv[-3:] == [str(os.getpid()), "tofu", "apply"]


def test_a_child_whose_parent_died_before_the_signal_was_set_does_not_run() -> None:
    """The window between fork and prctl: the wrapper sees it has another parent and exits."""
    argv, options = tied_to_this_process(["echo", "ran"])
    argv[argv.index(str(os.getpid()))] = "1"  # as if our pid were another: the parent the child sees is not it
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, **options)
    assert proc.returncode == 129 and proc.stdout == ""
    argv, options = tied_to_this_process(["echo", "ran"])
    assert subprocess.run(argv, capture_output=True, text=True, timeout=60, **options).stdout == "ran\n"
