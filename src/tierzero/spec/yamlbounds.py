"""Bounds on YAML a user hands us, checked on the parser's event stream before anything is built.

A YAML text of a few hundred bytes can describe far more data than it holds: aliases of aliases
("billion laughs": nine lists of nine aliases, nested nine deep, expand to 9^9 nodes) or brackets
nested thousands deep (parsers and the code that walks their result recurse). Both are found by
counting, on the event stream, the nodes the document would expand to and how deep it nests:
one linear pass that builds nothing. Events come from libyaml through PyYAML when it is
compiled in (fast), else from ruamel.yaml's pure-Python parser; both report line and column.

Limits:
- MAX_BYTES: the text itself (a spec is a few KB; 64 KiB leaves room for inline patches).
- MAX_DEPTH: collections inside collections (a Talos machine-config patch nests about 10 deep).
- MAX_NODES: nodes after expanding every alias (the starter spec has about 300).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterable

MAX_BYTES = 64 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000


@dataclass(frozen=True)
class Overrun:
    """Where and how a YAML text goes past a bound: 1-based line and column, and a message."""

    line: int
    column: int
    message: str


def size_overrun(raw: bytes, limit: int = MAX_BYTES) -> Overrun | None:
    """The text is longer than `limit` bytes: the position of the first byte past it."""
    if len(raw) <= limit:
        return None
    head = raw[:limit]
    line = head.count(b"\n") + 1
    column = limit - (head.rfind(b"\n") + 1) + 1
    return Overrun(line, column, f"the file is larger than {limit // 1024} KiB, the most a spec may be; "
                                 "keep large Talos patches in their own files and reference them as '@path/to/patch.yaml'")


def overrun(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Overrun | None:
    """The first place `text` nests deeper than `max_depth` or expands past `max_nodes` nodes,
    or None. A syntax error ends the count quietly: the caller's parser reports it."""
    brackets = _flow_overrun(text, max_depth)
    if brackets:
        return brackets
    try:
        import yaml

        loader = getattr(yaml, "CSafeLoader", None)
        if loader is not None:
            return _count(yaml.parse(text, Loader=loader), max_depth, max_nodes)
    except Exception:  # noqa: BLE001 - libyaml refused the text; count again with the parser that will read it
        pass
    return _count(_ruamel_events(text), max_depth, max_nodes)


def _flow_overrun(text: str, max_depth: int) -> Overrun | None:
    """Open brackets counted on the text itself, outside quotes and comments. Parsers look ahead
    across every open bracket of a line (each may start a key), so 20,000 of them cost libyaml
    and ruamel seconds before any event comes out; this pass is linear."""
    depth = 0
    line, line_start = 1, 0
    quote = ""
    prev = "\n"  # the last character outside quotes that was not a space
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, line_start, prev = line + 1, i + 1, "\n"
            if quote == "'" or quote == '"':
                pass  # quoted scalars may span lines
        elif quote:
            if quote == '"' and ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
                prev = ch
        elif ch == "#" and (i == line_start or text[i - 1] in " \t"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch in "'\"" and prev in "\n:-[{,?":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return Overrun(line, i - line_start + 1, f"brackets nested more than {max_depth} deep; a spec nests "
                                                         "about 10 deep: look for unbalanced '[' or '{'")
            prev = ch
        elif ch in "]}":
            depth = max(0, depth - 1)
            prev = ch
        elif ch not in " \t\r":
            prev = ch
        i += 1
    return None


def _ruamel_events(text: str) -> Iterable[Any]:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    try:
        yield from yaml.parse(text)
    except Exception:  # noqa: BLE001 - a syntax error: the loader reports it with its position
        return


def _count(events: Iterable[Any], max_depth: int, max_nodes: int) -> Overrun | None:
    nodes = 0
    depth = 0
    sizes: dict[str, int] = {}  # anchor -> nodes it expands to (its latest definition)
    open_anchors: list[tuple[str | None, int]] = []  # per open collection: its anchor, nodes before it
    digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    for event in events:
        kind = type(event).__name__
        mark = event.start_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if kind == "AliasEvent":
            anchor = event.anchor
            if any(name == anchor for name, _ in open_anchors):
                return Overrun(where[0], where[1], f"alias *{anchor} refers to the node that contains it: it would expand "
                                       "forever; write the value out instead")
            nodes += sizes.get(anchor, 1)
            if nodes > max_nodes:
                return Overrun(where[0], where[1], f"alias *{anchor} makes the document expand to more than {max_nodes:,} "
                                       "values (aliases of aliases); write the values out, or alias less")
        elif kind == "ScalarEvent":
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
            if digits and not event.style and len(event.value) > digits and _numeric(event.value):
                return Overrun(where[0], where[1], f"a number with {len(event.value):,} characters; no field takes "
                                       f"a number that long (at most {digits:,} digits)")
        elif kind in ("SequenceStartEvent", "MappingStartEvent"):
            nodes += 1
            depth += 1
            if depth > max_depth:
                return Overrun(where[0], where[1], f"collections nested more than {max_depth} deep; a spec nests about 10 "
                                       "deep: look for unbalanced brackets or an accidental indentation run")
            open_anchors.append((event.anchor, nodes - 1))
        elif kind in ("SequenceEndEvent", "MappingEndEvent"):
            depth -= 1
            anchor, before = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before
        else:
            continue
        if nodes > max_nodes:
            return Overrun(where[0], where[1], f"the document holds more than {max_nodes:,} values; a spec holds a few hundred")
    return None


def _numeric(value: str) -> bool:
    body = value.lstrip("+-").replace("_", "")
    return body.isdigit() or (body[:2].lower() in ("0x", "0o") and body[2:].isalnum())
