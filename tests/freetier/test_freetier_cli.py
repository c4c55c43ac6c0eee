"""`tierzero guard` end to end through the real CLI entry point: exit codes 0/1/2, table, JSON, messages."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLANS = Path(__file__).parent / "plans"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}
    )


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # Rich folds long addresses on a narrow console


@pytest.fixture(scope="module")
def inproc():
    """Run the CLI in this process (faster) and capture exit code, stdout and stderr."""
    from tierzero.cli import main, output

    main._register()

    def call(capsys, *args: str):
        code = output.invoke(main.app, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_free_plan_exits_0_with_table(inproc, capsys):
    code, out, _ = inproc(capsys, "guard", str(PLANS / "01_create_two_a1_free.json"), "--limits-date", "2026-07-01")
    assert code == 0
    assert "oci_core_instance.pve1" in out and "verdict: free" in out and "$0.00" in out


def test_costly_plan_exits_1_with_reasons(inproc, capsys):
    code, out, err = inproc(capsys, "guard", str(PLANS / "21_lb_100mbps_max.json"), "--limits-date", "2026-07-01")
    assert code == 1
    assert "$6.70" in out and "load balancer bandwidth" in out
    assert "refused" in err and "$6.70/month" in err


def test_json_output(inproc, capsys):
    code, out, _ = inproc(capsys, "guard", str(PLANS / "03_create_three_a1_1x6_over.json"), "--limits-date", "2026-07-01", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["verdict"] == "refused" and data["usd_month"] == pytest.approx(13.908)
    assert data["limits_date"] == "2026-07-01"
    assert len(data["resources"]) == 3 and data["resources"][2]["usd_month"] == pytest.approx(13.908)


def test_allow_replace_is_repeatable(inproc, capsys):
    plan = str(PLANS / "07_replace_a1_delete_first.json")
    code, _, err = inproc(capsys, "guard", plan, "--limits-date", "2026-07-01")
    assert code == 1 and "delete or replace an A1 instance" in err
    code, out, _ = inproc(capsys, "guard", plan, "--limits-date", "2026-07-01",
                          "--allow-replace", "oci_core_instance.other", "--allow-replace", "oci_core_instance.pve2")
    assert code == 0 and "allowed by --allow-replace" in out


def test_old_design_by_limits_date(inproc, capsys):
    plan = str(PLANS / "04_old_design_3x1_33x8.json")
    assert inproc(capsys, "guard", plan, "--limits-date", "2026-06-14")[0] == 0
    code, out, _ = inproc(capsys, "guard", plan, "--limits-date", "2026-06-15")
    assert code == 1 and "$27.97" in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("not json", (), "not JSON"),
        ('{"format_version": "2.0"}', (), "unsupported plan format_version"),
        ("[1, 2]", (), "not an object"),
        ('{"format_version": "1.2"}', ("--limits-date", "2026-02-30"), "is not a date"),
        ('{"format_version": "1.2"}', ("--limits-date", "2001-01-01"), "no Always Free limit"),
    ],
)
def test_bad_input_exits_2_without_traceback(inproc, capsys, tmp_path, content, args, message):
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    code, _, err = inproc(capsys, "guard", str(plan), *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_missing_file_exits_2(inproc, capsys, tmp_path):
    code, _, err = inproc(capsys, "guard", str(tmp_path / "absent.json"))
    assert code == 2 and "cannot read" in err


def test_real_process_exit_code():
    result = run("guard", str(PLANS / "26_three_micros.json"), "--limits-date", "2026-07-01")
    assert result.returncode == 1, result.stderr
    assert "$19.72" in result.stdout


def test_add_fit_to_check():
    import yaml

    from tierzero.cli.guard_cmd import add_fit_to_check
    from tierzero.spec.models import Platform

    doc = yaml.safe_load((PLANS.parent / "specs" / "oci-free-tier.yaml").read_text())
    doc["cloud"]["oci"]["a1_instances"] = [{"name": f"a1-{i}", "ocpus": 2, "memory_gb": 12} for i in (1, 2)]
    fit = add_fit_to_check(Platform.model_validate(doc), "2026-07-01")
    assert fit.charged and fit.refused
    assert fit.lines[0] == "free tier (2026-07-01): refused, $28.04/month"
    assert any(line.startswith("  ✗ A1 OCPU-hours") and "Fix:" in line for line in fit.lines)
    assert "capacity:" in fit.lines
    assert fit.payload["free_tier"]["usd_month"] == pytest.approx(28.044)
    assert not add_fit_to_check(Platform.model_validate(doc), "2026-06-01").charged


def test_require_free_raises_refused_with_every_reason():
    from tierzero.errors import RefusedError
    from tierzero.freetier.guard import require_free

    plan = json.loads((PLANS / "42_mixed_over_many.json").read_text())
    with pytest.raises(RefusedError) as caught:
        require_free(plan, on=dt.date(2026, 7, 1))
    assert caught.value.exit_code == 1 and caught.value.message.count("\n  ") == 5
    assert require_free(json.loads((PLANS / "20_lb_10mbps_free.json").read_text())).verdict == "free"


def _many_free_volumes_and(extra: list[dict], count: int = 300) -> dict:
    """`count` software-protected Vault keys (free, and listed by the guard) to create, plus `extra` resource changes."""
    changes = [{"address": f"oci_kms_key.k[{i}]", "mode": "managed", "type": "oci_kms_key", "name": "k", "index": i,
                "change": {"actions": ["create"], "before": None, "after": {"protection_mode": "SOFTWARE"}}} for i in range(count)]
    return {"format_version": "1.2", "resource_changes": changes + extra}


def _a1(name: str, ocpus: int, actions: list[str]) -> dict:
    values = {"shape": "VM.Standard.A1.Flex", "display_name": name, "shape_config": [{"ocpus": str(ocpus), "memory_in_gbs": str(ocpus * 6)}],
              "source_details": [{"source_type": "image", "boot_volume_size_in_gbs": "50"}]}
    return {"address": f"oci_core_instance.{name}", "mode": "managed", "type": "oci_core_instance", "name": name,
            "change": {"actions": actions, "before": None if actions == ["create"] else values, "after": values}}


def test_a_large_plan_gets_a_summary_with_every_billable_line_and_refusal(inproc, capsys, tmp_path):
    """Over 200 resources: totals, each billable line, one line for the free rest, every refusal;
    --verbose gives the whole table, --json every resource."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_many_free_volumes_and([_a1("big", 4, ["create"]), _a1("huge", 8, ["create"])])))
    code, out, _ = inproc(capsys, "guard", str(plan), "--limits-date", "2026-07-01")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("Free-tier guard (limits of 2026-07-01): 302 resources in the plan")
    assert lines[1].startswith("total: A1 12 OCPU / 72 GB")
    billable = [line for line in lines if line.startswith("  oci_core_instance.")]
    assert [line.split()[0] for line in billable] == ["oci_core_instance.big", "oci_core_instance.huge"]
    assert all("/month" in line and "$0.00" not in line for line in billable)
    assert "300 more free resources: --verbose" in lines
    reasons = [line for line in lines if line.startswith("✗ ")]
    assert reasons and any("A1 OCPU-hours" in line for line in reasons)
    assert lines[-1].startswith("verdict: refused")
    assert "oci_kms_key.k[7]" not in out and "┃" not in out  # no table
    code, verbose, _ = inproc(capsys, "guard", str(plan), "--limits-date", "2026-07-01", "--verbose")
    assert code == 1 and "oci_kms_key.k[7]" in verbose and "oci_kms_key.k[299]" in verbose
    code, js, _ = inproc(capsys, "guard", str(plan), "--limits-date", "2026-07-01", "--json")
    assert code == 1 and len(json.loads(js)["resources"]) == 302


def test_a_plan_of_200_resources_still_gets_the_table(inproc, capsys, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_many_free_volumes_and([], count=200)))
    code, out, _ = inproc(capsys, "guard", str(plan), "--limits-date", "2026-07-01")
    assert code == 0 and "oci_kms_key.k[199]" in out and "more free resources" not in out
