"""Lay out DOT text as SVG with Graphviz's `dot` program (Debian package `graphviz`), run locally:
no network, no browser. `dot -Tsvg` reads the graph on stdin and writes one SVG document on
stdout (graphviz.org/doc/info/command.html, output format `svg`)."""

from __future__ import annotations

import shutil
import subprocess

from tierzero.adapters.child import tied_to_this_process
from tierzero.errors import OperationError

INSTALL_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), or draw with --format mermaid"


def dot_program() -> str:
    """The path of `dot`; OperationError naming the install when it is missing."""
    found = shutil.which("dot")
    if found is None:
        raise OperationError("Graphviz's `dot` program is not on PATH; it lays out the SVG", hint=INSTALL_HINT)
    return found


def svg_from_dot(dot: str, *, timeout: float = 60.0) -> str:
    """The SVG document `dot -Tsvg` draws from DOT text. OperationError with dot's own message when
    it refuses the graph or takes longer than `timeout` seconds."""
    command, options = tied_to_this_process([dot_program(), "-Tsvg"])
    try:
        proc = subprocess.run(command, input=dot.encode(), capture_output=True, timeout=timeout, **options)
    except subprocess.TimeoutExpired:
        raise OperationError(f"Graphviz's dot took more than {timeout:g} s to lay out the diagram", hint="draw with --format mermaid") from None
    except OSError as exc:
        raise OperationError(f"could not run Graphviz's dot: {exc.strerror or exc}", hint=INSTALL_HINT) from None
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise OperationError(f"Graphviz's dot refused the diagram: {lines[-1] if lines else f'exit {proc.returncode}'}",
                             hint="this is a tierzero bug: please report it with the spec")
    svg: str = proc.stdout.decode()
    return svg
