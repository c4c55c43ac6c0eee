"""Every invalid fixture is refused with the exact YAML path, line and message it declares."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tierzero.spec import SpecError, load_spec
from tierzero.spec.errors import format_path

FIXTURES = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def _expectations(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines()[:3]:
        m = re.match(r"# expect-(\w+): (.*)$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def test_there_are_enough_fixtures():
    assert len(FIXTURES) >= 40


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_invalid_fixture_reports_path_line_and_message(fixture: Path):
    expect = _expectations(fixture)
    with pytest.raises(SpecError) as info:
        load_spec(fixture)
    problems = info.value.problems
    matching = [p for p in problems if format_path(p.path) == expect["path"]]
    assert matching, f"no problem at {expect['path']}; got {[p.render('') for p in problems]}"
    problem = next((p for p in matching if expect["message"] in p.message), None)
    assert problem is not None, f"{expect['message']!r} not in {[p.message for p in matching]}"
    assert problem.line == int(expect["line"]), problem.render(fixture.name)
    rendered = problem.render(str(fixture))
    assert rendered.startswith(f"{fixture}:{expect['line']}:")
    assert expect["path"] in rendered
