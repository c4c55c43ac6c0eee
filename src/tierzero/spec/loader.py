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
from tierzero.spec.refs import key_material, key_material_message
from tierzero.spec.yamlbounds import MAX_BYTES
from tierzero.spec.yamlpos import Document, parse

_SECRETISH = ("secret", "token", "password", "key")


@dataclass
class LoadedSpec:
    platform: Platform
    path: FsPath
    warnings: list[Problem] = field(default_factory=list)
    document: Document | None = None  # the parsed YAML with positions, for problems found later (preflight)
    # The files the spec names (`@file` Talos patches, cloud.oci.ssh_public_key), read when it was
    # loaded: {the path as the spec writes it: bytes}; one that could not be read is absent.
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def base_dir(self) -> FsPath:
        return self.path.parent


MAX_REFERENCED_BYTES = 1024 * 1024  # a Talos patch or a public key is a few KB


def referenced_paths(platform: Platform) -> list[str]:
    """The files a spec names, as it writes them (relative to its directory, or absolute), in spec
    order: every `@file` Talos patch (cluster, role and node patches) and cloud.oci.ssh_public_key."""
    names: list[str] = []
    for cluster in platform.clusters:
        patches = [*cluster.patches.cluster, *cluster.patches.control_plane, *cluster.patches.worker]
        patches += [p for _, node in cluster.nodes() for p in node.patches]
        names += [p[1:] for p in patches if isinstance(p, str) and p.startswith("@")]
    if platform.oci is not None:
        names.append(str(platform.oci.ssh_public_key))
    return list(dict.fromkeys(names))


def read_referenced(platform: Platform, base_dir: FsPath) -> dict[str, bytes]:
    """{name: bytes} of `referenced_paths` that can be read (at most 1 MiB each). A missing or
    unreadable file is left out: the renderer that needs it names it and the fix (the workspace
    SSH key, say, exists only once `setup/workspace-keys` ran)."""
    files: dict[str, bytes] = {}
    for name in referenced_paths(platform):
        path = FsPath(name).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_REFERENCED_BYTES + 1)
        except OSError:
            continue
        if len(data) <= MAX_REFERENCED_BYTES:
            files[name] = data
    return files


def load_spec(path: str | FsPath) -> LoadedSpec:
    """Load a spec, raising SpecError (exit 2) that lists every problem with its position."""
    path = FsPath(path)
    name = str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never more: the size check needs only to see it is too long
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
    keys = _key_material_problems(doc.data, (), doc)
    try:
        platform = Platform.model_validate(doc.data)
    except ValidationError as exc:
        flagged = {p.path for p in keys}
        found = [p for p in _pydantic_problems(exc, doc) if not any(p.path[:len(f)] == f for f in flagged)]
        raise SpecError(name, sorted(keys + found, key=_order)) from None
    if keys:
        raise SpecError(name, sorted(keys, key=_order))
    from tierzero.spec.semantic import check

    found = check(platform)
    located = [_locate(p, doc) for p in found]
    errors = [p for p in located if p.severity == "error"]
    if errors:
        raise SpecError(name, sorted(errors, key=_order))
    files = read_referenced(platform, base_dir) if base_dir is not None else {}
    return LoadedSpec(platform, path or FsPath(name), [p for p in located if p.severity == "warning"], doc, files)


def _key_material_problems(node: Any, path: Path, doc: Document) -> list[Problem]:
    """Private keys pasted anywhere in the spec, found before validation can echo any of them."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _key_material_problems(v, path + (k,), doc)]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _key_material_problems(v, path + (i,), doc)]
    kind = key_material(node) if isinstance(node, str) else None
    if kind is None:
        return []
    line, col = doc.position(path)
    return [Problem(path, key_material_message(kind), line, col)]


def _order(p: Problem) -> tuple[Any, ...]:
    return (p.line or 0, p.column or 0, p.message)


def _locate(problem: Problem, doc: Document) -> Problem:
    line, col = doc.position(problem.path)
    related = doc.position(problem.related) if problem.related is not None else None
    return Problem(problem.path, problem.message, line, col, problem.severity, problem.related, related)


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


def _yaml_text(value: Any) -> str:
    """A value as the YAML that produced it: true, 2, 1.5, '2'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes):
        return "binary data (!!binary)"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "a value"


_EXPECTED = {
    "int_type": "a whole number, like 2",
    "float_type": "a number, like 1.5",
    "bool_type": "true or false",
    "string_type": "a string",
}


def _strict_message(kind: str, value: Any) -> str | None:
    """Why a value of the wrong YAML type is refused, and how to write it (the spec is strict)."""
    if kind == "finite_number":
        return "expected a finite number; .inf and .nan are not sizes or counts"
    expected = _EXPECTED.get(kind)
    if expected is None or isinstance(value, (dict, list)):
        return None
    shown = _yaml_text(value) if not isinstance(value, bytes) else "!!binary"
    if isinstance(value, str) and kind != "string_type":
        fix = "write it without quotes" if _unquoted_fits(value, kind) else f"write {expected}"
    elif kind == "string_type":
        fix = f"quote it, like '{value}'" if isinstance(value, (bool, int, float)) else "write it as text"
    else:
        fix = f"write {expected}"
    return f"{shown} is {_kind_of(value)} but this field takes {expected.split(',')[0]}; {fix}"


def _unquoted_fits(text: str, kind: str) -> bool:
    if kind == "bool_type":
        return text in ("true", "false")
    try:
        (int if kind == "int_type" else float)(text)
        return True
    except ValueError:
        return False


def _value_message(err: Mapping[str, Any], path: Path) -> str:
    secretish = any(s in str(p).lower() for p in path for s in _SECRETISH)
    strict = None if secretish else _strict_message(err["type"], err.get("input"))
    if strict:
        return strict
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[0].lower() + msg[1:] if msg else msg
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
