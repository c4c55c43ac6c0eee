"""Cost model on `Usage` summaries: verdict and monthly dollars, each worked out by hand (744 h a month)."""

from __future__ import annotations

import datetime as dt

import pytest

from tierzero.freetier.cost import A1_SHAPE, MICRO_SHAPE, Backup, Instance, LoadBalancer, Usage, Volume, assess
from tierzero.freetier.spec_check import check_usage

NEW = dt.date(2026, 7, 1)  # 1,500 OCPU-h + 9,000 GB-h
OLD = dt.date(2026, 1, 1)  # 3,000 OCPU-h + 18,000 GB-h


def a1(n: int, ocpus: float, gb: float, boot: float = 50) -> list[Instance]:
    return [Instance(f"a1-{i}", A1_SHAPE, ocpus, gb, boot) for i in range(n)]


def micro(n: int, boot: float = 50) -> list[Instance]:
    return [Instance(f"micro-{i}", MICRO_SHAPE, 0.125, 1, boot) for i in range(n)]


AT_LIMITS = Usage(
    instances=a1(2, 1, 6) + micro(2),
    backups=[Backup(f"b{i}", 50) for i in range(5)],
    load_balancers=[LoadBalancer("lb")],
    reserved_ips=["ip1", "ip2"],
    vcns=["v1", "v2"],
    object_storage_gb=20,
    egress_gb_month=10 * 1024,
)

# (id, usage, day, verdict, usd, unpriced)
CASES = [
    ("empty", Usage(), NEW, "free", 0.0, 0),
    ("2xA1_1x6", Usage(a1(2, 1, 6)), NEW, "free", 0.0, 0),
    ("1xA1_2x12", Usage(a1(1, 2, 12)), NEW, "free", 0.0, 0),
    # 4 × 744 = 2,976 − 1,500 = 1,476 × 0.01 = 14.76; 24 × 744 = 17,856 − 9,000 = 8,856 × 0.0015 = 13.284
    ("1xA1_4x24_new", Usage(a1(1, 4, 24)), NEW, "refused", 28.044, 0),
    ("1xA1_4x24_old", Usage(a1(1, 4, 24)), OLD, "free", 0.0, 0),
    ("old_design_old", Usage(a1(3, 1.33, 8)), OLD, "free", 0.0, 0),
    # 3.99 × 744 = 2,968.56 − 1,500 = 1,468.56 × 0.01 = 14.6856; 17,856 − 9,000 = 8,856 × 0.0015 = 13.284
    ("old_design_new", Usage(a1(3, 1.33, 8)), NEW, "refused", 27.9696, 0),
    # 2,232 − 1,500 = 732 × 0.01 = 7.32; 13,392 − 9,000 = 4,392 × 0.0015 = 6.588
    ("3xA1_1x6", Usage(a1(3, 1, 6)), NEW, "refused", 13.908, 0),
    # 14 GB × 744 = 10,416 − 9,000 = 1,416 × 0.0015 = 2.124
    ("2xA1_1x7", Usage(a1(2, 1, 7)), NEW, "refused", 2.124, 0),
    ("1xA1_3x12", Usage(a1(1, 3, 12)), NEW, "refused", 7.32, 0),
    ("4xA1_1x6_old", Usage(a1(4, 1, 6)), OLD, "free", 0.0, 0),
    # 5 × 744 = 3,720 − 3,000 = 720 × 0.01 = 7.2; 20 GB = 14,880 ≤ 18,000;
    # and 5 boot volumes × 50 = 250 GB: 50 × 0.0255 = 1.275; total 8.475
    ("5xA1_1x4_old", Usage(a1(5, 1, 4)), OLD, "refused", 8.475, 0),
    # 70 GB for 1 OCPU: ratio > 64 (limit) and 52,080 − 9,000 = 43,080 × 0.0015 = 64.62
    ("A1_1x70", Usage(a1(1, 1, 70)), NEW, "refused", 64.62, 0),
    ("A1_2x1_ratio", Usage(a1(1, 2, 1)), NEW, "refused", 0.0, 0),
    ("2_micros", Usage(micro(2)), NEW, "free", 0.0, 0),
    # (0.025 + 0.0015) × 744 = 19.716 each extra micro
    ("3_micros", Usage(micro(3)), NEW, "refused", 19.716, 0),
    ("4_micros", Usage(micro(4)), NEW, "refused", 39.432, 0),
    # E4 2 OCPU / 32 GB: (0.05 + 0.048) × 744 = 72.912
    ("E4_2x32", Usage([Instance("w", "VM.Standard.E4.Flex", 2, 32)]), NEW, "refused", 72.912, 0),
    # E5 1 / 4: (0.03 + 0.008) × 744 = 28.272
    ("E5_1x4", Usage([Instance("w", "VM.Standard.E5.Flex", 1, 4)]), NEW, "refused", 28.272, 0),
    ("unknown_shape", Usage([Instance("bm", "BM.Standard3.64", 64, 1024)]), NEW, "refused", 0.0, 1),
    ("storage_200", Usage(a1(2, 1, 6) + micro(2)), NEW, "free", 0.0, 0),
    # 300 − 200 = 100 × 0.0255 = 2.55
    ("storage_300", Usage(a1(2, 1, 6) + micro(2), volumes=[Volume("v", 100)]), NEW, "refused", 2.55, 0),
    ("micro_boot_40", Usage(micro(1, boot=40)), NEW, "refused", 0.0, 0),
    ("5_backups", Usage(backups=[Backup(f"b{i}", 50) for i in range(5)]), NEW, "free", 0.0, 0),
    # 2 extra × 20 GB × 0.0255 = 1.02
    ("7_backups", Usage(backups=[Backup(f"b{i}", 20) for i in range(7)]), NEW, "refused", 1.02, 0),
    ("object_20", Usage(object_storage_gb=20), NEW, "free", 0.0, 0),
    ("object_120", Usage(object_storage_gb=120), NEW, "refused", 2.55, 0),
    ("egress_10tb", Usage(egress_gb_month=10240), NEW, "free", 0.0, 0),
    # 11,264 − 10,240 = 1,024 GB × 0.0085 = 8.704
    ("egress_11tb", Usage(egress_gb_month=11264), NEW, "refused", 8.704, 0),
    ("lb_10", Usage(load_balancers=[LoadBalancer("lb")]), NEW, "free", 0.0, 0),
    # 400 × 744 = 297,600 − 7,440 = 290,160 × 0.0001 = 29.016
    ("lb_10_400", Usage(load_balancers=[LoadBalancer("lb", "flexible", 10, 400)]), NEW, "refused", 29.016, 0),
    # 744 × 0.0113 = 8.4072; (20 × 744 − 7,440) × 0.0001 = 0.744
    ("2_lbs", Usage(load_balancers=[LoadBalancer("a"), LoadBalancer("b")]), NEW, "refused", 9.1512, 0),
    ("3_reserved_ips", Usage(reserved_ips=["a", "b", "c"]), NEW, "refused", 0.0, 1),
    ("3_vcns", Usage(vcns=["a", "b", "c"]), NEW, "refused", 0.0, 0),
    ("everything_at_limits", AT_LIMITS, NEW, "free", 0.0, 0),
    ("2xA1_2x12_old", Usage(a1(2, 2, 12)), OLD, "free", 0.0, 0),
    ("2xA1_2x12_new", Usage(a1(2, 2, 12)), NEW, "refused", 28.044, 0),
]


@pytest.mark.parametrize(("case_id", "usage", "day", "verdict", "dollars", "unpriced"), CASES, ids=[c[0] for c in CASES])
def test_usage_case(case_id, usage, day, verdict, dollars, unpriced):
    result = assess(usage, on=day)
    assert ("refused" if result.refused else "free") == verdict, [f.line() for f in result.findings]
    assert result.total_usd_month == pytest.approx(dollars, abs=1e-6)
    assert len(result.unpriced_ids) == unpriced
    assert sum(result.usd_by_id.values()) == pytest.approx(dollars, abs=1e-6)
    if dollars > 0 or unpriced:
        assert result.charged
    for finding in result.violations:
        assert finding.fix and finding.what


def test_at_least_thirty_usage_cases():
    assert len(CASES) >= 30


def test_violation_line_says_what_how_much_dollars_and_fix():
    report = check_usage(Usage(a1(3, 1.33, 8)), NEW)
    ocpu = next(v for v in report.violations if v.code == "a1_ocpu_hours")
    assert ocpu.over_by == pytest.approx(1468.56)
    line = ocpu.line()
    assert "over the 1,500 free by 1,468.56" in line and "$14.69/month" in line
    assert "3 × A1 at 1.33 OCPU / 8 GB fitted the allowance before 2026-06-15" in line and "no longer fits" in line
    assert "2 × A1 at 1 OCPU / 6 GB, or 1 × A1 at 2 OCPU / 12 GB" in line


def test_fits_under_the_old_allowance_include_three_hosts():
    line = next(v for v in assess(Usage(a1(5, 1, 6)), on=OLD).violations if v.code == "a1_ocpu_hours").fix
    assert "3 × A1 at 1 OCPU / 8 GB" in line and "1 × A1 at 4 OCPU / 24 GB" in line


def test_whole_ocpu_and_idle_reclamation_are_warnings_not_violations():
    report = check_usage(Usage(a1(3, 1.33, 8)), OLD)
    assert report.verdict == "free"
    codes = [w.code for w in report.warnings]
    assert codes.count("a1_whole_ocpus") == 3 and "idle_reclamation" in codes
    idle = next(w for w in report.warnings if w.code == "idle_reclamation").line()
    assert "7 days" in idle and "20%" in idle and "95th-percentile" in idle


def test_no_idle_warning_without_instances():
    assert check_usage(Usage(), NEW).warnings == []


def test_marginal_attribution_charges_the_instance_that_crosses_the_allowance():
    result = assess(Usage(a1(3, 1, 6)), on=NEW)
    assert "a1-0" not in result.usd_by_id and "a1-1" not in result.usd_by_id
    assert result.usd_by_id["a1-2"] == pytest.approx(13.908)
