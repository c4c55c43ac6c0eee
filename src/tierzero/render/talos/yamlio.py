"""YAML streams laid out the way talosctl (go-yaml v3, indent 4) writes them."""

from __future__ import annotations

import json
from typing import Any

import yaml

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
    text = str(value)
    if text == "":
        return '""'
    plain = yaml.safe_dump(text, width=1 << 30, allow_unicode=True).removesuffix("\n...\n").rstrip("\n")
    if "\n" not in plain and not plain.startswith(("'", '"')):
        return plain
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


def load_stream(text: str) -> list[Any]:
    """Parse a YAML stream, skipping empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]
