"""An environment in which a tierzero process cannot reach the internet, and would tell if it
tried: proxies pointed at a closed port for every HTTP client that honours them (requests,
git, curl), and a `sitecustomize` that refuses (and writes down) any connection or name lookup
of a Python process that is not for loopback."""

from __future__ import annotations

import os
from pathlib import Path

_GUARD = '''
import ipaddress, os, socket

_LOG = os.environ["TIERZERO_OFFLINE_LOG"]


def _note(what):
    with open(_LOG, "a") as handle:
        handle.write(what + "\\n")


def _local(host):
    if host in (None, "", "localhost") or str(host).endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _checked(original):
    def connect(self, address):
        if isinstance(address, tuple) and not _local(address[0]):
            _note(f"connect {address}")
            raise OSError(101, f"offline guard: connect to {address} refused")
        return original(self, address)
    return connect


socket.socket.connect = _checked(socket.socket.connect)
socket.socket.connect_ex = _checked(socket.socket.connect_ex)
_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if not _local(host if not isinstance(host, bytes) else host.decode()):
        _note(f"lookup {host}")
        raise socket.gaierror(socket.EAI_NONAME, f"offline guard: no lookup of {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
'''

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


def offline_env(directory: Path) -> tuple[dict[str, str], Path]:
    """(environment for subprocesses, the file every refused attempt is written to)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_GUARD)
    log = directory / "attempts.log"
    log.write_text("")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(directory), env.get("PYTHONPATH", "")) if p)
    env["TIERZERO_OFFLINE_LOG"] = str(log)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = CLOSED
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env, log
