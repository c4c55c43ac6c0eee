"""Hypothesis mutates a valid spec (wrong types, unknown keys, deletions): the loader either accepts
it or reports SpecError problems with positions — never any other exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierzero.spec import SpecError, load_spec_bytes

BASE = yaml.safe_load((Path(__file__).parent / "valid" / "base.yaml").read_text())


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(BASE)[1:]
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _parent(data: Any, path: tuple) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def mutated(draw) -> dict:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        try:
            parent = _parent(data, path)
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, (dict, list)):  # an earlier mutation made it a scalar (a string indexes too)
            continue
        action = draw(st.sampled_from(["retype", "delete", "unknown-key"]))
        if action == "retype":
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(JUNK)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_never_escape_as_other_exceptions(data):
    raw = yaml.safe_dump(data, sort_keys=False).encode()
    try:
        load_spec_bytes(raw, "mutated.yaml")
    except SpecError as exc:
        assert exc.exit_code == 2
        assert exc.problems
        for problem in exc.problems:
            assert problem.line is not None and problem.line >= 1
            assert problem.message


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw):
    try:
        load_spec_bytes(raw, "junk.yaml")
    except SpecError as exc:
        assert exc.problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated())
def test_cli_exit_codes_for_mutations(tmp_path_factory, data):
    import pytest

    from tierzero.cli.main import run

    path = tmp_path_factory.mktemp("mut") / "tierzero.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SystemExit) as info:
        run(["check", "-f", str(path)])
    assert info.value.code in (0, 1, 2)
