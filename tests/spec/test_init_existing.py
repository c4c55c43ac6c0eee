"""Issue 17 case 7: `tierzero init DIR` over an existing workspace keeps what is there and creates what is missing.

The right behaviour is the README's own promise for `init`: "An existing spec is kept unless you pass --force;
keys are never replaced." (README.md, Commands table)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tierzero.cli.main import run

MINE = "# my spec\napiVersion: tierzero.dev/v1\n"


def call(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        run(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def snapshot(ws) -> dict[str, bytes]:
    return {name: (ws / name).read_bytes() for name in ("age.key", "age.pub", "id_ed25519", "id_ed25519.pub")}


@pytest.mark.parametrize("missing", [(), ("age.key", "age.pub"), ("id_ed25519", "id_ed25519.pub"), (".gitignore",)],
                         ids=["nothing", "age-pair", "ssh-pair", "gitignore"])
def test_existing_spec_is_kept_and_what_is_missing_is_created(tmp_path, capsys, missing):
    (tmp_path / "tierzero.yaml").write_text(MINE)
    if missing:
        assert call(capsys, "init", str(tmp_path), "--force")[0] == 0  # a full workspace first
        (tmp_path / "tierzero.yaml").write_text(MINE)
        before = snapshot(tmp_path / ".tierzero")
        for name in missing:
            (tmp_path / ".tierzero" / name).unlink()
    code, out, err = call(capsys, "init", str(tmp_path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (tmp_path / "tierzero.yaml").read_text() == MINE
    assert any(k.startswith(str(tmp_path / "tierzero.yaml")) for k in report["kept"])
    ws = tmp_path / ".tierzero"
    for name in ("age.key", "id_ed25519"):
        assert stat.S_IMODE(os.stat(ws / name).st_mode) == 0o600
    assert (tmp_path / "tierzero.schema.json").is_file() and (ws / ".gitignore").is_file()
    created = set(report["created"])
    assert {str(ws / name) for name in missing} <= created
    if missing:
        after = snapshot(ws)
        for name, data in before.items():
            if name not in missing:
                assert after[name] == data, f"{name} was replaced"


def test_plain_output_says_what_was_kept(tmp_path, capsys):
    (tmp_path / "tierzero.yaml").write_text(MINE)
    code, out, _ = call(capsys, "init", str(tmp_path))
    assert code == 0
    assert f"kept {tmp_path / 'tierzero.yaml'} (pass --force" in out
    assert f"wrote {tmp_path / '.tierzero' / 'age.key'}" in out


def test_force_rewrites_the_spec_only(tmp_path, capsys):
    assert call(capsys, "init", str(tmp_path))[0] == 0
    (tmp_path / "tierzero.yaml").write_text(MINE)
    keys = snapshot(tmp_path / ".tierzero")
    code, out, _ = call(capsys, "init", str(tmp_path), "--force", "--blueprint", "proxmox", "--json")
    assert code == 0
    assert (tmp_path / "tierzero.yaml").read_text() != MINE
    assert snapshot(tmp_path / ".tierzero") == keys
    assert set(json.loads(out)["kept"]) >= {str(tmp_path / ".tierzero" / n) for n in keys}


def test_a_lost_ssh_public_key_is_derived_from_the_private_key(tmp_path, capsys):
    """The .pub is the private key's public half: recreated, never a new pair (keys are never replaced)."""
    assert call(capsys, "init", str(tmp_path))[0] == 0
    ws = tmp_path / ".tierzero"
    public = (ws / "id_ed25519.pub").read_text()
    private = (ws / "id_ed25519").read_bytes()
    (ws / "id_ed25519.pub").unlink()
    assert call(capsys, "init", str(tmp_path))[0] == 0
    assert (ws / "id_ed25519.pub").read_text() == public and (ws / "id_ed25519").read_bytes() == private


@pytest.mark.parametrize(("private", "public"), [("age.key", "age.pub"), ("id_ed25519", "id_ed25519.pub")])
def test_a_public_key_without_its_private_key_is_refused(tmp_path, capsys, private, public):
    """A new pair would orphan secrets encrypted to the old age recipient, or hosts trusting the old SSH key."""
    assert call(capsys, "init", str(tmp_path))[0] == 0
    ws = tmp_path / ".tierzero"
    old_public = (ws / public).read_bytes()
    (ws / private).unlink()
    code, _, err = call(capsys, "init", str(tmp_path))
    assert code == 2 and f"{ws / private} is missing" in err and "Traceback" not in err
    assert (ws / public).read_bytes() == old_public and not (ws / private).exists()
