"""Read a tofu module with python-hcl2 and check values against its declared variable types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def load_blocks(module_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """All top-level blocks of every .tf file, by block type."""
    blocks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(module_dir.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for kind, items in parsed.items():
            if not kind.startswith("__"):
                blocks.setdefault(kind, []).extend(items)
    return blocks


@dataclass(frozen=True)
class Variable:
    name: str
    type: Any  # parsed type, see parse_type
    has_default: bool
    nullable_default: bool


def variables(module_dir: Path) -> dict[str, Variable]:
    found = {}
    for item in load_blocks(module_dir).get("variable", []):
        for raw_name, body in item.items():
            name = _unquote(raw_name)
            found[name] = Variable(
                name,
                parse_type(str(body.get("type", "any"))),
                "default" in body,
                "default" in body and body["default"] is None,
            )
    return found


def outputs(module_dir: Path) -> set[str]:
    return {_unquote(name) for item in load_blocks(module_dir).get("output", []) for name in item}


def resources(module_dir: Path) -> dict[str, dict[str, Any]]:
    """`type.name` -> body."""
    found = {}
    for item in load_blocks(module_dir).get("resource", []):
        for rtype, named in item.items():
            for rname, body in named.items():
                found[f"{_unquote(rtype)}.{_unquote(rname)}"] = body
    return found


# -- type expressions: string | number | bool | any | list(T) | set(T) | map(T) | object({k = T}) --

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|[(){}=,])")


def parse_type(text: str) -> Any:
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    tokens = _TOKEN.findall(text)
    value, rest = _parse(tokens)
    if rest:
        raise ValueError(f"trailing tokens in type {text!r}: {rest}")
    return value


def _parse(tokens: list[str]) -> tuple[Any, list[str]]:
    head, rest = tokens[0], tokens[1:]
    if head in ("string", "number", "bool", "any"):
        return head, rest
    if head in ("list", "set", "map", "optional"):
        assert rest[0] == "("
        inner, rest = _parse(rest[1:])
        assert rest[0] == ")", rest
        return (head, inner), rest[1:]
    if head == "object":
        assert rest[:2] == ["(", "{"]
        rest = rest[2:]
        attrs: dict[str, Any] = {}
        while rest[0] != "}":
            key = rest[0]
            assert rest[1] == "="
            attrs[key], rest = _parse(rest[2:])
            if rest[0] == ",":
                rest = rest[1:]
        assert rest[1] == ")"
        return ("object", attrs), rest[2:]
    raise ValueError(f"unknown type token {head!r}")


def conforms(value: Any, declared: Any, path: str = "") -> list[str]:
    """Problems converting a JSON value to the declared type (empty: it converts)."""
    if value is None or declared == "any":
        return []
    if declared == "string":
        return [] if isinstance(value, str) else [f"{path}: expected string, got {type(value).__name__}"]
    if declared == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected number, got {type(value).__name__}"]
    if declared == "bool":
        return [] if isinstance(value, bool) else [f"{path}: expected bool, got {type(value).__name__}"]
    kind, inner = declared
    if kind == "optional":
        return conforms(value, inner, path)
    if kind in ("list", "set"):
        if not isinstance(value, list):
            return [f"{path}: expected {kind}"]
        return [p for i, v in enumerate(value) for p in conforms(v, inner, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected map"]
        return [p for k, v in value.items() for p in conforms(v, inner, f"{path}.{k}")]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected object"]
        problems = [f"{path}: unknown attribute {k}" for k in value if k not in inner]
        for key, attr_type in inner.items():
            optional = isinstance(attr_type, tuple) and attr_type[0] == "optional"
            if key not in value and not optional:
                problems.append(f"{path}: missing attribute {key}")
            elif key in value:
                problems += conforms(value[key], attr_type, f"{path}.{key}")
        return problems
    raise ValueError(f"unknown declared type {declared!r}")
