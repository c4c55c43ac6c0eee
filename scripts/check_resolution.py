#!/usr/bin/env python3
"""Install the project and fail if pip's resolver had to backtrack to do it.

    python scripts/check_resolution.py [PIP INSTALL ARGS...]     (default: -e '.[test]')

Why a count and not a time: how long an install takes depends on the network and the machine,
but whether the resolver rejected a candidate depends only on the dependency bounds and what
the index serves. pip reports each package whose candidates it starts rejecting with one line
"INFO: pip is looking at multiple versions of NAME ..." (pip/_internal/resolution/resolvelib/
reporter.py, PipReporter.rejecting_candidate; pip >= 20.3). A new upstream release that
conflicts with our bounds (as kubernetes 37.0.2 did with oci over python-dateutil) shows up
here as a failed CI run naming the package, before it turns a clean install into minutes of
backtracking. Prints the packages installed and the wall time; exits 1 on any backtracking.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_BACKTRACK = re.compile(r"pip is (?:still )?looking at multiple versions of (\S+) to determine")


def backtracked(pip_output: str) -> list[str]:
    """The packages pip's resolver rejected candidates of, in the order it reported them."""
    return list(dict.fromkeys(m.group(1) for m in _BACKTRACK.finditer(pip_output)))


def main(argv: list[str]) -> int:
    args = argv or ["-e", ".[test]"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        started = time.monotonic()
        # Not -q: pip logs the backtracking notice at INFO level.
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--report", str(report), *args],
                              capture_output=True, text=True)
        elapsed = time.monotonic() - started
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            sys.stderr.write(output)
            print(f"check_resolution: pip install failed (exit {proc.returncode})", file=sys.stderr)
            return proc.returncode
        installed = json.loads(report.read_text()).get("install", [])
    names = backtracked(output)
    print(f"check_resolution: resolved {len(installed)} packages in {elapsed:.1f} s")
    if names:
        print(f"check_resolution: pip backtracked over {', '.join(names)}: a dependency bound lets the resolver "
              "try releases it must reject; bound them in pyproject.toml (see the comment beside python-dateutil)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
