"""YAML streams laid out the way talosctl (go-yaml v3, indent 4) writes them."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import yaml
import yaml.emitter
import yaml.resolver

Document = dict[str, Any]

INDENT = 4


def _child_indent(column: int) -> int:
    # go-yaml v3 aligns nested blocks to the next multiple of the indent width.
    return INDENT * ((column + INDENT) // INDENT)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return _string(str(value))


_STR_TAG = "tag:yaml.org,2002:str"
_ANALYZER = yaml.emitter.Emitter(None, allow_unicode=True)  # type: ignore[arg-type]  # no stream: analyze_scalar only reads allow_unicode
_RESOLVER = yaml.resolver.Resolver()


@lru_cache(maxsize=8192)
def _string(text: str) -> str:
    """A string as a plain scalar where PyYAML's safe_dump would write it plain (it would not read
    back as another type, and no character forbids it), else double-quoted JSON. The same two
    tests safe_dump makes (Serializer: implicit resolution; Emitter.choose_scalar_style at block
    level), without emitting a document per scalar. Cached: a plan repeats most keys and values."""
    if text == "":
        return '""'
    if _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG:
        analysis = _ANALYZER.analyze_scalar(text)
        if analysis.allow_block_plain and not analysis.multiline and not text.startswith(("'", '"')):
            return text
    return json.dumps(text, ensure_ascii=False)


def _is_literal(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value and not value.startswith((" ", "\t"))


def _literal(header_prefix: str, text: str, column: int) -> list[str]:
    stripped = text.rstrip("\n")
    trailing = len(text) - len(stripped)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    body = stripped.split("\n") + ([""] * (trailing - 1) if trailing > 1 else [])
    return [f"{header_prefix}|{chomp}"] + [(" " * column + line) if line else "" for line in body]


def _mapping(value: dict[str, Any], column: int) -> list[str]:
    lines: list[str] = []
    pad = " " * column
    for key, item in value.items():
        head = f"{pad}{_scalar(key)}:"
        if isinstance(item, dict) and item:
            lines += [head, *_mapping(item, _child_indent(column))]
        elif isinstance(item, list) and item:
            lines += [head, *_sequence(item, _child_indent(column))]
        elif _is_literal(item):
            lines += _literal(head + " ", item, _child_indent(column))
        else:
            lines.append(f"{head} {_flow_empty(item)}")
    return lines


def _sequence(value: list[Any], column: int) -> list[str]:
    lines: list[str] = []
    pad = " " * column
    for item in value:
        if isinstance(item, (dict, list)) and item:
            nested = _mapping(item, column + 2) if isinstance(item, dict) else _sequence(item, column + 2)
            nested[0] = pad + "- " + nested[0][column + 2 :]
            lines += nested
        elif _is_literal(item):
            lines += _literal(pad + "- ", item, column + 2)
        else:
            lines.append(f"{pad}- {_flow_empty(item)}")
    return lines


def _flow_empty(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump_document(doc: Any) -> str:
    if isinstance(doc, dict) and doc:
        return "\n".join(_mapping(doc, 0)) + "\n"
    if isinstance(doc, list) and doc:
        return "\n".join(_sequence(doc, 0)) + "\n"
    return _flow_empty(doc) + "\n"


def dump_stream(docs: list[Document]) -> str:
    return "---\n".join(dump_document(doc) for doc in docs)


Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML was built with it: the same documents, faster


def load(text: str | bytes) -> Any:
    """Parse one YAML document (safe types only)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


def load_stream(text: str) -> list[Any]:
    """Parse a YAML stream, skipping empty documents."""
    return [doc for doc in yaml.load_all(text, Loader=Loader) if doc is not None]  # noqa: S506 - a safe loader
