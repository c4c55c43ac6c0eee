"""`python tests/cli_killed_during.py MOMENT -- tierzero arguments...`: the CLI as a user runs it,
killed with SIGKILL (kill -9) at a moment inside a sandbox host's work: "apt-install" while dpkg
unpacks the Proxmox VE packages, "reboot" while the host is down rebooting. The sandbox saved its
world just before, as the real hosts keep their disks through the kill of tierzero."""

from __future__ import annotations

import os
import signal
import sys

from tierzero.cli import session as session_module


def main(argv: list[str]) -> None:
    split = argv.index("--")
    (moment,) = argv[:split]
    opened = session_module.Session.open

    def open_with_kill(self: session_module.Session):  # type: ignore[no-untyped-def]
        runner = opened(self)
        if self.sandbox is not None:
            from tierzero.sandbox import pve_hosts

            self.sandbox.context[pve_hosts.HOSTS].faults[moment] = lambda host: os.kill(os.getpid(), signal.SIGKILL)
        return runner

    session_module.Session.open = open_with_kill  # type: ignore[method-assign]
    from tierzero.cli.main import run

    run(argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
