"""Load and validate a spec file: YAML with positions, pydantic types, then semantic rules."""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tierzero.spec.errors import Path, Problem, SpecError
from tierzero.spec.models import Platform
from tierzero.spec.yamlpos import Document, parse

_SECRETISH = ("secret", "token", "password", "key")


@dataclass
class LoadedSpec:
    platform: Platform
    path: FsPath
    warnings: list[Problem] = field(default_factory=list)

    @property
    def base_dir(self) -> FsPath:
        return self.path.parent


def load_spec(path: str | FsPath) -> LoadedSpec:
    """Load a spec, raising SpecError (exit 2) that lists every problem with its position."""
    path = FsPath(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(name, [Problem((), "no such file; create one with `tierzero init` or pass -f PATH", None)]) from None
    except IsADirectoryError:
        raise SpecError(name, [Problem((), "this is a directory; pass the spec file, like DIR/tierzero.yaml")]) from None
    except OSError as exc:
        raise SpecError(name, [Problem((), f"cannot read the file: {exc.strerror}")]) from None
    return load_spec_bytes(raw, name, base_dir=path.parent, path=path)


def load_spec_bytes(raw: bytes, name: str = "tierzero.yaml", *, base_dir: FsPath | None = None, path: FsPath | None = None) -> LoadedSpec:
    doc, problem = parse(raw)
    if problem:
        raise SpecError(name, [problem])
    assert doc is not None
    try:
        platform = Platform.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(name, sorted(_pydantic_problems(exc, doc), key=_order)) from None
    from tierzero.spec.semantic import check

    found = check(platform)
    located = [_locate(p, doc) for p in found]
    errors = [p for p in located if p.severity == "error"]
    if errors:
        raise SpecError(name, sorted(errors, key=_order))
    return LoadedSpec(platform, path or FsPath(name), [p for p in located if p.severity == "warning"])


def _order(p: Problem) -> tuple[Any, ...]:
    return (p.line or 0, p.column or 0, p.message)


def _locate(problem: Problem, doc: Document) -> Problem:
    line, col = doc.position(problem.path)
    return Problem(problem.path, problem.message, line, col, problem.severity)


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Keep the parts of a pydantic error location that are real keys/indexes in the data
    (pydantic adds union member and discriminator tags in between)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part == loc[-1]:
            out.append(part)  # a missing or unknown key: the last element names it
            node = None
    return tuple(out)


def _pydantic_problems(exc: ValidationError, doc: Document) -> list[Problem]:
    problems: dict[tuple[Any, ...], Problem] = {}
    for err in exc.errors(include_url=False):
        path = _data_path(tuple(err["loc"]), doc.data)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else "?"
            message = f"unknown key {key!r}"
            allowed = sorted(_allowed_keys(path[:-1]))
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
            elif allowed:
                message += f"; expected one of: {', '.join(allowed)}"
            line, col = doc.position(path, key=True)
        elif kind == "missing":
            message = f"missing required key {path[-1]!r}" if path else "missing required key"
            line, col = doc.position(path[:-1], key=True)
        else:
            message = _value_message(err, path)
            line, col = doc.position(path)
        problem = Problem(path, message, line, col)
        # A union reports one error per member; keep the first per path.
        problems.setdefault((path, kind if kind in ("extra_forbidden", "missing") else "value"), problem)
    return list(problems.values())


def _value_message(err: Mapping[str, Any], path: Path) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[0].lower() + msg[1:] if msg else msg
    secretish = any(s in str(p).lower() for p in path for s in _SECRETISH)
    value = err.get("input")
    if not secretish and isinstance(value, (str, int, float, bool)) and "plaintext" not in msg:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        msg = f"{msg} (got {shown})"
    return msg


def _allowed_keys(path: Path) -> set[str]:
    """Field names a mapping at `path` may hold, found by walking the models' annotations."""
    models: list[type[BaseModel]] = [Platform]
    for part in path:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for model in models:
            for fname, info in model.model_fields.items():
                if part in (fname, info.alias):
                    nxt.extend(_models_in(info.annotation))
        models = nxt
        if not models:
            return set()
    return {info.alias or fname for model in models for fname, info in model.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out
