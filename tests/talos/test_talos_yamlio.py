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
