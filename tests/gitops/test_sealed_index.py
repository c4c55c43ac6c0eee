"""The digest index beside the sealed files (tierzero.workspace.sealing): a re-plan runs no sops,
a changed or hand-edited file is sealed again, and the index tells nothing about the plaintext."""

from __future__ import annotations

import hashlib
import json

from tierzero.adapters.sops import AgeKey
from tierzero.render.sealing import Sealed
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.plan import render_sealed_plan, seal_stream, write_plan
from tierzero.workspace.sealing import INDEX, digest_key, plaintext_hmac, read_index


def _plan(project):
    plan = render_sealed_plan(project.loaded, project.ws)
    write_plan(plan.files, project.ws.render_dir)
    return plan


def test_a_replan_runs_no_sops_and_is_byte_identical(project_factory):
    project = project_factory()
    first = _plan(project)
    sealed = [p for p in first.files if p.endswith(".sops.yaml") and not p.endswith("/.sops.yaml")]
    assert first.sops_runs == len(sealed) >= 4  # 3 machine configs and the GitOps Secrets, each encrypted once
    second = _plan(project)
    assert second.sops_runs == 0 and second.reused == set(sealed)
    assert second.files == first.files
    assert set(read_index(project.ws.render_dir)) == set(sealed)


def test_a_changed_or_hand_edited_file_is_sealed_again(project_factory):
    project = project_factory()
    first = _plan(project)
    path = "talos/main/cp-1.sops.yaml"
    target = project.ws.render_dir / path
    target.write_bytes(first.files["talos/main/cp-2.sops.yaml"])  # a valid sops file, but not the one the index describes
    again = _plan(project)
    assert again.sops_runs == 1 and path not in again.reused
    assert project.decrypt(again.files[path]) != project.decrypt(first.files["talos/main/cp-2.sops.yaml"])
    assert json.loads(again.files[INDEX])["files"][path]["ciphertext_sha256"] == hashlib.sha256(again.files[path]).hexdigest()


def test_a_plan_without_the_index_is_compared_once_and_kept(project_factory):
    """A plan written before the index existed: its files are decrypted and compared (no new
    ciphertext, so Git shows no change), and the index is written for next time."""
    project = project_factory()
    first = _plan(project)
    (project.ws.render_dir / INDEX).unlink()
    again = _plan(project)
    assert again.files == first.files and again.sops_runs == len(again.reused) > 0
    assert _plan(project).sops_runs == 0


def test_the_index_reveals_nothing_without_the_workspace_key(tmp_path):
    """The digest is keyed: the same plaintext under another workspace key, or at another path,
    gives an unrelated value; neither the plaintext nor its plain SHA-256 appears in the index."""
    plaintext = b"machine:\n    token: abcdef.0123456789abcdef\n"
    one, two = (_identity(tmp_path / name) for name in ("one", "two"))
    sealed = Sealed(plaintext, whole=True)
    mac = plaintext_hmac(digest_key(one), "talos/main/cp-1.sops.yaml", sealed, "age1x")
    assert mac != plaintext_hmac(digest_key(two), "talos/main/cp-1.sops.yaml", sealed, "age1x")
    assert mac != plaintext_hmac(digest_key(one), "talos/main/cp-2.sops.yaml", sealed, "age1x")
    assert mac == plaintext_hmac(digest_key(one), "talos/main/cp-1.sops.yaml", Sealed(plaintext, whole=True), "age1x")
    assert mac != hashlib.sha256(plaintext).hexdigest() and len(bytes.fromhex(mac)) == 32
    assert digest_key(one) not in one.encode()


def test_the_index_of_a_real_plan_holds_no_plaintext(project_factory):
    project = project_factory()
    plan = _plan(project)
    index = json.dumps(list(read_index(project.ws.render_dir).values())).encode()  # the entries, not the paths they are filed under
    for path in read_index(project.ws.render_dir):
        text = project.decrypt(plan.files[path])
        values = [v for v in _leaves(text) if isinstance(v, str) and len(v) >= 8]
        assert values and not any(v.encode() in index for v in values), path
        assert hashlib.sha256(json.dumps(text).encode()).hexdigest().encode() not in index


def test_sealing_starts_while_rendering_goes_on(project_factory):
    """Each sealed file goes to the pool as soon as the renderer yields it: the first encryption
    is under way before the last file is rendered."""
    project = project_factory()
    started: list[str] = []
    key = AgeKey(key_file=project.ws.age_key)

    def rendered():
        for i in range(3):
            yield f"talos/main/n{i}.sops.yaml", Sealed(f"n: {i}\n".encode(), whole=True)
            started.append(f"after {i}")
        yield "plain.txt", b"x"

    plan = seal_stream(rendered(), project.secrets.recipient(), key, None, index=True)
    assert plan.sops_runs == 3 and started == ["after 0", "after 1", "after 2"]
    assert sorted(plan.files) == ["plain.txt", INDEX, "talos/main/n0.sops.yaml", "talos/main/n1.sops.yaml", "talos/main/n2.sops.yaml"]


def _identity(root) -> str:
    ws = Workspace(root / ".tierzero")
    init_workspace(ws)
    return next(line for line in ws.age_key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))


def _leaves(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def test_a_replan_that_changes_nothing_writes_nothing(tmp_path):
    """The plan directory is swapped in whole when anything differs (a file changed, added or
    left over); when nothing does, no file is written or deleted."""
    import os

    out = tmp_path / "render"
    write_plan({"a/b.txt": b"1", "c.txt": b"2"}, out)
    before = {p: os.stat(out / p).st_ino for p in ("a/b.txt", "c.txt")}
    write_plan({"a/b.txt": b"1", "c.txt": b"2"}, out)
    assert {p: os.stat(out / p).st_ino for p in before} == before
    (out / "left-over.txt").write_bytes(b"x")
    write_plan({"a/b.txt": b"1", "c.txt": b"3"}, out)
    assert (out / "c.txt").read_bytes() == b"3" and not (out / "left-over.txt").exists()
    assert os.stat(out / "a/b.txt").st_ino != before["a/b.txt"]  # the whole directory was swapped
    (out / "c.txt").unlink()
    (out / "c.txt").symlink_to(out / "a/b.txt")  # the same bytes, but a link: replaced by a file
    write_plan({"a/b.txt": b"1", "c.txt": b"1"}, out)
    assert not (out / "c.txt").is_symlink() and (out / "c.txt").read_bytes() == b"1"


def test_the_digest_key_is_hkdf_sha256_as_cryptography_derives_it(tmp_path):
    """The standard-library derivation gives the bytes `cryptography`'s HKDF gives (RFC 5869, no
    salt, the index's info string), so indexes written before it stay valid; and RFC 5869's own
    test case 3 (SHA-256, no salt, no info) through the same two steps."""
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from tierzero.workspace.sealing import _INFO

    for identity in (_identity(tmp_path / "one"), _identity(tmp_path / "two"), "  AGE-SECRET-KEY-1ABC \n"):
        want = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(identity.strip().encode())
        assert digest_key(identity) == want and len(want) == 32
    ikm = bytes([0x0B] * 22)
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    assert prk.hex() == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"
    assert hmac.new(prk, b"\x01", hashlib.sha256).digest().hex() == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
