"""The preflight before any step: secret references, credentials and tools per provider, and
reachability. Every failure names the file or setting and the fix; nothing changes before it
passes. Network probes here reach only loopback, or go to a recording fake."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tierzero.engine.state import StateStore
from tierzero.phases.preflight import Finding, PreflightFailed, check_before_run, real_findings
from tierzero.spec import load_spec
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace

BLUEPRINTS = Path(__file__).resolve().parents[2] / "src" / "tierzero" / "spec" / "blueprints"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaaexampleexampleexampleexampleexampleexampleexamplea"


def cli(*args: str, home: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HOME": str(home), **(env or {})}
    full.pop("OCI_CONFIG_FILE", None)
    return subprocess.run([sys.executable, "-m", "tierzero", *args], capture_output=True, text=True, timeout=240, env=full, cwd=cwd)


def write_spec(directory: Path, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "tierzero.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    init_workspace(Workspace.beside(spec))
    return spec


def _flux_from_download(data: dict[str, Any]) -> dict[str, Any]:
    """Flux's components may be downloaded at deploy (no flux CLI here): the preflight then has no
    Flux finding and the other checks show alone. Nothing is downloaded by a preflight."""
    data["clusters"][0]["gitops"]["flux"] = {"download": True}
    return data


def starter() -> dict[str, Any]:
    return _flux_from_download(yaml.safe_load((BLUEPRINTS / "oci-free-tier.yaml").read_text()))


def onprem(port: int = 22, api_port: int = 8006) -> dict[str, Any]:
    data = yaml.safe_load((BLUEPRINTS / "proxmox.yaml").read_text())
    data["hypervisors"]["proxmox"]["nodes"] = [
        {"name": "pve1", "address": "127.0.0.1", "memory_gb": 32, "cores": 8, "ssh": {"port": port}, "api_url": f"https://127.0.0.1:{api_port}"}]
    data["hypervisors"]["proxmox"]["ceph"] = {"enabled": False}
    cluster = data["clusters"][0]
    cluster["control_planes"] = [dict(n, node="pve1") for n in cluster["control_planes"]]
    cluster["workers"] = []
    data["services"][0]["node"] = "pve1"
    return _flux_from_download(data)


def oci_home(tmp: Path, *, profile: str = "DEFAULT", tenancy: str = TENANCY, key: bytes | None = None, mode: int = 0o600,
             extra: str = "", drop: str = "") -> Path:
    home = tmp / "home"
    (home / ".oci").mkdir(parents=True, exist_ok=True)
    key_file = home / ".oci" / "oci_api_key.pem"
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_file.write_bytes(key)
    key_file.chmod(mode)
    entries = {"user": "ocid1.user.oc1..aaaaaaaexample", "fingerprint": ":".join(["ab"] * 16), "key_file": str(key_file),
               "tenancy": tenancy, "region": "eu-frankfurt-1"}
    body = f"[{profile}]\n" + "".join(f"{k}={v}\n" for k, v in entries.items() if k != drop) + extra
    (home / ".oci" / "config").write_text(body)
    return home


class Probes:
    """A recording stand-in for TCP connects: every target down unless listed as up."""

    def __init__(self, up: set[str] = frozenset()) -> None:
        self.up, self.seen = set(up), []

    def __call__(self, host: str, port: int, timeout: float) -> str | None:
        self.seen.append(f"{host}:{port}")
        return None if f"{host}:{port}" in self.up else "connection refused"


def findings_of(tmp_path: Path, data: dict[str, Any], home: Path, **kwargs: Any) -> list[Finding]:
    spec = write_spec(tmp_path / "p", data)
    loaded = load_spec(spec)
    return real_findings(loaded, Workspace.beside(spec), home=home, **kwargs)


def settings(found: list[Finding]) -> list[str]:
    return [f.setting for f in found]


# -- the CLI: exit 2, and nothing changed -----------------------------------------------------------

def test_real_deploy_without_oci_config_stops_before_anything(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "demo", starter())
    home = tmp_path / "home"
    home.mkdir()
    proc = cli("deploy", "-f", str(spec), "--target", "real", "--yes", home=home)
    assert proc.returncode == 2, proc.stderr
    assert f"~/.oci/config ({home}/.oci/config): no OCI config file" in proc.stderr
    assert "oci setup config" in proc.stderr and "found before anything was changed" in proc.stderr
    ws = Workspace.beside(spec)
    assert not ws.state_dir.exists() and not (ws.root / "cloud").exists() and not ws.render_dir.exists()


def test_an_unset_env_reference_stops_the_run_at_its_position(tmp_path: Path) -> None:
    data = starter()
    data["clusters"][0]["addons"]["cert_manager"]["cloudflare_api_token"] = "env:TIERZERO_TEST_SURELY_UNSET"
    spec = write_spec(tmp_path / "demo", data)
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "TIERZERO_TEST_SURELY_UNSET" in text)
    for target in ("sandbox", "real"):
        proc = cli("deploy", "-f", str(spec), "--target", target, "--yes", home=oci_home(tmp_path))
        assert proc.returncode == 2, proc.stderr
        assert f"{spec}:{line}:" in proc.stderr
        assert "clusters[0].addons.cert_manager.cloudflare_api_token: environment variable TIERZERO_TEST_SURELY_UNSET is not set" in proc.stderr
        assert "export TIERZERO_TEST_SURELY_UNSET=" in proc.stderr
        ws = Workspace.beside(spec)
        assert not ws.state_dir.exists() and not (ws.root / "sandbox").exists() and not (ws.root / "cloud").exists()


def test_references_in_disabled_blocks_are_not_needed(tmp_path: Path) -> None:
    data = starter()
    data["hypervisors"]["proxmox"]["tailscale"] = {"enabled": False, "auth_key": "env:TIERZERO_TEST_SURELY_UNSET"}
    data["clusters"][0]["addons"]["tailscale_operator"] = {
        "enabled": False, "oauth_client_id": "env:TIERZERO_TEST_SURELY_UNSET", "oauth_client_secret": "file:nope"}
    data["clusters"][0]["addons"]["cert_manager"]["cloudflare_api_token"] = "file:token.txt"
    spec = write_spec(tmp_path / "p", data)
    (spec.parent / "token.txt").write_text("cf-token\n")
    check_before_run(load_spec(spec), Workspace.beside(spec), "sandbox")  # passes: the one reference in use resolves
    (spec.parent / "token.txt").unlink()
    with pytest.raises(PreflightFailed) as err:
        check_before_run(load_spec(spec), Workspace.beside(spec), "sandbox")
    assert [p.path[-1] for p in err.value.problems] == ["cloudflare_api_token"] and err.value.exit_code == 2


# -- OCI credentials -------------------------------------------------------------------------------

def test_a_complete_oci_config_passes_and_probes_what_the_cloud_phase_contacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.delenv("TF_CLI_CONFIG_FILE", raising=False)  # no provider mirror: the registry is needed
    registry = "registry.opentofu.org" if shutil.which("tofu") else "registry.terraform.io"
    wanted = ["identity.eu-frankfurt-1.oraclecloud.com:443", "iaas.eu-frankfurt-1.oraclecloud.com:443", f"{registry}:443"]
    probes = Probes(up=set(wanted))
    assert findings_of(tmp_path, starter(), oci_home(tmp_path), probe=probes) == []
    assert probes.seen == wanted
    probes = Probes(up=set(wanted[:2]))
    found = findings_of(tmp_path / "b", starter(), oci_home(tmp_path / "b"), probe=probes)
    assert [f.line() for f in found] == [
        f"the {'tofu' if 'opentofu' in registry else 'terraform'} provider registry: {registry}:443 is unreachable "
        "(connection refused); check the address, the network path and any firewall between this machine and it"]


@pytest.mark.parametrize("case, expect", [
    ("no-profile", "[PROD]: no profile 'PROD' (profiles: DEFAULT, OTHER); add the section, or set cloud.oci.config_profile"),
    ("no-fingerprint", "[DEFAULT] fingerprint: missing; add `fingerprint=...`"),
    ("other-tenancy", f"[DEFAULT] tenancy: is ocid1.tenancy.oc1..other, but cloud.oci.tenancy_ocid is {TENANCY}"),
    ("key-not-pem", "[DEFAULT] key_file: {key} is not a PEM private key"),
    ("key-encrypted", "[DEFAULT] key_file: {key} is encrypted and the profile has no pass_phrase"),
    ("key-readable", "[DEFAULT] key_file: {key} is readable by other users; chmod 600 {key}"),
])
def test_oci_config_problems_name_the_setting_and_the_fix(tmp_path: Path, case: str, expect: str) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kwargs: dict[str, Any] = {
        "no-profile": {"extra": "[OTHER]\nregion=eu-paris-1\n"},
        "no-fingerprint": {"drop": "fingerprint"},
        "other-tenancy": {"tenancy": "ocid1.tenancy.oc1..other"},
        "key-not-pem": {"key": b"ssh-rsa AAAA not a private key\n"},
        "key-encrypted": {"key": rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.BestAvailableEncryption(b"secret"))},
        "key-readable": {"mode": 0o644},
    }[case]
    home = oci_home(tmp_path, **kwargs)
    probes = Probes()
    data = starter()
    if case == "no-profile":
        data["cloud"]["oci"]["config_profile"] = "PROD"
    found = findings_of(tmp_path, data, home, probe=probes)
    key = home / ".oci" / "oci_api_key.pem"
    lines = [f.line() for f in found]
    assert any(line.startswith(f"~/.oci/config ({home}/.oci/config) ") and expect.format(key=key) in line for line in lines), lines
    assert probes.seen == [], "nothing is probed while a local check fails"


def test_without_tofu_or_terraform_on_path_the_fix_is_to_install_it(tmp_path: Path) -> None:
    found = findings_of(tmp_path, starter(), oci_home(tmp_path), which=lambda name: None, probe=Probes())
    assert [f.line() for f in found if f.setting == "PATH"] == [
        "PATH: neither `tofu` nor `terraform` is on PATH; the cloud layer runs one of them; "
        "install OpenTofu >= 1.10.0 (https://opentofu.org/docs/intro/install/)"]


# -- SSH keys, Git, reachability (own hosts, on loopback) ---------------------------------------

def _ssh_key(path: Path, mode: int = 0o600, password: bytes | None = None) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    if password:  # PKCS#8 PEM, which OpenSSH reads too (an encrypted OpenSSH-format key needs bcrypt to write)
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password))
    else:
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    path.write_bytes(data)
    path.chmod(mode)


@pytest.mark.parametrize("case, expect", [
    ("missing", "no such file; give the path of the private key that logs in to this host"),
    ("readable", "is readable by other users; OpenSSH refuses such keys; chmod 600"),
    ("encrypted", "is encrypted (tierzero runs unattended and uses no agent)"),
])
def test_ssh_key_problems_name_the_key(tmp_path: Path, case: str, expect: str) -> None:
    data = onprem()
    data["hypervisors"]["proxmox"]["nodes"][0]["ssh"]["private_key"] = "keys/pve"
    (tmp_path / "p" / "keys").mkdir(parents=True)
    if case != "missing":
        _ssh_key(tmp_path / "p" / "keys" / "pve", mode=0o640 if case == "readable" else 0o600,
                 password=b"pw" if case == "encrypted" else None)
    found = findings_of(tmp_path, data, tmp_path, probe=Probes())
    key = (tmp_path / "p" / "keys" / "pve").resolve()
    assert [f.line() for f in found] == [f for f in [f.line() for f in found] if f.startswith(
        f"hypervisors.proxmox.nodes[0].ssh.private_key ({key}): {expect}")] and found


def _which(missing: tuple[str, ...] = ()) -> Any:
    return lambda tool: None if tool in missing else f"/usr/bin/{tool}"


def test_an_ssh_git_remote_passes_and_its_host_is_probed_when_gitops_comes_first(tmp_path: Path) -> None:
    """The deploy key an SSH remote needs is made by the gitops phase: the preflight asks only for
    what git needs and that the Git host answers on its SSH port."""
    probes = Probes(up={"github.com:22"})
    assert findings_of(tmp_path, onprem(), tmp_path, phases=["gitops"], probe=probes, which=_which()) == []
    assert probes.seen == ["github.com:22"]
    found = findings_of(tmp_path / "b", onprem(), tmp_path, phases=["gitops"], probe=Probes(), which=_which())
    assert [f.line() for f in found] == [
        "clusters[0].gitops.repo_url (ssh): github.com:22 is unreachable (connection refused); "
        "check the address, the network path and any firewall between this machine and it"]


def test_a_push_url_and_flux_remote_on_two_hosts_are_both_probed(tmp_path: Path) -> None:
    data = onprem()
    data["clusters"][0]["gitops"].update(repo_url="ssh://git@git.example.org:2222/ops/platform.git",
                                         push_url="https://mirror.example.org/ops/platform.git")
    probes = Probes(up={"mirror.example.org:443", "git.example.org:2222"})
    assert findings_of(tmp_path, data, tmp_path, phases=["gitops"], probe=probes, which=_which()) == []
    assert probes.seen == ["mirror.example.org:443", "git.example.org:2222"]


def test_git_and_the_openssh_client_are_needed_on_path(tmp_path: Path) -> None:
    found = findings_of(tmp_path, onprem(), tmp_path, phases=["gitops"], probe=Probes(), which=_which(("git", "ssh-keyscan")))
    assert [f.line() for f in found] == [
        "git: not found on PATH; the gitops phase pushes the tree with it; install git (Debian: apt-get install git)",
        "ssh-keyscan: not found on PATH; git reaches an SSH remote with it; install the OpenSSH client (Debian: apt-get install openssh-client)"]
    https = onprem()
    https["clusters"][0]["gitops"]["repo_url"] = "https://git.example.org/ops/platform.git"
    assert findings_of(tmp_path / "b", https, tmp_path, phases=["gitops"], probe=Probes({"git.example.org:443"}),
                       which=_which(("ssh", "ssh-keyscan"))) == []  # no SSH anywhere: no OpenSSH client needed


def test_flux_components_need_a_source_before_anything_is_built(tmp_path: Path) -> None:
    data = onprem()
    data["clusters"][0]["gitops"]["flux"] = {}
    found = findings_of(tmp_path, data, tmp_path, probe=Probes(), which=_which(("flux",)))
    assert [f.setting for f in found] == ["clusters[0].gitops.flux"]
    assert "gotk-components.yaml has no source here" in found[0].problem and "gitops.flux.components_file" in found[0].fix
    assert findings_of(tmp_path / "b", data, tmp_path, phases=["gitops"], probe=Probes({"github.com:22"}), which=_which()) == []  # a flux CLI
    data["clusters"][0]["gitops"]["flux"] = {"components_file": "gotk-components.yaml"}
    found = findings_of(tmp_path / "c", data, tmp_path, phases=["gitops"], probe=Probes(), which=_which(("flux",)))
    assert [f.line() for f in found] == [
        f"clusters[0].gitops.flux.components_file ({tmp_path}/c/p/gotk-components.yaml): no such file; write it with "
        f"`flux install --export > {tmp_path}/c/p/gotk-components.yaml` (flux CLI v2.8.6)"]
    (tmp_path / "c" / "p" / "gotk-components.yaml").write_text("# checked when the step reads it\n")
    assert findings_of(tmp_path / "c", data, tmp_path, phases=["gitops"], probe=Probes({"github.com:22"}), which=_which(("flux",))) == []


def test_push_key_and_a_local_push_url_are_checked(tmp_path: Path) -> None:
    data = onprem()
    data["clusters"][0]["gitops"].update(push_key="keys/push", push_url="repos/platform.git")
    (tmp_path / "p" / "keys").mkdir(parents=True)
    _ssh_key(tmp_path / "p" / "keys" / "push", mode=0o644)
    found = findings_of(tmp_path, data, tmp_path, phases=["gitops"], probe=Probes(), which=_which())
    root = tmp_path / "p"
    assert [f.line() for f in found] == [
        f"clusters[0].gitops.push_url (repos/platform.git): is not a Git repository; create it first (git init --bare {root}/repos/platform.git) "
        "or give the right path",
        f"clusters[0].gitops.push_key ({root}/keys/push): is readable by other users; OpenSSH refuses such keys; chmod 600 {root}/keys/push"]
    subprocess.run(["git", "init", "--quiet", "--bare", str(root / "repos" / "platform.git")], check=True)
    (root / "keys" / "push").chmod(0o600)
    probes = Probes({"github.com:22"})
    assert findings_of(tmp_path, data, tmp_path, phases=["gitops"], probe=probes, which=_which()) == []
    assert probes.seen == ["github.com:22"]  # a local push: only the host Flux reads from is contacted


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_own_hosts_are_probed_over_tcp_on_their_ssh_and_api_ports(tmp_path: Path) -> None:
    ssh, api = _listener(), _listener()
    try:
        data = onprem(port=ssh.getsockname()[1], api_port=api.getsockname()[1])
        assert findings_of(tmp_path, data, tmp_path) == []  # the real TCP probe, on loopback
        down = _closed_port()
        data = onprem(port=down, api_port=api.getsockname()[1])
        found = findings_of(tmp_path / "b", data, tmp_path)
    finally:
        ssh.close()
        api.close()
    assert [f.line() for f in found] == [
        f"hypervisors.proxmox.nodes[0] SSH: 127.0.0.1:{down} is unreachable (Connection refused); "
        "check the address, the network path and any firewall between this machine and it"]


def test_real_deploy_of_an_unreachable_host_stops_with_exit_2(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "demo", onprem(port=_closed_port(), api_port=_closed_port()))
    proc = cli("deploy", "-f", str(spec), "--target", "real", "--yes", home=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("is unreachable (Connection refused)") == 2
    assert not Workspace.beside(spec).state_dir.exists()


# -- status and validate follow the last run ------------------------------------------------------

def _record_run(spec: Path, target: str) -> None:
    ws = Workspace.beside(spec)
    store = StateStore.open(ws.state_dir, target)
    store.finish_run(store.start_run("deploy", "all"), "done")
    store.close()


def test_status_follows_the_target_of_the_last_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "demo", starter())
    assert json.loads(cli("status", "-f", str(spec), "--json", home=tmp_path).stdout)["target"] == "real"  # no run yet
    _record_run(spec, "sandbox")
    shown = cli("status", "-f", str(spec), home=tmp_path).stdout
    assert shown.startswith("sandbox: last run 1, deploy (all), done at ") and "no real run" not in shown
    assert json.loads(cli("status", "-f", str(spec), "--json", home=tmp_path).stdout)["target"] == "sandbox"
    assert json.loads(cli("status", "-f", str(spec), "--json", "--target", "real", home=tmp_path).stdout)["target"] == "real"
    _record_run(spec, "real")
    assert json.loads(cli("status", "-f", str(spec), "--json", home=tmp_path).stdout)["target"] == "real"


def test_validate_real_with_nothing_built_says_so_and_contacts_nothing(tmp_path: Path) -> None:
    api = _listener()
    api.settimeout(0.0)
    try:
        spec = write_spec(tmp_path / "demo", onprem(api_port=api.getsockname()[1]))
        _record_run(spec, "real")  # a run that built nothing
        proc = cli("validate", "-f", str(spec), home=tmp_path)
        with pytest.raises(BlockingIOError):
            api.accept()  # no connection is waiting: the Proxmox API was never called
    finally:
        api.close()
    assert proc.returncode == 1, proc.stderr
    assert "nothing real was built from this workspace yet" in proc.stderr and "--target sandbox" in proc.stderr


def test_only_the_selected_phases_are_checked(tmp_path: Path) -> None:
    """`deploy --only setup` changes nothing real: no credentials are needed for it."""
    empty_home = tmp_path / "nohome"
    empty_home.mkdir()
    assert findings_of(tmp_path, starter(), empty_home, phases=["setup"], probe=Probes()) == []
    found = findings_of(tmp_path / "b", starter(), empty_home, phases=["setup", "cloud"], probe=Probes())
    assert [f.setting for f in found] == [f"~/.oci/config ({empty_home}/.oci/config)"]
    probes = Probes()
    data = onprem()
    data["clusters"][0]["gitops"]["repo_url"] = "git@github.com:example/x.git"
    assert findings_of(tmp_path / "c", data, empty_home, phases=["platform"], probe=probes) == [] and probes.seen == []


def test_validate_real_says_nothing_was_built_before_asking_for_credentials(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "demo", starter())
    home = tmp_path / "nohome"
    home.mkdir()
    proc = cli("validate", "-f", str(spec), "--target", "real", home=home)
    assert proc.returncode == 1 and "nothing real was built" in proc.stderr and ".oci/config" not in proc.stderr
    assert not Workspace.beside(spec).state_dir.exists(), "nothing is created to find that out"
