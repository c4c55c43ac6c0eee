"""Which progress view a run shows: JSON lines with --json, the live view on a terminal, plain
lines otherwise (the views themselves: tierzero.engine.progress, progress_live, progress_plain)."""

from __future__ import annotations

import sys
from typing import IO

from tierzero.engine.progress import JsonProgress, Progress


def make_progress(json_out: bool, stream: IO[str] | None = None, *, verbose: bool = False, width: int | None = None) -> Progress:
    """JSON lines with --json; the live view on a terminal; plain lines otherwise."""
    out = stream or sys.stdout
    if json_out:
        return JsonProgress(out, verbose=verbose)
    if out.isatty():
        from tierzero.engine.progress_live import LiveProgress

        return LiveProgress(verbose=verbose, width=width)
    from tierzero.engine.progress_plain import PlainProgress

    return PlainProgress(out, verbose=verbose)
