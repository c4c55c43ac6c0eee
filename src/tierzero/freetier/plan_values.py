"""Reading a plan strictly: bounded JSON, numbers that must be finite and non-negative, and the
values OpenTofu only learns during apply (`after_unknown`).

A price the guard cannot read must never turn into "free": an unknown price-setting attribute is a
refusal (exit 1, "unknown at plan time: …"), an invalid one (a word where a size belongs, a negative
size, NaN or Infinity) is bad input (exit 2) naming the resource address and the attribute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tierzero.errors import InputError

MAX_PLAN_BYTES = 64 * 1024 * 1024  # a tierzero plan is well under 1 MB; this bounds memory at a few hundred MB
MAX_INT_DIGITS = 30
_PLAN_HINT = "produce it with: tofu show -json plan.out > plan.json"


class NonFinite(str):
    """A JSON number Python would read as NaN or ±Infinity, kept as its text so it can never be priced."""


def _parse_float(text: str) -> float | NonFinite:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(text)


def _parse_int(text: str) -> int | NonFinite:
    # int() of thousands of digits is slow and unbounded; no price-setting size has more than a few.
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else NonFinite(text)


def loads_plan(text: str, source: str = "the plan JSON") -> Any:
    """`json.loads` for plans: NaN/Infinity/huge numbers become NonFinite, deep nesting is an InputError."""
    try:
        return json.loads(text, parse_constant=NonFinite, parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", hint=_PLAN_HINT) from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply to be a plan", hint=_PLAN_HINT) from None


def read_plan_file(path: Path) -> dict[str, Any]:
    """A plan file read within MAX_PLAN_BYTES; InputError (exit 2) for anything that is not a plan object."""
    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise InputError(
                f"{path}: {size:,} bytes is larger than a plan tierzero reads ({MAX_PLAN_BYTES:,} bytes)",
                hint=_PLAN_HINT,
            )
        with path.open("rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    data = loads_plan(text, str(path))
    if not isinstance(data, dict):
        raise InputError(f"{path}: the plan JSON is not an object", hint=_PLAN_HINT)
    return data


def amount(value: Any, address: str, attribute: str, default: float | None = None) -> float | None:
    """A non-negative finite number from a plan value (plans may write "2" for 2); `default` when absent.

    Raises InputError (exit 2) naming `address` and `attribute` for anything else."""
    if value is None:
        return default
    problem = None
    number: float | None = None
    if isinstance(value, NonFinite):
        problem = "is not a finite number"
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        problem = "is not a number"
    else:
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (ValueError, OverflowError):
            problem = "is not a number"
        else:
            if not math.isfinite(number):
                problem = "is not a finite number"
            elif number < 0:
                problem = "is negative"
    if problem is not None:
        shown = value if isinstance(value, NonFinite) else json.dumps(value)[:80]
        raise InputError(
            f"{address}: {attribute} = {shown} {problem}; the guard cannot price it",
            hint="fix the value in the configuration (a size or count of 0 or more), then plan again",
        )
    return number


def unknown_paths(after_unknown: Any, paths: Iterable[str]) -> list[str]:
    """The dotted `paths` (a `*` matches every element of a list) that `after_unknown` marks unknown.

    `after_unknown` mirrors `after`: `true` where the value (or a whole block) is known only after apply."""
    return [path for path in paths if _unknown(after_unknown, path.split("."))]


def _unknown(node: Any, parts: list[str]) -> bool:
    if node is True:
        return True
    if not parts:
        return False
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        # Nested blocks are lists in a plan: `block.attr` looks into every element, as does `list.*`.
        remaining = rest if head == "*" else parts
        return any(_unknown(item, remaining) for item in node)
    if isinstance(node, dict):
        return _unknown(node.get(head), rest)
    return False
