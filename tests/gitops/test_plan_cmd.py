"""`tierzero plan` end to end through the CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tierzero.cli.main import run
from tierzero.render import plan as plan_module
from tierzero.workspace.plan import render_plan, write_plan

from tierzero.adapters.sops import encrypt

from .conftest import CRDS, canary, full_spec, make_project, read_tree


def call(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        run(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture
def full(tmp_path, monkeypatch):
    spec, env = full_spec()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    project = make_project(tmp_path / "full", spec)
    return project, env


def test_plan_writes_the_tree_and_is_byte_identical_on_rerun(full, capsys):
    project, env = full
    spec = str(project.root / "tierzero.yaml")
    code, out, err = call(capsys, "plan", "-f", spec, "--validate", "--crd-schemas", str(CRDS))
    assert code == 0, err
    assert "cluster main:" in out and "secrets encrypted" in out and "validated" in out
    out_dir = project.ws.render_dir
    first = read_tree(out_dir)
    assert "gitops/main/clusters/main/flux-system/kustomization.yaml" in first
    assert {p.split("/")[0] for p in first} == {"gitops", "talos", "cloud", "sealed.json"}  # sealed.json: the keyed digests (workspace/sealing.py)
    assert all(p.startswith("gitops/main/") for p in first if p.startswith("gitops/"))
    assert "cloud/tierzero.auto.tfvars.json" in first
    code, out, err = call(capsys, "plan", "-f", spec, "--json")
    assert code == 0, err
    summary = json.loads(out)
    (cluster,) = summary["clusters"]
    assert cluster["secrets"] == cluster["reused"] == 4 and summary["written"] is True
    hosts = summary["capacity"]["hosts"]
    assert [h["node"] for h in hosts] == ["pve1", "pve2"] and all(h["memory_gb"] == 6 for h in hosts)
    assert read_tree(out_dir) == first
    # The canaries set through env: references appear nowhere in plaintext under the plan dir.
    for path in out_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(v.encode() in data for v in env.values()), path
    assert not any(v in out for v in env.values())


def test_a_changed_secret_changes_only_its_file(full, capsys, monkeypatch):
    project, env = full
    spec = str(project.root / "tierzero.yaml")
    assert call(capsys, "plan", "-f", spec)[0] == 0
    first = read_tree(project.ws.render_dir)
    monkeypatch.setenv("GC_TOKEN", "rotated-token-value-77")
    assert call(capsys, "plan", "-f", spec)[0] == 0
    second = read_tree(project.ws.render_dir)
    changed = sorted(p for p in first if first[p] != second[p])
    secret = "gitops/main/infrastructure/controllers/alloy.grafana-cloud.sops.yaml"
    assert changed == [secret, "sealed.json"]  # the file, and its entry in the digest index
    assert project.decrypt(second[secret])["stringData"]["token"] == "rotated-token-value-77"
    before, after = (json.loads(tree["sealed.json"])["files"] for tree in (first, second))
    assert [p for p in after if after[p] != before[p]] == [secret]


def test_plan_to_another_directory(full, capsys, tmp_path):
    project, _ = full
    out = tmp_path / "elsewhere"
    code, _, err = call(capsys, "plan", "-f", str(project.root / "tierzero.yaml"), "--out", str(out))
    assert code == 0, err
    assert (out / "gitops/main/.sops.yaml").is_file()
    assert not project.ws.render_dir.exists()


def test_unset_env_reference_is_exit_2_naming_the_variable(full, capsys, monkeypatch):
    project, _ = full
    monkeypatch.delenv("TSIG")
    code, out, err = call(capsys, "plan", "-f", str(project.root / "tierzero.yaml"))
    assert code == 2
    assert "TSIG" in err and "Traceback" not in err
    assert not project.ws.render_dir.exists()


def test_missing_workspace_key_is_exit_2(full, capsys):
    project, _ = full
    project.ws.age_key.unlink()
    code, _, err = call(capsys, "plan", "-f", str(project.root / "tierzero.yaml"))
    assert code == 2 and "tierzero init" in err


def test_missing_spec_is_exit_2(capsys, tmp_path):
    code, _, _ = call(capsys, "plan", "-f", str(tmp_path / "nope.yaml"))
    assert code == 2


def test_a_failing_part_leaves_the_previous_plan_untouched(full, capsys, monkeypatch):
    project, _ = full
    spec = str(project.root / "tierzero.yaml")
    assert call(capsys, "plan", "-f", spec)[0] == 0
    before = read_tree(project.ws.render_dir)

    def broken(ctx):
        raise RuntimeError("part failed")

    monkeypatch.setattr(plan_module, "PARTS", [*plan_module.PARTS, ("broken", broken)])
    code, _, err = call(capsys, "plan", "-f", spec)
    assert code != 0 and "part failed" in err  # an unexpected failure, reported in one line
    assert read_tree(project.ws.render_dir) == before
    assert not [p for p in project.ws.root.iterdir() if p.name.startswith(".render.")]


def test_write_plan_is_all_or_nothing(tmp_path):
    out = tmp_path / "render"
    write_plan({"a/x.yaml": b"1"}, out)
    with pytest.raises(ValueError):
        write_plan({"a/y.yaml": b"2", "../escape": b"3"}, out)
    assert read_tree(out) == {"a/x.yaml": b"1"}
    write_plan({"b.yaml": b"2"}, out)
    assert read_tree(out) == {"b.yaml": b"2"}


def test_render_all_is_sorted_and_prefixed(full):
    project, _ = full
    files = render_plan(project.loaded, project.ws)
    assert list(files) == sorted(files)
    kust = yaml.safe_load(files["gitops/main/infrastructure/controllers/kustomization.yaml"])
    assert "tailscale-operator.yaml" in kust["resources"]


def test_plan_help_lists_options():
    out = subprocess.run([sys.executable, "-m", "tierzero", "plan", "--help"], capture_output=True, text=True, timeout=60).stdout
    for option in ("--file", "--out", "--validate", "--json", "--crd-schemas"):
        assert option in out


def test_file_and_sops_references_never_reach_the_plan_in_plaintext(tmp_path, capsys, monkeypatch):
    spec, env = full_spec()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    addons = spec["clusters"][0]["addons"]
    addons["tailscale_operator"]["oauth_client_secret"] = "file:creds/ts-secret"
    addons["grafana_alloy"]["token"] = "sops:creds/cloud.sops.yaml#grafana.token"
    project = make_project(tmp_path / "refs", spec)
    from_file, from_sops = canary("file"), canary("sops")
    (project.root / "creds").mkdir()
    (project.root / "creds" / "ts-secret").write_text(from_file + "\n")
    doc = yaml.safe_dump({"grafana": {"token": from_sops}}).encode()
    (project.root / "creds" / "cloud.sops.yaml").write_bytes(encrypt(doc, project.secrets.recipient()))
    code, out, err = call(capsys, "plan", "-f", str(project.root / "tierzero.yaml"), "--validate", "--crd-schemas", str(CRDS))
    assert code == 0, err
    files = read_tree(project.ws.render_dir)
    assert not any(v.encode() in data for data in files.values() for v in (from_file, from_sops))
    prefix = "gitops/main/infrastructure/controllers/"
    assert project.decrypt(files[prefix + "tailscale.operator-oauth.sops.yaml"])["stringData"]["client_secret"] == from_file
    assert project.decrypt(files[prefix + "alloy.grafana-cloud.sops.yaml"])["stringData"]["token"] == from_sops


def test_plan_prints_the_capacity_block_once(full, capsys):
    project, _ = full
    code, out, _ = call(capsys, "plan", "-f", str(project.root / "tierzero.yaml"))
    assert code == 0
    assert out.count("capacity:") == 1 and out.count("assumptions:") == 1
    host_lines = [line for line in out.splitlines() if line.startswith("  pve")]
    assert host_lines and len(host_lines) == len(set(host_lines))
    assert "spare -" not in out


def test_plan_says_what_deploy_changes_on_the_proxmox_hosts(tmp_path, capsys):
    code, _, err = call(capsys, "init", str(tmp_path / "onprem"), "--blueprint", "proxmox")
    assert code == 0, err
    code, out, err = call(capsys, "plan", "-f", str(tmp_path / "onprem" / "tierzero.yaml"), "--json")
    assert code == 0, err
    hosts = json.loads(out)["hosts"]
    assert any(line.startswith("API token root@pam!tierzero, privilege-separated, with one ACL entry on /: role TierZero (16 privileges")
               for line in hosts)
    assert "storage local: content import,snippets,vztmpl added where missing (PUT /storage/local; the content it has is kept)" in hosts
    assert any("keyctl=1 (`pct set` as root" in line for line in hosts)
    assert any("local:snippets (tierzero-<node>-user.yaml, mode 0600" in line for line in hosts)


def test_plan_validate_checks_flux_components_when_a_checked_copy_is_at_hand(project_factory, capsys, monkeypatch, tmp_path):
    """Without one, the file is named as added at deploy; with one (here the sandbox's stand-in
    manifest, recorded as if it were the real digest), its objects are validated like the rest."""
    from dataclasses import replace

    from tierzero.render.gitops import versions
    from tierzero.sandbox.flux.cli import SANDBOX_DIGEST, manifest

    project = project_factory()
    spec = str(project.root / "tierzero.yaml")
    code, out, err = call(capsys, "plan", "-f", spec, "--validate", "--crd-schemas", str(CRDS), "--json")
    assert code == 0, err
    without = json.loads(out)["validation"]
    assert any(u.startswith("gitops/main/clusters/main/flux-system/gotk-components.yaml: Flux v2.8.6's own manifests, added at deploy")
               for u in without["unverified"])
    components = project.root / "gotk-components.yaml"
    components.write_bytes(manifest())
    data = yaml.safe_load((project.root / "tierzero.yaml").read_text())
    data["clusters"][0]["gitops"]["flux"] = {"components_file": "gotk-components.yaml"}
    (project.root / "tierzero.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    fact = versions.FLUX_COMPONENTS[versions.FLUX_VERSION]
    monkeypatch.setitem(versions.FLUX_COMPONENTS, versions.FLUX_VERSION, replace(fact, sha256=SANDBOX_DIGEST, size=len(manifest())))
    code, out, err = call(capsys, "plan", "-f", spec, "--validate", "--crd-schemas", str(CRDS), "--json")
    assert code == 0, err
    with_it = json.loads(out)["validation"]
    assert with_it["checked"] == without["checked"] + len([d for d in yaml.safe_load_all(manifest()) if d])
    assert not any("gotk-components.yaml" in u for u in with_it["unverified"])
    assert not (project.ws.render_dir / "gitops/main/clusters/main/flux-system/gotk-components.yaml").exists()  # added at deploy, not rendered
