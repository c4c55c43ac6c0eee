"""Every plan fixture in plans/ against its hand-worked verdict and monthly charge (plans/expectations.yaml)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from tierzero.freetier.guard import guard_plan

PLANS = Path(__file__).parent / "plans"
EXPECTATIONS = yaml.safe_load((PLANS / "expectations.yaml").read_text())


def _load(name: str) -> dict:
    return json.loads((PLANS / f"{name}.json").read_text())


def _case_id(case: dict) -> str:
    allow = "+allow" if case.get("allow") else ""
    return f"{case['file']}@{case['date']}{allow}"


def test_at_least_thirty_plan_fixtures_all_with_expectations():
    files = {p.stem for p in PLANS.glob("*.json")}
    assert len(files) >= 30
    assert files == {case["file"] for case in EXPECTATIONS}, "every fixture has an expectation and vice versa"


@pytest.mark.parametrize("case", EXPECTATIONS, ids=_case_id)
def test_plan_fixture(case: dict):
    report = guard_plan(_load(case["file"]), on=case["date"], allow_replace=set(case.get("allow", [])))
    assert report.verdict == case["verdict"], report.reasons
    assert report.totals.usd_month == pytest.approx(case["usd"], abs=1e-6)
    assert report.totals.unpriced == case.get("unpriced", 0)
    assert len(report.replace_refusals) == case.get("replace_refused", 0)
    if "codes" in case:
        assert {f.code for f in report.findings if f.kind != "warning"} == set(case["codes"])
    # Per-resource figures add up to the total, and a free plan shows no charge anywhere.
    assert sum(r.usd_month or 0.0 for r in report.rows if r.held) == pytest.approx(report.totals.usd_month, abs=1e-6)
    if case["verdict"] == "free":
        assert not report.charged and report.reasons == []


@pytest.mark.parametrize("case", EXPECTATIONS, ids=_case_id)
def test_costly_is_refused_and_free_is_accepted(case: dict):
    costly = case["usd"] > 0 or case.get("unpriced", 0) > 0
    if costly:
        assert case["verdict"] == "refused"
    report = guard_plan(_load(case["file"]), on=case["date"], allow_replace=set(case.get("allow", [])))
    assert report.charged == costly


def test_old_design_flips_on_2026_06_15():
    plan = _load("04_old_design_3x1_33x8")
    before = guard_plan(plan, on=dt.date(2026, 6, 14))
    after = guard_plan(plan, on=dt.date(2026, 6, 15))
    assert before.verdict == "free" and after.verdict == "refused"
    text = " ".join(after.reasons)
    assert "no longer fits" in text
    assert "2 × A1 at 1 OCPU / 6 GB" in text and "1 × A1 at 2 OCPU / 12 GB" in text


def test_create_before_destroy_counts_both_copies_and_charges_the_old_one():
    report = guard_plan(_load("08_replace_a1_create_first_over"), on=dt.date(2026, 7, 1),
                        allow_replace={"oci_core_instance.pve2"})
    held = [r for r in report.rows if r.held and r.type == "oci_core_instance"]
    assert [r.address for r in held] == ["oci_core_instance.pve1", "oci_core_instance.pve2", "oci_core_instance.pve2 (old copy)"]
    assert report.totals.a1_ocpus == 3
    assert held[-1].usd_month == pytest.approx(13.908)


def test_deleted_rows_are_shown_but_not_counted():
    report = guard_plan(_load("12_delete_brings_under"), on=dt.date(2026, 7, 1),
                        allow_replace={"oci_core_instance.pve3"})
    gone = [r for r in report.rows if not r.held]
    assert [(r.address, r.action) for r in gone] == [("oci_core_instance.pve3", "delete")]
    assert report.totals.a1_ocpus == 2 and report.totals.storage_gb == 100
    assert any("allowed by --allow-replace" in n for n in report.notes)


def test_unused_allow_replace_is_noted():
    report = guard_plan(_load("01_create_two_a1_free"), on=dt.date(2026, 7, 1),
                        allow_replace={"oci_core_instance.nope"})
    assert report.verdict == "free"
    assert report.notes == ["--allow-replace oci_core_instance.nope: no A1 delete or replace at that address in this plan"]
