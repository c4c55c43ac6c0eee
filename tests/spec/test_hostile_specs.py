"""Hostile specs end with exit 2, a position and a message, inside a memory limit: nothing they
describe is ever built. Each runs the real CLI in a child process whose address space is capped
(RLIMIT_AS), so unbounded growth would show as a MemoryError (exit 70) or a kill, not a pass.
Their speed is measured in benchmarks/test_spec_bounds_bench.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

MEMORY_LIMIT = 256 * 1024 * 1024  # bytes of address space: `tierzero check` of the starter spec needs under 200 MB
HEADER = "apiVersion: tierzero.dev/v1\nkind: Platform\nmetadata: {name: x}\n"


# The limit is set by the child itself, not with a preexec_fn: that would fork() a test process that
# has gRPC threads, whose fork handlers then break the child (see tierzero.adapters.child).
LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
           "sys.argv[0] = 'tierzero'; runpy.run_module('tierzero', run_name='__main__')").format(limit=MEMORY_LIMIT)


def check(path: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIMITED, "check", "-f", str(path), *extra], capture_output=True,
                          text=True, timeout=120)


def billion_laughs() -> str:
    """Nine lists of nine aliases nested nine deep: 9^9 (387 million) strings from 396 bytes."""
    lines = ['lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"l{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def refused(proc: subprocess.CompletedProcess[str], path: Path | str, message: str) -> tuple[int, int]:
    """Exit 2 with `message` at a position; returns (line, column)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    found = re.search(rf"^{re.escape(str(path))}:(\d+):(\d+): .*{re.escape(message)}", proc.stderr, re.M)
    assert found, proc.stderr[-2000:]
    return int(found.group(1)), int(found.group(2))


def test_the_memory_limit_leaves_room_for_a_real_spec(tmp_path: Path) -> None:
    """The limit is tight enough to catch runaway growth, loose enough for the starter spec."""
    spec = Path(__file__).resolve().parents[2] / "src" / "tierzero" / "spec" / "blueprints" / "oci-free-tier.yaml"
    assert check(spec).returncode == 0


def test_billion_laughs_is_refused_at_the_alias_that_overflows(tmp_path: Path) -> None:
    text = billion_laughs()
    assert len(text) < 400
    spec = tmp_path / "laughs.yaml"
    spec.write_text(text)
    line, column = refused(check(spec), spec, "makes the document expand to more than 100,000 values")
    assert text.splitlines()[line - 1][column - 1] == "*"  # the position is an alias


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "loop.yaml"
    spec.write_text(HEADER + "hypervisors: &h {proxmox: [*h]}\n")
    assert refused(check(spec), spec, "alias *h refers to the node that contains it") == (4, len("hypervisors: &h {proxmox: [") + 1)


def test_twenty_thousand_brackets_are_refused_without_recursing(tmp_path: Path) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert refused(check(spec), spec, "brackets nested more than 64 deep") == (1, 3 + 65)


def test_deep_block_nesting_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "dashes.yaml"
    spec.write_text("a:\n" + "- " * 20_000 + "x\n")
    refused(check(spec), spec, "collections nested more than 64 deep")


def test_a_large_file_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    spec = tmp_path / "big.yaml"
    text = HEADER + ("# padding\n" * 2_000_000)
    spec.write_text(text)
    line, _ = refused(check(spec), spec, "larger than 64 KiB")
    assert line == text[:64 * 1024].count("\n") + 1  # the line holding byte 65,537


def test_an_endless_file_is_refused(tmp_path: Path) -> None:
    refused(check("/dev/zero"), "/dev/zero", "larger than 64 KiB")


def test_a_number_too_long_to_convert_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "digits.yaml"
    spec.write_text(HEADER + "hypervisors: {proxmox: {vlan: " + "9" * 5000 + "}}\n")
    assert refused(check(spec), spec, "a number with 5,000 characters") == (4, 31)


def test_booleans_and_quoted_numbers_are_not_counts(tmp_path: Path) -> None:
    spec = tmp_path / "types.yaml"
    first, second = "      - {name: a, address: 10.0.0.2, memory_gb: 8, cores: true}", "      - {name: b, address: 10.0.0.3, memory_gb: 8, cores: '2'}"
    spec.write_text(HEADER + "hypervisors:\n  proxmox:\n    cluster_name: a\n    network: 10.0.0.0/24\n    gateway: 10.0.0.1\n"
                    f"    nodes:\n{first}\n{second}\n")
    proc = check(spec)
    assert refused(proc, spec, "cores: true is a boolean but this field takes a whole number") == (10, first.index("true") + 1)
    assert refused(proc, spec, "cores: '2' is a string but this field takes a whole number; write it without quotes") == (11, second.index("'2'") + 1)


def test_pasted_private_keys_are_refused_and_never_echoed(tmp_path: Path) -> None:
    body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
    age = "AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE6MU"
    spec = tmp_path / "keys.yaml"
    spec.write_text(HEADER + "hypervisors:\n  proxmox:\n    cluster_name: a\n    network: 10.0.0.0/24\n    gateway: 10.0.0.1\n"
                    "    nodes:\n      - name: a\n        address: 10.0.0.2\n        memory_gb: 8\n        ssh:\n"
                    f"          private_key: |\n            -----BEGIN OPENSSH PRIVATE KEY-----\n            {body}\n"
                    "            -----END OPENSSH PRIVATE KEY-----\n"
                    f"      - {{name: b, address: 10.0.0.3, memory_gb: {age}, token_id: 'root@pam!x', token_secret: 'file:{age}'}}\n")
    proc = check(spec)
    refused(proc, spec, "private_key: this holds an OpenSSH private key")
    refused(proc, spec, "memory_gb: this holds an age secret key")
    refused(proc, spec, "token_secret: this holds an age secret key")
    assert body not in proc.stderr + proc.stdout and age[16:] not in proc.stderr + proc.stdout
    as_json = check(spec, "--json")
    assert as_json.returncode == 2 and body not in as_json.stdout and age[16:] not in as_json.stdout
    assert {p["path"] for p in json.loads(as_json.stdout)["problems"]} == {
        "hypervisors.proxmox.nodes[0].ssh.private_key", "hypervisors.proxmox.nodes[1].memory_gb",
        "hypervisors.proxmox.nodes[1].token_secret"}


@pytest.mark.parametrize("text", [billion_laughs(), "a: " + "{" * 20_000 + "}" * 20_000 + "\n"], ids=["aliases", "braces"])
def test_check_json_reports_the_bound_with_its_position(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "hostile.yaml"
    spec.write_text(text)
    proc = check(spec, "--json")
    assert proc.returncode == 2, proc.stderr
    (problem,) = json.loads(proc.stdout)["problems"]
    assert problem["line"] >= 1 and problem["column"] > 1 and problem["severity"] == "error"
