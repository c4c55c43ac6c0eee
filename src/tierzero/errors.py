"""Errors every layer may raise; the CLI turns them into a message and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 1  # a check or policy said no
EXIT_INVALID = 2  # invalid input or usage
EXIT_BUG = 70  # an unexpected failure inside tierzero (sysexits EX_SOFTWARE)


class TierzeroError(Exception):
    """An expected failure: printed as a message, never as a traceback (unless --debug)."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def lines(self) -> list[str]:
        out = [self.message]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out


class InputError(TierzeroError):
    """Bad input from the user: a file, a flag, a value. Exit code 2."""

    exit_code = EXIT_INVALID


class RefusedError(TierzeroError):
    """A check or policy said no. Exit code 1."""

    exit_code = EXIT_REFUSED


class OperationError(TierzeroError):
    """Something outside failed permanently (a step, a service). Exit code 1."""

    exit_code = EXIT_REFUSED
