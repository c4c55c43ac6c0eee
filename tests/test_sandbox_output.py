"""What a person sees of a starter sandbox deploy, and what the run log keeps.

- In a pipe (CI) and on a terminal the deploy prints at most 40 lines, with no commands in them.
- A failed step's cause and remedy are on an 80x24 terminal's final screen.
- The run log holds every request the run sent, as seen from the other side: each SSH command
  the stand-in hosts executed, each Talos RPC the stand-in nodes answered, each HTTP request the
  client libraries put on the wire (Proxmox, Kubernetes, OCI, Infisical, the Image Factory), each tofu invocation;
  and no secret tierzero knows appears in it, although one is sent inside an SSH command."""

from __future__ import annotations

import json
import os
import re
import secrets as pysecrets
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pty_screen import run_on_pty
from sandbox_runs import starter_project

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
PHASES = ("setup", "cloud", "hypervisors", "platform", "gitops", "services", "validate")
COMMAND_WORDS = re.compile(r"\b(pvecm|pveum|pveversion|ssh-keygen|dpkg|apt-get|qm|pct|GET|POST|ApplyConfiguration|terraform|tofu)\b")
# The starter's steps: with the hosts' Debian image (cloud/host-image), the host preparation of each A1 instance,
# the VM network (zone, gateway), the GitOps handover (flux-components, deploy-key, push, sops-age, bootstrap,
# ready), each host's APT repositories, the pinned API certificate (hypervisors/api-ca), and the roll
# (versions, then upgrade and config per control plane).
STEPS = 48
MAX_LINES = STEPS + 16  # one line per step, a warning per host without /dev/kvm (A1), the summary


def _log_path(last_line: str, cwd: Path | None = None) -> Path:
    assert last_line.startswith("log: "), last_line
    path = (cwd or Path.cwd()) / last_line.removeprefix("log: ").split(" (")[0]
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    return path


def test_starter_deploy_in_a_pipe_prints_one_line_per_step_and_no_commands(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "tierzero", "deploy", "-f", str(spec), "--target", "sandbox"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert not [line for line in lines if COMMAND_WORDS.search(line)]
    events = [json.loads(line) for line in _log_path(lines[-1]).with_suffix(".jsonl").read_text().splitlines()]
    steps = [e["step"] for e in events if e["event"] == "step_done"]
    assert len(steps) == STEPS
    for step in steps:  # every step finished on exactly one line of its own
        assert sum(line.split(": ")[0].endswith(f" {step}") for line in lines) == 1, step
    assert any(line.startswith("deployed (sandbox) in ") for line in lines)
    assert any(line.strip().startswith("kubeconfig: ") for line in lines)


def test_starter_deploy_on_a_terminal_shows_one_line_per_phase(tmp_path: Path) -> None:
    starter_project(tmp_path)
    screen = run_on_pty([sys.executable, "-m", "tierzero", "deploy", "-f", "tierzero.yaml", "--target", "sandbox"], cols=100, rows=200,
                        cwd=tmp_path)
    assert screen.exit_code == 0, screen.text
    assert len(screen.lines) <= MAX_LINES, screen.text
    for phase in PHASES:  # each phase collapsed to one finished line
        assert sum(line.startswith(f"✓ {phase} ") for line in screen.lines) == 1, screen.text
    assert b"\x1b[1A" in screen.raw or b"\x1b[A" in screen.raw  # the view was redrawn in place (cursor up)
    assert not [line for line in screen.lines if COMMAND_WORDS.search(line)]
    assert any(line.startswith("deployed (sandbox) in ") for line in screen.lines)
    _log_path(screen.lines[-1], tmp_path)


def test_a_failed_step_shows_its_cause_and_remedy_on_one_terminal_screen(tmp_path: Path) -> None:
    starter_project(tmp_path)
    refusal = "Permission check failed (/vms/1000, VM.Allocate)"
    screen = run_on_pty([sys.executable, str(TESTS / "cli_with_fault.py"), "POST", "/qemu", "403", refusal, "--",
                         "deploy", "-f", "tierzero.yaml", "--target", "sandbox"], cols=80, rows=24, cwd=tmp_path)
    assert screen.exit_code == 1, screen.text
    text = " ".join(screen.text.split())  # the cause wraps at 80 columns
    assert "Permission check failed" in text and "VM.Allocate" in text
    assert "remedy: the API token lacks a privilege" in text
    assert any(line.startswith("✗ platform ") for line in screen.lines)
    assert any(line.startswith("deploy failed (sandbox)") for line in screen.lines)
    assert sum(line.startswith("✓ ") for line in screen.lines) == 3  # setup, cloud, hypervisors finished before
    _log_path(screen.lines[-1], tmp_path)


def _http_key(kind: str, method: str, path: str) -> tuple[str, str, str]:
    path = path.split("?")[0]
    if kind == "proxmox":
        path = path.removeprefix("/api2/json")
    return kind, method.upper(), path


def test_the_run_log_holds_every_request_sent_and_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    import urllib3

    from tierzero.cli import main as cli_main
    from tierzero.cli import output
    from tierzero.cli import session as session_module
    from tierzero.workspace import Workspace
    from tierzero.workspace.secrets import WorkspaceSecrets, process_redactor

    spec = starter_project(tmp_path)
    doc = yaml.safe_load(spec.read_text())
    doc["hypervisors"]["proxmox"]["tailscale"] = {"enabled": True, "auth_key": "env:TS_AUTHKEY"}
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    auth_key = "tskey-auth-" + pysecrets.token_hex(20)  # the stand-in host, like Tailscale, wants this shape
    monkeypatch.setenv("TS_AUTHKEY", auth_key)

    sessions: list = []
    opened = session_module.Session.open

    def keep(self):  # type: ignore[no-untyped-def]
        sessions.append(self)
        return opened(self)

    monkeypatch.setattr(session_module.Session, "open", keep)
    on_the_wire: list[tuple[int, str, str]] = []
    urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def recording_urlopen(pool, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        on_the_wire.append((pool.port, method, url))
        return urlopen(pool, method, url, *args, **kwargs)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", recording_urlopen)
    import httpx2  # the Kubernetes client's transport (lightkube)

    send = httpx2.Client.send

    def recording_send(client, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        on_the_wire.append((request.url.port, request.method, request.url.raw_path.decode()))
        return send(client, request, *args, **kwargs)

    monkeypatch.setattr(httpx2.Client, "send", recording_send)
    from tierzero.adapters.tunnel import BastionTunnel, Forward

    forwarded: dict[int, tuple[str, int]] = {}  # a cloud spec's private addresses: local port of the forward -> address
    forward = BastionTunnel.forward

    def recording_forward(tunnel: BastionTunnel, host: str, port: int) -> Forward:
        opened = forward(tunnel, host, port)
        forwarded[opened.local_port] = (host, port)
        return opened

    monkeypatch.setattr(BastionTunnel, "forward", recording_forward)
    invoked: list[list[str]] = []
    popen = subprocess.Popen

    class RecordingPopen(popen):  # type: ignore[misc,valid-type]
        def __init__(self, args, *rest, **kwargs):  # type: ignore[no-untyped-def]
            names = [Path(str(a)).name for a in args] if isinstance(args, (list, tuple)) else []
            # the tool may come after the wrapper that ties it to this process (tierzero.adapters.child)
            tool = next((i for i, name in enumerate(names) if name in ("tofu", "terraform")), None)
            if tool is not None:
                invoked.append([names[tool], *map(str, args[tool + 1:])])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)

    cli_main._register()
    assert output.invoke(cli_main.app, ["deploy", "-f", str(spec), "--target", "sandbox"]) == 0
    lines = capsys.readouterr().out.splitlines()
    log = _log_path(lines[-1])
    events = [json.loads(line) for line in log.with_suffix(".jsonl").read_text().splitlines()]
    logged = [e for e in events if e["event"] == "call"]
    assert all(e["step"] for e in logged)  # every request belongs to the step that sent it

    box = sessions[0].sandbox
    from tierzero.sandbox import pve_hosts, talos

    context, endpoints = box.context, box.connections.endpoints
    redact = process_redactor().redact
    seen: Counter = Counter()
    for host, command in context[pve_hosts.HOSTS].commands:
        seen["ssh", host, redact(command)] += 1
    for node in context[talos.MACHINES].machines.values():  # no VM is removed in a deploy: every machine is still there
        seen.update(("talos", method) for method in node.calls)
    kind_of_port = {ep.port: kind for (kind, _), ep in endpoints.items() if kind in ("proxmox", "kubernetes", "oci", "infisical", "http")}
    from tierzero.sandbox import bastion

    kind_of_address = {address: kind for (kind, _), address in bastion.stands_for(context).items()}
    kind_of_port.update({port: kind_of_address[address] for port, address in forwarded.items()})
    assert forwarded, "the sandbox reaches the private addresses through the bastion"
    for port, method, url in on_the_wire:
        if port in kind_of_port:
            seen[_http_key(kind_of_port[port], method, url)] += 1
    seen.update(("tofu", " ".join(argv)) for argv in invoked)

    recorded: Counter = Counter()
    for e in logged:
        if e["via"] == "ssh":
            recorded["ssh", e["target"], e["request"]] += 1
        elif e["via"] == "talos":
            recorded["talos", e["request"].split()[0]] += 1
        elif e["via"] == "tofu":
            recorded["tofu", e["request"]] += 1
        else:
            method, path = e["request"].split()[:2]
            recorded[_http_key(e["via"], method, path)] += 1
    assert {key[0] for key in seen} == {"ssh", "talos", "proxmox", "kubernetes", "oci", "infisical", "tofu", "http"}  # http: the Image Factory
    assert not seen - recorded, f"sent but not in the log: {sorted(seen - recorded)[:10]}"
    # The GitOps handover: each git run against the remote and each deploy-key API request, under its step.
    from tierzero.sandbox import git_forge

    git_runs = [(e["step"], " ".join(e["request"].split()[:2])) for e in logged if e["via"] == "git"]
    assert git_runs.count(("gitops/main/push", "git push")) == context[git_forge.SERVER].pushes == 1
    assert ("gitops/main/push", "git ls-remote") in git_runs and ("gitops/main/deploy-key", "ssh-keyscan -p") in git_runs
    assert any(e["step"] == "gitops/main/deploy-key" and e["request"].startswith("POST /repos/") and e["request"].endswith("/keys")
               for e in logged if e["via"] == "http")

    assert any(e["request"].startswith("tailscale up --authkey=*** --hostname=pve1") for e in logged if e["via"] == "ssh")
    store = WorkspaceSecrets(Workspace.beside(spec), spec.parent)
    known = {name: store.get(name) for name in store.names()} | {"env:TS_AUTHKEY": auth_key}
    known = {name: value for name, value in known.items() if value and len(value) >= 8}
    assert len(known) >= 6
    for path in (log, log.with_suffix(".jsonl")):
        text = path.read_text()
        assert not [name for name, value in known.items() if value in text], path
    assert stat.S_IMODE(os.stat(log.parent).st_mode) == 0o700
