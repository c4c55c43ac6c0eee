"""Issue 18 item 3: the guard refuses prices it cannot know (exit 1, "unknown at plan time") and rejects
prices that are not prices (exit 2, naming the address and attribute), within bounded memory."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys

import pytest

from tierzero.freetier.guard import guard_plan

DAY = "2026-07-01"
ON = dt.date(2026, 7, 1)
A1 = {"shape": "VM.Standard.A1.Flex", "shape_config": [{"ocpus": 1, "memory_in_gbs": 6}],
      "source_details": [{"source_type": "image", "boot_volume_size_in_gbs": 50}]}


def change(address, rtype, after, after_unknown=None, actions=("create",), before=None):
    return {"address": address, "mode": "managed", "type": rtype, "name": address.split(".")[1],
            "change": {"actions": list(actions), "before": before, "after": after, "after_unknown": after_unknown or {}}}


def plan(*changes):
    return {"format_version": "1.2", "resource_changes": list(changes)}


@pytest.fixture(scope="module")
def inproc():
    from tierzero.cli import main, output

    main._register()

    def call(capsys, *args: str):
        code = output.invoke(main.app, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


UNKNOWN_CASES = [
    # (resource type, after, after_unknown, the attribute named)
    ("oci_core_instance", {**A1, "shape_config": [{"ocpus": None, "memory_in_gbs": 6}]}, {"shape_config": [{"ocpus": True}]}, "shape_config.ocpus"),
    ("oci_core_instance", {**A1, "shape_config": [{"ocpus": 1, "memory_in_gbs": None}]}, {"shape_config": [{"memory_in_gbs": True}]}, "shape_config.memory_in_gbs"),
    ("oci_core_instance", {**A1, "shape_config": None}, {"shape_config": True}, "shape_config.ocpus"),  # the whole block
    ("oci_core_instance", {**A1, "shape": None}, {"shape": True}, "shape"),
    ("oci_core_instance", {**A1, "source_details": [{"boot_volume_size_in_gbs": None}]}, {"source_details": [{"boot_volume_size_in_gbs": True}]},
     "source_details.boot_volume_size_in_gbs"),
    ("oci_core_instance", {**A1, "preserve_boot_volume": None}, {"preserve_boot_volume": True}, "preserve_boot_volume"),
    ("oci_core_instance", {**A1, "launch_volume_attachments": [{"launch_create_volume_details": [{"size_in_gbs": None}]}]},
     {"launch_volume_attachments": [{"launch_create_volume_details": [{"size_in_gbs": True}]}]},
     "launch_volume_attachments.*.launch_create_volume_details.*.size_in_gbs"),
    ("oci_core_volume", {"size_in_gbs": None}, {"size_in_gbs": True}, "size_in_gbs"),
    ("oci_load_balancer_load_balancer", {"shape": "flexible", "shape_details": [{"minimum_bandwidth_in_mbps": 10}]},
     {"shape_details": [{"maximum_bandwidth_in_mbps": True}]}, "shape_details.maximum_bandwidth_in_mbps"),
    ("oci_core_public_ip", {"lifetime": None}, {"lifetime": True}, "lifetime"),
]


@pytest.mark.parametrize(("rtype", "after", "unknown", "attribute"), UNKNOWN_CASES, ids=[c[3] + "@" + c[0] for c in UNKNOWN_CASES])
def test_a_price_unknown_at_plan_time_is_refused(rtype, after, unknown, attribute):
    """`after_unknown` marks values known only after apply (OpenTofu JSON output format, "change representation");
    an unknown size, shape, bandwidth, lifetime or preserve flag could be anything, so it must not pass as free."""
    report = guard_plan(plan(change(f"{rtype}.x", rtype, after, unknown)), on=ON)
    assert report.verdict == "refused"
    assert len(report.unknowns) == 1 and report.unknowns[0].startswith(f"unknown at plan time: {rtype}.x: {attribute}")
    known = guard_plan(plan(change(f"{rtype}.x", rtype, after)), on=ON)
    assert known.unknowns == []  # the boundary: the same values, none marked unknown, are judged as they are


def test_unknown_attributes_that_set_no_price_pass():
    """An OCID, a display name or a private IP unknown at plan time (as for every create) changes no price."""
    report = guard_plan(plan(change("oci_core_instance.a", "oci_core_instance", A1, {"id": True, "display_name": True,
                                    "create_vnic_details": [{"private_ip": True}]})), on=ON)
    assert report.verdict == "free" and report.unknowns == []


def test_cli_refuses_unknown_with_exit_1(inproc, capsys, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan(change("oci_core_volume.data", "oci_core_volume", {"size_in_gbs": None}, {"size_in_gbs": True}))))
    code, out, err = inproc(capsys, "guard", str(path), "--limits-date", DAY)
    assert code == 1
    assert "unknown at plan time: oci_core_volume.data: size_in_gbs" in out + err and "Traceback" not in err


INVALID_CASES = [
    # (JSON text of the value, the attribute, what the message says)
    ('"abc"', "shape_config.ocpus", "is not a number"),
    ("-1", "shape_config.ocpus", "is negative"),
    ('"-6"', "shape_config.memory_in_gbs", "is negative"),
    ("NaN", "shape_config.ocpus", "is not a finite number"),
    ("Infinity", "shape_config.memory_in_gbs", "is not a finite number"),
    ("-Infinity", "shape_config.ocpus", "is not a finite number"),
    ("1e999", "source_details.boot_volume_size_in_gbs", "is not a finite number"),
    ('"1e999"', "shape_config.ocpus", "is not a finite number"),
    ("9" * 5000, "source_details.boot_volume_size_in_gbs", "is not a finite number"),
    ("true", "shape_config.ocpus", "is not a number"),
    ("[1]", "shape_config.memory_in_gbs", "is not a number"),
]


def _a1_with(attribute: str, raw: str) -> str:
    block, _, name = attribute.rpartition(".")
    after = json.loads(json.dumps(A1))
    after[block][0][name] = "@@VALUE@@"
    return json.dumps(plan(change('oci_core_instance.a1["pve-1"]', "oci_core_instance", after))).replace('"@@VALUE@@"', raw)


@pytest.mark.parametrize(("raw", "attribute", "message"), INVALID_CASES, ids=[c[0][:12] + "@" + c[1] for c in INVALID_CASES])
def test_invalid_price_values_exit_2_naming_address_and_attribute(raw, attribute, message, inproc, capsys, tmp_path):
    """A word, a negative size, NaN/Infinity (which Python's json accepts) or a number too long to be a size
    cannot be priced: exit 2 naming the resource and the attribute, never "free", never a traceback."""
    path = tmp_path / "plan.json"
    path.write_text(_a1_with(attribute, raw))
    code, _, err = inproc(capsys, "guard", str(path), "--limits-date", DAY)
    assert code == 2, err
    assert f'oci_core_instance.a1["pve-1"]: {attribute} = ' in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("size", ["0", "50", '"200"'])
def test_valid_boundary_values_are_accepted(size, inproc, capsys, tmp_path):
    """0 and numbers written as strings (tofu writes some numbers that way) are still sizes."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan(change("oci_core_volume.v", "oci_core_volume", {"size_in_gbs": "@@"}))).replace('"@@"', size))
    code, _, err = inproc(capsys, "guard", str(path), "--limits-date", DAY)
    assert code in (0, 1) and "Traceback" not in err


def _run_limited(args: list[str], limit_bytes: int) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit, env={**os.environ, "COLUMNS": "160"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 20000 + "]" * 20000, "nested too deeply"),
        ('{"format_version": "1.2", "resource_changes": ' + "[" * 100000, "nested too deeply"),
        ('{"a": NaN, "format_version": "1.2", "resource_changes": []}', None),  # NaN outside any price: harmless
    ],
    ids=["20k-brackets", "100k-open-brackets", "nan-elsewhere"],
)
def test_hostile_json_ends_cleanly_under_a_memory_limit(content, message, tmp_path):
    """Deep nesting made the guard exit 70 with RecursionError (issue 18); under a 1 GiB address-space
    limit it must end with exit 2 and a message, or judge the plan."""
    path = tmp_path / "plan.json"
    path.write_text(content)
    result = _run_limited(["guard", str(path), "--limits-date", DAY], 1024 ** 3)
    assert "Traceback" not in result.stderr
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2 and message in result.stderr


def test_a_plan_larger_than_the_cap_is_refused_before_reading(tmp_path, monkeypatch):
    """Memory stays bounded: a file over MAX_PLAN_BYTES is refused from its size alone (a sparse file here)."""
    from tierzero.freetier.plan_values import MAX_PLAN_BYTES

    path = tmp_path / "plan.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_PLAN_BYTES + 1)
    result = _run_limited(["guard", str(path)], 1024 ** 3)
    assert result.returncode == 2 and "larger than a plan tierzero reads" in result.stderr


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tierzero.errors import InputError  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ocpus=JSON_VALUES, boot=JSON_VALUES, config=JSON_VALUES, unknown=JSON_VALUES, lifetime=JSON_VALUES)
def test_any_json_in_price_fields_is_judged_or_refused_as_input(ocpus, boot, config, unknown, lifetime):
    """Whatever JSON sits where a price is read, the guard returns a verdict or an InputError (exit 2): never
    another exception (which the CLI would turn into exit 70)."""
    after = {"shape": "VM.Standard.A1.Flex", "shape_config": [{"ocpus": ocpus, "memory_in_gbs": 6}],
             "source_details": config if isinstance(config, list) else [{"boot_volume_size_in_gbs": boot}]}
    changes = [change("oci_core_instance.a", "oci_core_instance", after, unknown if isinstance(unknown, dict) else None),
               change("oci_core_public_ip.p", "oci_core_public_ip", {"lifetime": lifetime})]
    try:
        guard_plan(plan(*changes), on=ON)
    except InputError:
        pass
