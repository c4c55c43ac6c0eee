"""`tierzero talos …` through the real entry point: exit codes, files and their modes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
import typer
import yaml

from tierzero.cli import output, talos_cmd

APP = typer.Typer()


@APP.callback()
def _root() -> None:
    """A root like tierzero's, holding only the talos commands (in-process, fast)."""


talos_cmd.register(APP)


def run(argv: list[str]) -> int:
    return output.invoke(APP, argv)


def test_real_entry_point_exit_codes(tmp_path):
    base = [sys.executable, "-m", "tierzero", "talos"]
    ok = subprocess.run([*base, "gensecret", "-o", str(tmp_path / "s.yaml")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run([*base, "gensecret", "-o", str(tmp_path / "s.yaml")], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_gensecret_writes_a_private_bundle_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "secrets.yaml"
    assert run(["talos", "gensecret", "-o", str(target)]) == 0
    assert mode(target) == 0o600
    first = target.read_text()
    assert set(yaml.safe_load(first)) == {"cluster", "secrets", "trustdinfo", "certs"}
    assert run(["talos", "gensecret", "-o", str(target)]) == 2
    assert target.read_text() == first
    assert run(["talos", "gensecret", "-o", str(target), "--force"]) == 0
    assert target.read_text() != first


def test_overwriting_a_readable_file_never_puts_the_secret_in_a_readable_inode(tmp_path):
    import os

    target = tmp_path / "secrets.yaml"
    target.write_text("old, not secret\n")
    target.chmod(0o644)
    os.link(target, tmp_path / "other-name")  # the same inode under another name, readable by others
    assert run(["talos", "gensecret", "-o", str(target), "--force"]) == 0
    assert mode(target) == 0o600 and "secrets" in yaml.safe_load(target.read_text())
    assert (tmp_path / "other-name").read_text() == "old, not secret\n"  # replaced by rename, not written in place


def test_genconfig_matches_the_oracle_and_writes_private_files(tmp_path, talos_oracles):
    secrets = talos_oracles / "stability" / "secrets.yaml"
    argv = ["talos", "genconfig", "base", "https://base:6443", "--with-secrets", str(secrets),
            "--kubernetes-version", "1.28.0", "--talos-version", "v1.14", "-o", str(tmp_path),
            "--install-disk", ""]  # the oracle is the library's output, which has no install disk (talosctl's default is /dev/sda)
    assert run(argv) == 0
    for name in ("controlplane.yaml", "worker.yaml", "talosconfig"):
        assert mode(tmp_path / name) == 0o600
    assert (tmp_path / "controlplane.yaml").read_text() == (talos_oracles / "stability/v1.14/base-controlplane.yaml").read_text()
    assert (tmp_path / "worker.yaml").read_text() == (talos_oracles / "stability/v1.14/base-worker.yaml").read_text()
    assert yaml.safe_load((tmp_path / "talosconfig").read_text())["context"] == "base"
    assert run(argv) == 2, "existing files are kept without --force"
    assert run([*argv, "--force"]) == 0


def test_genconfig_flags(tmp_path, talos_oracles, capsys):
    secrets = talos_oracles / "stability" / "secrets.yaml"
    patch = tmp_path / "patch.yaml"
    patch.write_text("machine:\n  nodeLabels:\n    from: file\n")
    argv = [
        "talos", "genconfig", "demo", "https://10.0.0.5:6443", "--with-secrets", str(secrets), "--talos-version", "v1.11",
        "-o", str(tmp_path / "out"), "--additional-sans", "a.example,b.example", "--dns-domain", "corp.local",
        "--install-disk", "/dev/vda", "--install-image", "ghcr.io/siderolabs/installer:v1.11.0",
        "--install-extra-kernel-args", "console=ttyS0,net.ifnames=0", "--registry-mirror", "docker.io=https://m1",
        "--registry-mirror", "docker.io=https://m2", "--local-api-server-port", "7443",
        "--allow-scheduling-on-control-planes", "--sysctl", "vm.max_map_count=262144", "--cni-url", "https://x/cni.yaml",
        "--config-patch", f"@{patch}", "--config-patch-worker", "machine:\n  nodeLabels:\n    role: w\n",
        "--with-kubeconfig", "--json",
    ]
    assert run(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["contract"] == "v1.11" and len(report["files"]) == 4
    cp = yaml.safe_load((tmp_path / "out" / "controlplane.yaml").read_text())
    worker = yaml.safe_load((tmp_path / "out" / "worker.yaml").read_text())
    assert cp["machine"]["certSANs"] == ["a.example", "b.example"]
    assert cp["machine"]["install"]["extraKernelArgs"] == ["console=ttyS0", "net.ifnames=0"]
    assert cp["machine"]["registries"]["mirrors"]["docker.io"]["endpoints"] == ["https://m1", "https://m2"]
    assert cp["cluster"]["controlPlane"]["localAPIServerPort"] == 7443
    assert cp["cluster"]["allowSchedulingOnControlPlanes"] is True
    assert cp["machine"]["sysctls"] == {"vm.max_map_count": "262144"}
    assert cp["cluster"]["network"]["cni"]["urls"] == ["https://x/cni.yaml"]
    assert cp["machine"]["nodeLabels"]["from"] == "file" and "role" not in cp["machine"]["nodeLabels"]
    assert worker["machine"]["nodeLabels"] == {"from": "file", "role": "w"}
    assert mode(tmp_path / "out" / "kubeconfig") == 0o600


@pytest.mark.parametrize(
    "extra",
    [
        ["--talos-version", "v1.9"],
        ["--sysctl", "novalue"],
        ["--registry-mirror", "docker.io"],
        ["--config-patch", "@/does/not/exist.yaml"],
        ["--with-secrets", "/does/not/exist.yaml"],
    ],
)
def test_genconfig_bad_input_exits_2(tmp_path, extra):
    assert run(["talos", "genconfig", "c", "https://c:6443", "-o", str(tmp_path), *extra]) == 2
    assert not (tmp_path / "controlplane.yaml").exists()


def test_genconfig_bad_endpoint_exits_2(tmp_path):
    assert run(["talos", "genconfig", "c", "http://c:6443", "-o", str(tmp_path)]) == 2


def test_validate_exit_codes(tmp_path, talos_oracles, capsys):
    schemas = talos_oracles / "schemas"
    good = talos_oracles / "stability" / "v1.13" / "base-controlplane.yaml"
    # the oracle has no install disk: valid for an installed disk image (cloud mode), not for an ISO (metal mode)
    assert run(["talos", "validate", str(good), "--talos-version", "v1.13", "--schema", str(schemas), "--mode", "cloud"]) == 0
    assert run(["talos", "validate", str(good), "--talos-version", "v1.13", "--schema", str(schemas)]) == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text(good.read_text().replace("https://base:6443", "http://base:6443", 1))
    assert run(["talos", "validate", str(broken), "--talos-version", "v1.13", "--schema", str(schemas)]) == 1
    assert "not an https URL" in capsys.readouterr().err
    assert run(["talos", "validate", str(broken), "--talos-version", "v1.13", "--schema", str(schemas), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["problems"]
    assert run(["talos", "validate", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "bad.yaml").write_text("a: [")
    assert run(["talos", "validate", str(tmp_path / "bad.yaml")]) == 2
