"""Run the synthetic diamond DAG in a subprocess; SIGKILL itself at event boundary N.

usage: python synthetic_dag.py ROOT KILL_AT (with tests/engine on sys.path)"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tierzero.engine.lock import WorkspaceLock
from engine_helpers import Ledger, diamond, make_runner


def main() -> None:
    root, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    boundaries = 0

    def emit(kind: str, **fields: object) -> None:
        nonlocal boundaries
        if kind in ("step_started", "step_done"):
            boundaries += 1
            if boundaries == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    with WorkspaceLock(root / "state" / "lock", notify=lambda m: print(m, file=sys.stderr)):
        runner = make_runner(root, diamond(Ledger(root / "ledger.txt")), emit=emit, concurrency=2)
        asyncio.run(runner.run())
    print("completed")


if __name__ == "__main__":
    main()
