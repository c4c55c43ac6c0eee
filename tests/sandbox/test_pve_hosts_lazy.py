"""The stand-in hosts listen from the start but load asyncssh only when the first SSH client
connects (a no-op sandbox re-run opens no SSH connection: importing asyncssh runs ldconfig, gcc
and ld to look for liboqs). A client must not see the difference: the server answers the
connection that woke it, and a host taken offline before any client refuses connections."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

from tierzero.sandbox.pve_hosts import start_pve_hosts

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx7iF0xpbzLqh1vS0b7Jr4gGw0G2Ri0aXJpn0yFqOaK test"


def _banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.settimeout(30)
        return conn.recv(64)


def test_asyncssh_loads_at_the_first_connection_which_it_then_serves(tmp_path) -> None:
    key = tmp_path / "id.pub"
    key.write_text(KEY)
    code = textwrap.dedent(f"""
        import json, socket, sys
        from tierzero.sandbox.pve_hosts import start_pve_hosts
        hosts = start_pve_hosts([("pve1", "192.168.10.11")], {str(key)!r})
        before = "asyncssh" in sys.modules
        with socket.create_connection(("127.0.0.1", hosts.hosts["pve1"].port), timeout=30) as conn:
            conn.settimeout(30)
            banner = conn.recv(64).decode(errors="replace")
        print(json.dumps({{"before": before, "after": "asyncssh" in sys.modules, "banner": banner}}))
        hosts.stop()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["before"] is False and seen["after"] is True
    assert seen["banner"].startswith("SSH-2.0-")


def test_a_host_taken_offline_before_any_client_refuses_then_answers_when_back(tmp_path) -> None:
    key = tmp_path / "id.pub"
    key.write_text(KEY)
    hosts = start_pve_hosts([("pve1", "192.168.10.11"), ("pve2", "192.168.10.12")], key)
    try:
        port = hosts.hosts["pve1"].port
        hosts.set_offline("pve1")
        try:
            _banner(port)
            raise AssertionError("an offline host accepted a connection")
        except ConnectionRefusedError:
            pass
        assert _banner(hosts.hosts["pve2"].port).startswith(b"SSH-2.0-")  # the other host is not affected
        hosts.set_offline("pve1", False)
        assert hosts.hosts["pve1"].port == port  # back on the port its endpoint names
        assert _banner(port).startswith(b"SSH-2.0-")
    finally:
        hosts.stop()
