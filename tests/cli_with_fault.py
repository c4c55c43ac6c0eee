"""`python tests/cli_with_fault.py METHOD PATH STATUS MESSAGE -- tierzero arguments...`: the CLI
as a user runs it, with one permanent Proxmox API refusal injected through the sandbox's own
fault switch (fakepve `fail`, as in tests/test_sandbox_faults.py), for tests that must watch the
CLI in a real terminal (a child process on a pseudo-terminal)."""

from __future__ import annotations

import sys

from tierzero.cli import session as session_module


def main(argv: list[str]) -> None:
    split = argv.index("--")
    method, path, status, message = argv[:split]
    opened = session_module.Session.open

    def open_with_fault(self: session_module.Session):  # type: ignore[no-untyped-def]
        runner = opened(self)
        if self.sandbox is not None:
            from tierzero.sandbox import fakepve

            self.sandbox.context[fakepve.SERVER].pve.fail(method, path, int(status), message)
        return runner

    session_module.Session.open = open_with_fault  # type: ignore[method-assign]
    from tierzero.cli.main import run

    run(argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
