"""The go-yaml-style writer round-trips awkward values and parses version contracts."""

from __future__ import annotations

import pytest
import yaml

from tierzero.errors import InputError
from tierzero.render.talos.contract import Contract
from tierzero.render.talos.yamlio import dump_document, dump_stream, load_stream

AWKWARD = {
    "strings": ["true", "no", "1", "0x10", "null", "~", "", "a: b", "#x", "- y", "{z}", "yes please", "ünï", "'q'"],
    "numbers": [0, -3, 1.5],
    "flags": [True, False, None],
    "nested": [{"a": [{"b": []}, {}]}, [[1, 2], []]],
    "text": "line1\nline2\n",
    "text_no_newline": "x\ny",
    "text_extra_newlines": "x\n\n",
    "empty_map": {},
    "empty_list": [],
    "key with: colon": 1,
    "123": "numeric key",
}


def test_awkward_values_round_trip():
    assert yaml.safe_load(dump_document(AWKWARD)) == AWKWARD


def test_stream_round_trip_skips_empty_documents():
    docs = [{"a": 1}, {"kind": "X", "b": [1]}]
    assert load_stream(dump_stream(docs)) == docs
    assert load_stream("---\n---\na: 1\n") == [{"a": 1}]


def test_layout_is_go_yaml_like():
    assert dump_document({"a": {"b": [{"c": 1, "d": [2]}]}}) == "a:\n    b:\n        - c: 1\n          d:\n            - 2\n"


@pytest.mark.parametrize(("text", "expected"), [("v1.14", "v1.14"), ("1.12.3", "v1.12"), ("v1.15.0-beta.1", "v1.15")])
def test_contract_parse(text, expected):
    assert str(Contract.parse(text)) == expected


@pytest.mark.parametrize("text", ["v1.10", "v2.0", "latest", ""])
def test_contract_parse_rejects(text):
    with pytest.raises(InputError):
        Contract.parse(text)


def _safe_dump_scalar(text: str) -> str:
    """What the writer did before: one safe_dump per scalar, plain unless quoted or multi-line."""
    import json

    if text == "":
        return '""'
    plain = yaml.safe_dump(text, width=1 << 30, allow_unicode=True).removesuffix("\n...\n").rstrip("\n")
    if "\n" not in plain and not plain.startswith(("'", '"')):
        return plain
    return json.dumps(text, ensure_ascii=False)


AWKWARD_SCALARS = ["true", "no", "1", "0x10", "null", "~", "", "a: b", "#x", "- y", "{z}", "...", "---", "a\nb", " x", "x ", "1e3",
                   "2001-12-14", "=", "<<", "? x", "x #y", "@a", "`b", "%c", "!d", "&e", "*f", "|g", ">h", "a,b", "[x]", "-", "0o17",
                   "+1", ".inf", ".NaN", "\t", "\u0085", "é\u2028", "a\u00a0b", "/dev/sda", "https://x:6443", "\x7f", "ünï", "'q'"]


@pytest.mark.parametrize("text", AWKWARD_SCALARS)
def test_scalars_are_written_as_safe_dump_would_choose(text):
    from tierzero.render.talos.yamlio import _string

    assert _string(text) == _safe_dump_scalar(text)
    if text not in ("\u0085", "\x7f"):  # json.dumps leaves NEL and DEL raw, which YAML cannot read back (as before)
        assert yaml.safe_load(f"k: {_string(text)}\n")["k"] == text


def test_scalar_choice_matches_safe_dump_for_any_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tierzero.render.talos.yamlio import _string

    @settings(max_examples=2000, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12))
    def check(text: str) -> None:
        assert _string(text) == _safe_dump_scalar(text)

    check()
