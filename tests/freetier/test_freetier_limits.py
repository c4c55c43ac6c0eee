"""Limits and prices as dated data: both A1 eras, the cut-over day, sources, and bad dates."""

from __future__ import annotations

import datetime as dt

import pytest

from tierzero.errors import InputError
from tierzero.freetier.limits import limit_eras, limits_on, overheads, parse_day, prices_on

CUTOVER = dt.date(2026, 6, 15)


def test_old_era_a1_allowance():
    limits = limits_on(dt.date(2026, 6, 14))
    assert limits["a1_ocpu_hours_month"] == 3000
    assert limits["a1_gb_hours_month"] == 18000
    assert limits.a1_equivalent(744) == pytest.approx((3000 / 744, 18000 / 744))


def test_new_era_a1_allowance_from_cutover_day():
    limits = limits_on(CUTOVER)
    assert limits["a1_ocpu_hours_month"] == 1500
    assert limits["a1_gb_hours_month"] == 9000
    assert limits.limit("a1_ocpu_hours_month").effective_from == CUTOVER
    assert limits.limit("a1_ocpu_hours_month").effective_until is None


def test_default_day_is_today_and_in_the_new_era():
    assert limits_on().on == dt.datetime.now(dt.timezone.utc).date()
    assert limits_on()["a1_ocpu_hours_month"] == 1500


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("a1_whole_ocpus", 1),
        ("a1_memory_gb_per_ocpu_min", 1),
        ("a1_memory_gb_per_ocpu_max", 64),
        ("micro_instances", 2),
        ("micro_ocpus", 0.125),
        ("micro_memory_gb", 1),
        ("block_storage_gb", 200),
        ("boot_volume_min_gb", 50),
        ("volume_backups", 5),
        ("object_storage_gb", 20),
        ("egress_tb_month", 10),
        ("vcns", 2),
        ("flexible_load_balancers", 1),
        ("load_balancer_min_mbps", 10),
        ("load_balancer_max_mbps", 10),
        ("reserved_public_ipv4", 2),
    ],
)
def test_standing_limits(key, value):
    for day in (dt.date(2026, 1, 1), CUTOVER, dt.date(2027, 1, 1)):
        assert limits_on(day)[key] == value


def test_budgets_are_free_without_a_count_limit():
    assert limits_on(CUTOVER)["budgets"] == float("inf")


def test_every_limit_era_has_unit_source_and_start():
    for key in limits_on(CUTOVER).items:
        for era in limit_eras(key):
            assert era.unit and era.source and era.effective_from


def test_eras_do_not_overlap_and_leave_no_gap_for_a1():
    old, new = limit_eras("a1_ocpu_hours_month")
    assert old.effective_until == CUTOVER - dt.timedelta(days=1) and new.effective_from == CUTOVER


def test_boot_volume_note_mentions_the_documented_47():
    assert "47" in limits_on(CUTOVER).limit("boot_volume_min_gb").source


def test_day_before_any_data_is_an_input_error():
    with pytest.raises(InputError, match="no Always Free limit"):
        limits_on(dt.date(2018, 1, 1))


def test_prices():
    prices = prices_on(CUTOVER)
    assert prices.hours_per_month == 744
    assert prices["a1_ocpu_hour"] == 0.01
    assert prices["a1_gb_hour"] == 0.0015
    assert prices["block_volume_gb_month"] == 0.0255
    assert prices["load_balancer_hour"] == 0.0113
    assert prices["load_balancer_mbps_hour"] == 0.0001
    assert prices["reserved_ipv4_hour"] is None  # no public price found: stays unknown, never guessed
    assert prices.shapes["VM.Standard.E4.Flex"].ocpu_hour == 0.025
    assert prices.shapes["VM.Standard.E5.Flex"].gb_hour == 0.002
    assert prices.micro_substitute_month() == pytest.approx((0.025 + 0.0015) * 744)
    assert all(prices.sources.values())


def test_prices_before_the_list_date_use_the_earliest_known():
    assert prices_on(dt.date(2020, 1, 1))["a1_ocpu_hour"] == 0.01


def test_overheads_are_named_with_sources():
    data = overheads()
    assert data["talos_system_reserved_memory_gb_controlplane"].value == 0.5
    assert data["talos_system_reserved_memory_gb_worker"].value == 0.375
    assert all(o.source for o in data.values())


@pytest.mark.parametrize("text", ["2026-13-01", "tomorrow", "15/06/2026", "2026-06-31"])
def test_bad_limits_date(text):
    with pytest.raises(InputError, match="is not a date"):
        parse_day(text)


def test_limits_date_parses():
    assert parse_day("2026-06-15") == CUTOVER
    assert parse_day(None) is None
