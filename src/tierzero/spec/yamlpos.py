"""Read YAML with positions: plain Python data plus a map from path to (line, column)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierzero.spec.errors import Path, Problem

Position = tuple[int, int]


@dataclass
class Document:
    data: Any
    key_positions: dict[Path, Position]
    value_positions: dict[Path, Position]

    def position(self, path: Path, *, key: bool = False) -> Position:
        """The best position for a path: the exact key or value, else the nearest ancestor's."""
        table = self.key_positions if key else self.value_positions
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.value_positions:
                return self.value_positions[probe]
            probe = probe[:-1]
        return (1, 1)


def _problem(message: str, line: int = 1, column: int = 1) -> Problem:
    return Problem(path=(), message=message, line=line, column=column)


def _precheck(raw: bytes) -> tuple[str | None, Problem | None]:
    from tierzero.spec.yamlbounds import size_overrun

    too_big = size_overrun(raw)
    if too_big:
        return None, _problem(too_big.message, too_big.line, too_big.column)
    if b"\x00" in raw:
        return None, _problem("this is not a text file (it contains NUL bytes); expected a YAML spec")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, _problem("the file is not valid UTF-8 text; expected a YAML spec saved as UTF-8", line)
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip() or all(row.strip().startswith("#") or not row.strip() for row in text.splitlines()):
        return None, _problem("the file is empty; expected a mapping with apiVersion, kind, metadata, ... (try `tierzero init`)")
    for number, row in enumerate(text.splitlines(), start=1):
        stripped = row.lstrip(" ")
        if stripped.startswith("\t"):
            col = len(row) - len(stripped) + 1
            return None, _problem("a tab is used for indentation; YAML allows only spaces: replace the tab with spaces", number, col)
    return text, None


def parse(raw: bytes) -> tuple[Document | None, Problem | None]:
    """Parse YAML text into a Document, or return the one problem that stops parsing."""
    text, problem = _precheck(raw)
    if problem:
        return None, problem
    from tierzero.spec.yamlbounds import overrun

    assert text is not None
    bound = overrun(text)  # before ruamel builds anything: aliases and nesting cannot blow up past here
    if bound:
        return None, _problem(bound.message, bound.line, bound.column)
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(text))
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        key = str(exc.problem).split('"')[1] if '"' in str(exc.problem) else "a key"
        return None, _problem(f"duplicate key {key!r}: each key may appear once in a mapping; remove or merge one", mark.line + 1, mark.column + 1)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or exc.context or "invalid YAML").strip()
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        ctx = exc.context_mark
        if exc.context and ctx and (ctx.line, ctx.column) != (mark.line, mark.column):
            what += f" ({exc.context.strip()} started at line {ctx.line + 1}, column {ctx.column + 1})"
        return None, _problem(f"YAML syntax error: {what}; fix the YAML at this position", line, col)
    except YAMLError as exc:
        return None, _problem(f"YAML error: {exc}")
    except (ValueError, OverflowError, RecursionError) as exc:  # a scalar ruamel cannot construct
        return None, _problem(f"YAML error: a value cannot be read ({exc}); fix or quote it")
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        msg = "the file holds no YAML document" if not docs else f"the file holds {len(docs)} YAML documents; expected exactly one"
        return None, _problem(msg)
    root = docs[0]
    if not isinstance(root, dict):
        kind = "a list" if isinstance(root, list) else f"a {type(root).__name__.lower().replace('scalar', '')} value"
        return None, _problem(f"the spec is {kind}; expected a mapping with apiVersion, kind, metadata, ...")
    keys: dict[Path, Position] = {}
    values: dict[Path, Position] = {}
    data = _walk(root, (), keys, values)
    values.setdefault((), (1, 1))
    return Document(data, keys, values), None


def _walk(node: Any, path: Path, keys: dict[Path, Position], values: dict[Path, Position]) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for k, v in node.items():
            child = path + (str(k),)
            try:
                kl, kc = node.lc.key(k)
                vl, vc = node.lc.value(k)
                keys[child] = (kl + 1, kc + 1)
                values[child] = (vl + 1, vc + 1)
            except (KeyError, TypeError):
                pass
            out[str(k)] = _walk(v, child, keys, values)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, v in enumerate(node):
            child = path + (i,)
            try:
                il, ic = node.lc.item(i)
                values[child] = keys[child] = (il + 1, ic + 1)
            except (KeyError, TypeError, IndexError):
                pass
            items.append(_walk(v, child, keys, values))
        return items
    return _plain_scalar(node)


def _plain_scalar(node: Any) -> Any:
    import datetime

    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarBoolean):  # an anchored `true`: an int subclass, but a boolean in the YAML
        return bool(node)
    if isinstance(node, (datetime.date, datetime.datetime)):  # a plain 2026-12-01 where text was meant
        return node.isoformat()
    if isinstance(node, bytes):  # !!binary: no field takes bytes; left as such, validation refuses it
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if hasattr(node, "value"):  # tagged scalars
        return str(node.value)
    return str(node)
