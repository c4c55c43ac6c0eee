"""The blueprint conformance suite: every built-in blueprint (discovered from the package data,
tierzero/spec/blueprints/*.yaml) goes through the README's main job as a user runs it: init,
check, plan twice (byte-identical), then a sandbox deploy of every phase, twice (the second finds
the world the first built, only looks at the Git remote and checks it), offline; then `validate` and `destroy`. Secrets stay
encrypted and never change. A new blueprint is a new YAML file: nothing here names one."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mermaid_parser import mermaid_parse
from offline_guard import offline_env
from sandbox_world import git_history
from spec_builder import blueprint_names, build_spec

from tierzero.render.diagram import mermaid_blocks

PHASES = ["setup", "cloud", "hypervisors", "platform", "gitops", "services", "validate"]


OFFLINE: dict[str, str] | None = None  # the environment of an offline run (see offline_guard), when a test sets it


def tz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=240, env=OFFLINE)


def deploy(spec: Path) -> list[dict]:
    proc = tz("deploy", "-f", str(spec), "--target", "sandbox", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_blueprints_are_found_in_the_package_data():
    assert {"oci-free-tier", "oci-talos", "proxmox"} <= set(blueprint_names())


@pytest.mark.parametrize("blueprint", blueprint_names())
def test_every_blueprint_checks_renders_the_same_twice_and_redeploys_as_a_no_op(tmp_path, blueprint, monkeypatch):
    """Run offline: proxies at a closed port and every non-loopback connection or lookup of a
    tierzero process refused and written down; none may be attempted."""
    env, attempts = offline_env(tmp_path / "guard")
    monkeypatch.setattr(sys.modules[__name__], "OFFLINE", env)
    built = build_spec(blueprint)
    present = {"cloud": built.oci is not None, "hypervisors": built.has_proxmox, "services": bool(built.services)}
    phases = [p for p in PHASES if present.get(p, True)]
    demo = tmp_path / "demo"
    assert tz("init", str(demo), "--blueprint", blueprint).returncode == 0
    spec = demo / "tierzero.yaml"
    assert tz("check", "-f", str(spec)).returncode == 0
    assert tz("plan", "-f", str(spec)).returncode == 0
    first = read_tree(demo / ".tierzero" / "render")
    assert tz("plan", "-f", str(spec)).returncode == 0
    assert len(first) > 10 and read_tree(demo / ".tierzero" / "render") == first  # byte-identical

    cluster = build_spec(blueprint).clusters[0].name
    events = deploy(spec)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["status"] == "done"
    assert [p for p in PHASES if p in summary["phases"]] == phases
    done = {e["step"] for e in events if e["event"] == "step_done"}
    assert any(s.startswith("services/bootstrap/") for s in done) == bool(built.services)
    assert "validate/checks" in done
    waits = [e["message"] for e in events if e["event"] == "wait"]  # shown as "waiting for <message>"
    assert waits and not [w for w in waits if w.lower().startswith(("waiting", "wait for", "downloading"))]
    ws = demo / ".tierzero"
    for cluster_dir in (ws / "clusters").iterdir():
        for name in ("kubeconfig", "talosconfig"):
            assert stat.S_IMODE(os.stat(cluster_dir / name).st_mode) == 0o600

    secrets_dir = ws / "secrets"
    before = {p: p.read_bytes() for p in secrets_dir.rglob("*.sops.yaml")}
    assert any("infisical" in str(p) for p in before) == bool(built.services) and any("talos" in str(p) for p in before)
    again = deploy(spec)  # the sandbox world persists: nothing is left to do but the checks
    # Only the push (it looks at the remote every time: a file deleted there comes back) and the checks run.
    assert [e["step"] for e in again if e["event"] == "step_started"] == [f"gitops/{cluster}/push", "validate/checks"]
    assert sum(e["event"] == "step_skipped" for e in again) == len(done) - 2
    status = json.loads(tz("status", "-f", str(spec), "--target", "sandbox", "--json").stdout)
    outputs = {s["step"]: s["outputs"] for s in status["steps"]}
    history = git_history(ws)
    (repo, subjects), = history.items()
    assert subjects == [subjects[0]] and subjects[0].startswith(f"{cluster}: GitOps tree from tierzero.yaml")  # one commit, not two
    head = subprocess.run(["git", "--git-dir", str(ws / "sandbox/world/git-forge" / repo), "rev-parse", "main"], capture_output=True, text=True).stdout.strip()
    revision = f"main@sha1:{head}"
    assert outputs[f"gitops/{cluster}/push"]["revision"] == revision and outputs[f"gitops/{cluster}/push"]["pushed"] is False
    ready = outputs[f"gitops/{cluster}/ready"]
    assert ready["revision"] == revision and {"flux-system", "infra-controllers", "infra-configs", "apps"} <= set(ready["kustomizations"])
    after = {p: p.read_bytes() for p in secrets_dir.rglob("*.sops.yaml")}
    assert after == before  # generated or issued by a service (API token, machine identity): written once

    report = json.loads(tz("validate", "-f", str(spec), "--target", "sandbox", "--json").stdout)
    assert report["ok"] is True
    assert {c["status"] for c in report["checks"]} <= {"pass", "skip"}
    flux = next(c for c in report["checks"] if c["check"] == f"{cluster}: Flux reconciled")
    assert flux["status"] == "pass" and f"at {revision}" in flux["evidence"]
    for name in ready["kustomizations"] + ready["helmreleases"]:
        assert name in flux["evidence"]

    # The picture of what was built, with the step times the deploys measured, parses with the real Mermaid parser.
    drawn = tz("diagram", "-f", str(spec), "--target", "sandbox")
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    flow, chart = mermaid_parse(mermaid_blocks(drawn.stdout))
    assert flow["ok"] and chart["ok"], (flow.get("error"), chart.get("error"))
    assert {t["name"].split(" ")[0] for t in chart["tasks"]} == {s["step"] for s in status["steps"] if s["status"] == "done"} >= done
    assert all(t["done"] for t in chart["tasks"]) and any(t["end"] - t["start"] > 1 for t in chart["tasks"])
    for name, inst in ((outputs.get("cloud/oci") or {}).get("instances") or {}).items():  # where the deploy put each instance
        assert inst["private_ip"] in flow["nodes"][f"oci_{name}".replace("-", "_")]

    gone = tz("destroy", "-f", str(spec), "--target", "sandbox")  # fails if any guest is left in the sandbox Proxmox
    assert gone.returncode == 0, gone.stdout[-2000:] + gone.stderr[-2000:]
    assert "destroyed (sandbox)" in gone.stdout and not (ws / "sandbox" / "world").exists()
    # Four sandbox sessions (two deploys, validate, destroy) served one TLS pair for the Kubernetes API.
    assert sorted(p.name for p in (ws / "sandbox" / "kube-tls").iterdir()) == ["kube.crt", "kube.key"]
    assert attempts.read_text() == ""  # nothing tried to leave the machine


def test_no_generated_secret_in_plaintext_anywhere(tmp_path):
    from tierzero.workspace import Workspace
    from tierzero.workspace.secrets import WorkspaceSecrets

    demo = tmp_path / "demo"
    assert tz("init", str(demo)).returncode == 0
    spec = demo / "tierzero.yaml"
    events = deploy(spec)
    store = WorkspaceSecrets(Workspace.beside(spec), demo)
    values = [store.get(name) for name in store.names() if name.startswith("infisical/")]
    values = [v for v in values if v and len(v) >= 12]
    assert len(values) >= 4  # admin password, database password, keys, client secret
    haystacks = [json.dumps(events).encode()]
    for path in (demo / ".tierzero").rglob("*"):
        if path.is_file() and "secrets" not in path.relative_to(demo).parts:
            haystacks.append(path.read_bytes())
    for value in values:
        assert not any(value.encode() in hay for hay in haystacks)
