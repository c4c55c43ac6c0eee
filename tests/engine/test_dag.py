from __future__ import annotations

import pytest

from tierzero.engine.dag import DagError, build
from tierzero.engine.step import Step


async def _noop(ctx, _inputs=None):  # pragma: no cover - never run here
    return {}


def s(sid: str, phase: str = "cloud", needs: tuple[str, ...] = ()) -> Step:
    return Step(sid, phase, sid, _noop, needs=needs)  # type: ignore[arg-type]


def test_topological_order_respects_needs_and_phases() -> None:
    g = build([s("platform/x", "platform"), s("cloud/b", needs=("cloud/a",)), s("cloud/a"), s("setup/k", "setup")])
    assert g.order == ["setup/k", "cloud/a", "cloud/b", "platform/x"]
    assert g.after["cloud/a"] == ("setup/k",)  # phase barrier on entry points only
    assert g.after["cloud/b"] == ("cloud/a",)
    assert g.after["platform/x"] == ("cloud/b",)


def test_duplicate_and_unknown_needs() -> None:
    with pytest.raises(DagError, match="share the id"):
        build([s("cloud/a"), s("cloud/a")])
    with pytest.raises(DagError, match="needs 'cloud/zz'"):
        build([s("cloud/a", needs=("cloud/zz",))])
    with pytest.raises(DagError, match="later phase"):
        build([s("cloud/a", needs=("gitops/x",)), s("gitops/x", "gitops")])


def test_cycle_is_named() -> None:
    with pytest.raises(DagError) as err:
        build([s("cloud/a", needs=("cloud/c",)), s("cloud/b", needs=("cloud/a",)), s("cloud/c", needs=("cloud/b",))])
    msg = err.value.message
    assert "cycle" in msg and "cloud/a" in msg and "cloud/b" in msg and "cloud/c" in msg
    chain = msg.split(": ", 1)[1].split(" -> ")
    assert chain[0] == chain[-1] and len(chain) == 4


def test_critical_path_and_selection() -> None:
    g = build([s("setup/a", "setup"), s("cloud/b"), s("cloud/c"), s("cloud/d", needs=("cloud/b", "cloud/c"))])
    length, path = g.critical_path({"setup/a": 1, "cloud/b": 5, "cloud/c": 2, "cloud/d": 1})
    assert length == 7 and path == ["setup/a", "cloud/b", "cloud/d"]
    assert g.select(only="cloud") == ["cloud/b", "cloud/c", "cloud/d"]
    assert g.select(until="setup") == ["setup/a"]
    assert g.select(start="cloud", until="cloud") == ["cloud/b", "cloud/c", "cloud/d"]
    with pytest.raises(Exception, match="unknown phase"):
        g.select(only="nope")
    assert g.downstream(["cloud/c"]) == {"cloud/d"}
