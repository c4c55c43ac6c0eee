"""No two tierzero modules import each other, directly or round a loop (every import counts:
module level, lazy, and type-only; see import_graph.py). A new cycle fails here with its members."""

from __future__ import annotations

from pathlib import Path

import tierzero
from import_graph import cycles, import_graph

PACKAGE = Path(tierzero.__file__).parent


def test_tierzero_has_no_import_cycles() -> None:
    graph = import_graph(PACKAGE, "tierzero")
    assert len(graph) > 100 and sum(len(v) for v in graph.values()) > 300  # the graph is really read
    assert cycles(graph) == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_cycle_is_found_whatever_kind_of_import_closes_it(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "from pkg.a import thing\n",  # a package re-exporting its child is no cycle
        "a.py": "import pkg.b\nthing = 1\n",
        "b.py": "def f():\n    from .sub import c\n",  # lazy and relative
        "sub/__init__.py": "",
        "sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import thing\n",  # type-only
        "d.py": "from pkg import a\n",  # outside the loop
    })
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"} and graph["pkg.b"] == {"pkg.sub.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "sub" / "c.py").write_text("")
    assert cycles(import_graph(pkg, "pkg")) == []


def test_render_is_pure_and_the_sandbox_is_chosen_only_by_the_session() -> None:
    graph = import_graph(PACKAGE, "tierzero")
    render = {m: deps for m, deps in graph.items() if m.startswith("tierzero.render")}
    assert len(render) > 20
    for module, deps in render.items():
        outside = sorted(d for d in deps if d.startswith(("tierzero.adapters", "tierzero.workspace", "tierzero.phases",
                                                          "tierzero.sandbox", "tierzero.cli", "tierzero.layers")))
        assert outside == [], f"{module} imports {outside}"
        source = (PACKAGE.parent / (module.replace(".", "/") + ".py"))
        source = source if source.exists() else source.with_suffix("") / "__init__.py"
        assert "subprocess" not in source.read_text(), module
    production = {m: deps for m, deps in graph.items() if not m.startswith(("tierzero.sandbox", "tierzero.cli.session"))}
    assert [m for m, deps in production.items() if any(d.startswith("tierzero.sandbox") for d in deps)] == []
