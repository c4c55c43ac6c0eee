"""Console output, --json, and the mapping of failures to exit codes."""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import typer

from tierzero.adapters.redact import redact
from tierzero.errors import EXIT_BUG, EXIT_INVALID, EXIT_REFUSED, TierzeroError


@dataclass
class _State:
    debug: bool = False


state = _State()


def console(stderr: bool = False):  # -> rich.console.Console, imported lazily
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_lines(lines: list[str]) -> None:
    """Plain lines on stdout, as they are: no markup, emoji codes or wrapping (what `console().print(line,
    markup=False)` printed, without importing rich, about 45 ms of a `plan`)."""
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def error(lines: list[str]) -> None:
    """Print lines on stderr, each masked by the process redactor (errors quote commands and answers):
    every secret value resolved in this process, token shapes and URL passwords. Not `key: value`
    guesses: these lines name spec fields (`...cloudflare_api_token: environment variable X is not set`)."""
    err = console(stderr=True)
    for line in lines:
        err.print(redact(line, assignments=False), markup=False)


def _print_traceback() -> None:
    sys.stderr.write(redact(traceback.format_exc()))


def invoke(app: typer.Typer, argv: list[str]) -> int:
    """Run a Typer app and turn every outcome into an exit code (0 ok, 1 refused, 2 invalid)."""
    state.debug = "--debug" in argv
    try:
        result = typer.main.get_command(app).main(args=argv, prog_name="tierzero", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except TierzeroError as exc:
        if state.debug:
            _print_traceback()
        if not getattr(exc, "shown", False):  # a live view already showed it, with its remedy
            error(exc.lines())
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        error(["aborted"])
        return EXIT_REFUSED
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            error([exc.format_message()])
        return exc.exit_code if exc.exit_code else EXIT_INVALID
    except KeyboardInterrupt:
        error(["interrupted"])
        return 130
    except Exception as exc:  # an unexpected failure is still reported as one line
        if state.debug:
            _print_traceback()
        else:
            error([f"internal error: {type(exc).__name__}: {exc}", "hint: re-run with --debug for the traceback and report it"])
        return EXIT_BUG
