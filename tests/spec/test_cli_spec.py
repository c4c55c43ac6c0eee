"""init / check / schema through the real console script entry point."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tierzero.cli.main import run
from spec_builder import blueprint_names

BLUEPRINTS = blueprint_names()


def tz(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def call(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        run(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_init_writes_a_valid_spec_and_private_keys(tmp_path, capsys, blueprint):
    code, out, _ = call(capsys, "init", str(tmp_path / "demo"), "--blueprint", blueprint)
    assert code == 0, out
    spec = tmp_path / "demo" / "tierzero.yaml"
    text = spec.read_text()
    assert text.startswith("# yaml-language-server: $schema=./tierzero.schema.json")
    assert json.loads((tmp_path / "demo" / "tierzero.schema.json").read_text())["title"].startswith("tierzero Platform")
    ws = tmp_path / "demo" / ".tierzero"
    for private in ("age.key", "id_ed25519"):
        assert stat.S_IMODE(os.stat(ws / private).st_mode) == 0o600
    assert (ws / "age.key").read_text().count("AGE-SECRET-KEY-1") == 1
    assert (ws / "age.pub").read_text().startswith("age1")
    assert (ws / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    assert (ws / "id_ed25519").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    ignore = (ws / ".gitignore").read_text().splitlines()
    assert "*" in ignore and "!*.pub" in ignore
    code, out, err = call(capsys, "check", "-f", str(spec), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["valid"] is True


def test_init_keeps_an_existing_spec_without_force(tmp_path, capsys):
    assert call(capsys, "init", str(tmp_path))[0] == 0
    spec = tmp_path / "tierzero.yaml"
    spec.write_text("# mine\n")
    age_before = (tmp_path / ".tierzero" / "age.key").read_bytes()
    code, out, _ = call(capsys, "init", str(tmp_path))
    assert code == 0 and "kept" in out and "--force" in out
    assert spec.read_text() == "# mine\n"
    assert call(capsys, "init", str(tmp_path), "--force")[0] == 0
    assert spec.read_text() != "# mine\n"
    assert (tmp_path / ".tierzero" / "age.key").read_bytes() == age_before, "keys are never regenerated"


def test_init_rejects_unknown_blueprint(tmp_path, capsys):
    code, _, err = call(capsys, "init", str(tmp_path), "--blueprint", "aws")
    assert code == 2 and "oci-free-tier" in err
    assert not (tmp_path / "tierzero.yaml").exists()


def test_oci_blueprint_fits_the_halved_allowance():
    from importlib import resources

    data = yaml.safe_load(resources.files("tierzero.spec").joinpath("blueprints/oci-free-tier.yaml").read_text())
    a1 = data["cloud"]["oci"]["a1_instances"]
    assert [(i["ocpus"], i["memory_gb"]) for i in a1] == [(1, 6), (1, 6)]
    micro = data["cloud"]["oci"]["micro_instances"]
    assert len(micro) == 1 and set(micro[0]["roles"]) == {"bastion", "quorum-witness"}
    assert data["hypervisors"]["proxmox"]["qdevice"]["host"] == micro[0]["name"]
    boots = [i.get("boot_volume_gb", 50) for i in a1 + micro]
    assert boots == [50, 50, 50]


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "the file is empty"),
        (b"# only a comment\n\n", "the file is empty"),
        (b"- a\n- b\n", "the spec is a list"),
        (b"just a string\n", "expected a mapping"),
        (b"\x00\x01\x02binary", "not a text file"),
        (b"\xff\xfe\xfa junk", "not valid UTF-8"),
        (b"a: 1\n---\nb: 2\n", "2 YAML documents"),
    ],
)
def test_unusable_files_exit_2_with_a_message(tmp_path, capsys, content, fragment):
    spec = tmp_path / "tierzero.yaml"
    spec.write_bytes(content)
    code, out, err = call(capsys, "check", "-f", str(spec))
    assert code == 2
    assert fragment in err
    assert "Traceback" not in out + err


def test_missing_file_exit_2(tmp_path, capsys):
    code, _, err = call(capsys, "check", "-f", str(tmp_path / "nope.yaml"))
    assert code == 2 and "tierzero init" in err


def test_check_json_lists_every_problem_with_position(capsys):
    fixture = Path(__file__).parent / "invalid" / "40-worker-ip-outside.yaml"
    code, out, _ = call(capsys, "check", "-f", str(fixture), "--json")
    assert code == 2
    report = json.loads(out)
    assert report["valid"] is False
    [problem] = [p for p in report["problems"] if p["path"] == "clusters[0].workers[0].ip"]
    assert problem["line"] == int(fixture.read_text().splitlines()[0].split(": ")[1])


def test_plaintext_secret_value_is_never_echoed(tmp_path, capsys):
    base = (Path(__file__).parent / "valid" / "base.yaml").read_text()
    spec = tmp_path / "tierzero.yaml"
    spec.write_text(base.replace("        acme_email: ops@example.com\n", "        acme_email: ops@example.com\n        cloudflare_api_token: s3cr3t-canary-value\n"))
    code, out, err = call(capsys, "check", "-f", str(spec))
    assert code == 2
    assert "s3cr3t-canary-value" not in out + err
    assert "plaintext" in err


def test_usage_errors_exit_2(capsys):
    assert call(capsys, "check", "--no-such-flag")[0] == 2
    assert call(capsys, "no-such-command")[0] == 2


def test_debug_shows_traceback_only_when_asked(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    plain = tz("check", "-f", missing)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = tz("--debug", "check", "-f", missing)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_schema_is_json_schema_of_the_spec(capsys):
    code, out, _ = call(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"apiVersion", "kind", "metadata", "hypervisors", "clusters", "services", "cloud"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_schema_validates_the_blueprints(capsys):
    import jsonschema
    from importlib import resources

    code, out, _ = call(capsys, "schema")
    validator = jsonschema.Draft202012Validator(json.loads(out))
    for name in BLUEPRINTS:
        data = yaml.safe_load(resources.files("tierzero.spec").joinpath(f"blueprints/{name}.yaml").read_text())
        assert not list(validator.iter_errors(data)), name
