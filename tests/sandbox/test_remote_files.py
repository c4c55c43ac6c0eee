"""render/remote_files.write_file_script: run by a real POSIX sh, a file appears whole with its
mode or not at all; the stand-in hosts run the same script (sh -c, umask, mv) and refuse it
without sudo where the real image refuses; the phases that write host files use it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spec_builder import build_spec
from tierzero.adapters.connections import Connections
from tierzero.adapters.ssh import close_all, ssh_client
from tierzero.render.remote_files import temporary_path, write_file_script
from tierzero.sandbox.pve_hosts import PveHosts, cloud_boots, hosts_for_spec, port_repositories, public_addresses, start_pve_hosts
from tierzero.workspace.layout import Workspace


def _sh(script: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", script], input=data, capture_output=True, timeout=30,
                          preexec_fn=lambda: os.umask(0o022))


def test_a_real_shell_writes_the_file_private_from_its_first_byte(tmp_path: Path) -> None:
    target = tmp_path / "snippets" / "tierzero-cp-1-user.yaml"
    assert _sh(write_file_script(str(target), "0600"), b"machine: {}\n").returncode == 0
    assert target.read_bytes() == b"machine: {}\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == [target.name]  # no temporary file left behind
    assert _sh(write_file_script(str(target), "0644"), b"second\n").returncode == 0
    assert target.read_bytes() == b"second\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_write_cut_off_midway_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "interfaces.d" / "tierzero-gateway"
    target.parent.mkdir()
    target.write_text("old stanza\n")
    proc = subprocess.Popen(["sh", "-c", write_file_script(str(target), "0644")], stdin=subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(b"half of the new")
    proc.stdin.flush()
    tmp = Path(temporary_path(str(target)))
    try:
        deadline = time.monotonic() + 30
        while not (tmp.exists() and tmp.read_bytes() == b"half of the new"):  # `cat` has written the half
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.005)
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600  # private while incomplete, whatever the final mode
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the connection drops
        proc.wait(timeout=30)
    assert target.read_text() == "old stanza\n"
    assert tmp.name.startswith(".")  # ifupdown2's `source interfaces.d/*` and apt skip dot files


@pytest.mark.parametrize(("path", "mode"), [("relative/file", "0600"), ("/etc/x", "rw"), ("/etc/", "0600")])
def test_bad_arguments_are_refused(path: str, mode: str) -> None:
    with pytest.raises(ValueError):
        write_file_script(path, mode)


@pytest.fixture
def cloud_hosts(ws: Workspace) -> Iterator[PveHosts]:
    spec = build_spec("oci-free-tier")
    nodes, witnesses = hosts_for_spec(spec)
    started = start_pve_hosts(nodes, ws.ssh_public_key, witnesses=witnesses, public=public_addresses(spec), kvm=True,
                              cloud=cloud_boots(spec), repositories=port_repositories(spec))
    yield started
    started.stop()


async def test_the_stand_in_runs_the_script_as_root_only_under_sudo(cloud_hosts: PveHosts, ws: Workspace) -> None:
    conns = cloud_hosts.connections(Connections(target="sandbox", ssh_key=ws.ssh_key, known_hosts=ws.root / "known_hosts"))
    ssh = ssh_client(conns, "pve1", login="debian", workspace_root=ws.root)
    path = "/etc/apt/sources.list.d/pxvirt.sources"
    try:
        refused = await ssh.run(write_file_script(path, "0644"), input="Types: deb\n", check=False)
        assert refused.exit_status != 0 and path not in cloud_hosts.hosts["pve1"].files
        await ssh.run(write_file_script(path, "0644", sudo=True), input="Types: deb\n")
        files = cloud_hosts.hosts["pve1"].files
        assert files[path] == b"Types: deb\n" and temporary_path(path) not in files
        missing = await ssh.run("sudo mv -f /etc/none /etc/other", check=False)
        assert missing.exit_status == 1 and "cannot stat '/etc/none'" in missing.stderr
    finally:
        await close_all(conns)
