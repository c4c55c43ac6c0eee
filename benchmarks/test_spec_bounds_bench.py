"""Benchmark: how fast hostile specs are refused in-process, against loading the starter spec
(run: pytest benchmarks/test_spec_bounds_bench.py --benchmark-enable). The bounds are checked on
the parser's event stream before anything is built, so each should cost about what a normal
spec costs or less; the printed ratio says how much."""

from __future__ import annotations

import time
from importlib import resources

import pytest

from tierzero.spec import SpecError
from tierzero.spec.loader import load_spec_bytes

STARTER = resources.files("tierzero.spec").joinpath("blueprints/oci-free-tier.yaml").read_bytes()
LAUGHS = ('lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"l{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi"))).encode()
HOSTILE = {
    "billion-laughs": LAUGHS,
    "20000-brackets": b"a: " + b"[" * 20_000 + b"]" * 20_000 + b"\n",
    "20000-dashes": b"a:\n" + b"- " * 20_000 + b"x\n",
    "1-MiB": b"# padding\n" * 100_000,
}


def _refuse(raw: bytes) -> SpecError:
    try:
        load_spec_bytes(raw)
    except SpecError as exc:
        return exc
    raise AssertionError("a hostile spec was accepted")


def _seconds(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_spec_refused(benchmark, name: str) -> None:
    load_spec_bytes(STARTER)  # warm: imports, pydantic validators
    problems = benchmark(_refuse, HOSTILE[name]).problems
    assert len(problems) == 1 and problems[0].line is not None
    starter = min(_seconds(load_spec_bytes, STARTER) for _ in range(3))
    hostile = min(_seconds(_refuse, HOSTILE[name]) for _ in range(3))
    print(f"\n{name}: refused in {hostile * 1000:.1f} ms; the starter spec loads in {starter * 1000:.1f} ms "
          f"(ratio {hostile / starter:.2f})")
