"""YAML streams in the layout talosctl writes (4-space indent, block literals for multi-line text)."""

from __future__ import annotations

from typing import Any

import yaml

Document = dict[str, Any]


class _TalosDumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # talosctl (go-yaml v3) indents sequences under their key; PyYAML does not by default.
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if value == "":
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_TalosDumper.add_representer(str, _represent_str)


def dump_document(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_TalosDumper, indent=4, sort_keys=False, allow_unicode=True, width=1 << 30)


def dump_stream(docs: list[Document]) -> str:
    return "---\n".join(dump_document(doc) for doc in docs)


def load_stream(text: str) -> list[Document]:
    """Parse a YAML stream, skipping empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]
