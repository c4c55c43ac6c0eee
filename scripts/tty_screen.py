"""Run a command on a pseudo-terminal and print the screen a person would see at the end (and,
with --frame REGEX, the first screen while it ran that matches REGEX), for the README's
excerpts. Needs the test extra (pyte): `pip install -e '.[test]'`.

    python scripts/tty_screen.py --cols 100 --frame 'retry' -- tierzero deploy -f demo/tierzero.yaml --target sandbox
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pty_screen import run_on_pty  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--frame", help="also print the first screen, while running, that matches this regex")
    parser.add_argument("argv", nargs="+")
    args = parser.parse_args()
    screen = run_on_pty(args.argv, cols=args.cols, rows=args.rows, snapshot=re.compile(args.frame) if args.frame else None)
    if args.frame:
        print("\n".join(screen.frame or ["(no screen matched)"]))
        print()
    print("\n".join(screen.lines))
    return screen.exit_code


if __name__ == "__main__":
    sys.exit(main())
