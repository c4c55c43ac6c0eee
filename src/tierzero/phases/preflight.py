"""Before the first step: everything a run needs that can be checked without changing anything.

Both targets: every secret reference in the spec (env:, file:, sops:) resolves, so a missing
`env:UNSET` stops the run before the cloud layer is touched, at the field's file position.
References inside a disabled block (an add-on or Tailscale with `enabled: false`) are skipped.

The real target, per provider the spec uses, each failure naming the file or setting and the fix:
- OpenTofu/Terraform: `tofu` (or `terraform`) >= 1.10 on PATH (cloud layer only);
- OCI: the config file the OpenTofu OCI provider and the OCI SDK read by default (~/.oci/config),
  its profile (`cloud.oci.config_profile`), the entries API-key signing needs (user, fingerprint,
  key_file, tenancy, region: oci-python-sdk 2.189 oci/config.py REQUIRED), the key file itself
  (a PEM private key, with pass_phrase if encrypted), and that its tenancy is the spec's;
- SSH: each explicit Proxmox host's private key exists, holds a private key and is not readable
  by others (OpenSSH refuses such keys: "UNPROTECTED PRIVATE KEY FILE", authfile.c
  sshkey_perm_ok); keys at the workspace defaults are created by the setup phase;
- Git (gitops phase): the `git` program, and for an SSH remote the OpenSSH client (`ssh`,
  `ssh-keyscan`: git runs ssh; the host key is pinned on first contact); a push URL git can use
  (no password in it; a local path or file:// that is a repository); `push_key` an unencrypted
  private key only you can read. An SSH repository Flux reads needs a deploy key: the gitops
  phase creates it (no finding). Flux's own manifests (`gotk-components.yaml` of the pinned
  version) need a source: a cached checked copy, `gitops.flux.components_file` (which must
  exist), a `flux` CLI on PATH or `gitops.flux.download` (`tierzero.adapters.flux_components`);
  the digest is checked when the step reads them;
- reachability of what the first changing phase contacts, over TCP with a short timeout: the
  OCI API endpoints and the provider registry (cloud), an S3 state endpoint, each explicit host's
  SSH and Proxmox API ports (hypervisors), the Git hosts tierzero pushes to and Flux reads from
  (gitops). Probed only once every local check passed.
"""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Collection
from typing import Any, Callable, Iterator, get_args, get_origin
from urllib.parse import urlparse

from tierzero.errors import InputError
from tierzero.spec.errors import Problem
from tierzero.spec.errors import Path as SpecPath

PROBE_TIMEOUT = 3.0  # seconds per TCP connect
OCI_CONFIG = "~/.oci/config"
OCI_REQUIRED = ("user", "fingerprint", "key_file", "tenancy", "region")
REGISTRY = {"tofu": "registry.opentofu.org", "terraform": "registry.terraform.io"}

Probe = Callable[[str, int, float], str | None]  # host, port, timeout -> None when reachable, else why not


@dataclass(frozen=True)
class Finding:
    """One thing a real run would trip over: the file or setting, what is wrong, how to fix it."""

    setting: str
    problem: str
    fix: str

    def line(self) -> str:
        return f"{self.setting}: {self.problem}; {self.fix}"


@dataclass
class PreflightFailed(InputError):
    """Exit 2: the run would fail, and nothing was changed."""

    filename: str
    problems: list[Problem] = field(default_factory=list)  # with positions in the spec
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.problems) + len(self.findings)
        super().__init__(f"preflight: {count} problem{'s' if count != 1 else ''} found before anything was changed",
                         hint="fix them and run again")

    def lines(self) -> list[str]:
        return [p.render(self.filename) for p in self.problems] + [f.line() for f in self.findings] + super().lines()


# -- secret references ---------------------------------------------------------------------------

def _is_secret_ref(annotation: Any) -> bool:
    """`SecretRef`, or a type holding it (`SecretRef | None`)."""
    if any(_is_secret_ref_meta(m) for m in getattr(annotation, "__metadata__", ())):
        return True
    return get_origin(annotation) is not None and any(_is_secret_ref(arg) for arg in get_args(annotation))


def secret_references(model: Any, path: SpecPath = ()) -> Iterator[tuple[SpecPath, str]]:
    """(spec path, reference) for every secret reference a run uses: all but those in a block
    that says `enabled: false`."""
    from pydantic import BaseModel

    if getattr(model, "enabled", True) is False:
        return
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = info.alias or name
        wants_ref = any(_is_secret_ref_meta(m) for m in info.metadata) or _is_secret_ref(info.annotation)
        if wants_ref and isinstance(value, str):
            yield path + (key,), value
        elif isinstance(value, BaseModel):
            yield from secret_references(value, path + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from secret_references(item, path + (key, i))
                elif wants_ref and isinstance(item, str):
                    yield path + (key, i), item


def _is_secret_ref_meta(meta: Any) -> bool:
    from tierzero.spec.refs import _check_secret_ref

    return getattr(meta, "func", None) is _check_secret_ref


def unresolved_references(loaded: Any, secrets: Any) -> list[Problem]:
    """Resolve every reference now; each that fails is a problem at its field's position."""
    from tierzero.errors import TierzeroError

    out = []
    for path, ref in secret_references(loaded.platform):
        try:
            secrets.resolve(ref)
        except TierzeroError as exc:
            message = exc.message + (f"; {exc.hint}" if exc.hint else "")
            line, column = loaded.document.position(path) if loaded.document is not None else (None, None)
            out.append(Problem(path, message, line, column))
    return out


# -- the real target -----------------------------------------------------------------------------

def tcp_probe(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror})"
    except (TimeoutError, socket.timeout):
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _tofu(which: Callable[[str], str | None]) -> list[Finding]:
    from tierzero.adapters.tofu import MIN_VERSION, find_binary
    from tierzero.errors import OperationError

    if which("tofu") is None and which("terraform") is None:
        wanted = ".".join(map(str, MIN_VERSION))
        return [Finding("PATH", "neither `tofu` nor `terraform` is on PATH; the cloud layer runs one of them",
                        f"install OpenTofu >= {wanted} (https://opentofu.org/docs/intro/install/)")]
    try:
        find_binary()
    except OperationError as exc:
        return [Finding("PATH", exc.message, exc.hint or "install a newer OpenTofu")]
    return []


def _private(path: Path) -> bool:
    return not stat.S_IMODE(path.stat().st_mode) & 0o077


def _oci(spec: Any, home: Path) -> list[Finding]:
    oci = spec.oci
    config = home / ".oci" / "config"
    shown = f"{OCI_CONFIG} ({config})"
    if not config.is_file():
        hint = ("create it with `oci setup config`, or from the console (Profile > API keys > Add API key), "
                "see https://docs.oracle.com/en-us/iaas/Content/API/Concepts/sdkconfig.htm")
        if os.environ.get("OCI_CONFIG_FILE"):
            hint = f"OCI_CONFIG_FILE is set, but the OpenTofu OCI provider reads {OCI_CONFIG}: copy or link the file there"
        return [Finding(shown, "no OCI config file; the cloud layer authenticates with it", hint)]
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config)
    except configparser.Error as exc:
        return [Finding(shown, f"cannot be read as an INI file ({exc.message.splitlines()[0]})", "fix its syntax")]
    profile = oci.config_profile
    if profile not in parser:  # configparser: DEFAULT is always there, as in the OCI SDK (config.py from_file)
        have = ", ".join((["DEFAULT"] if parser.defaults() else []) + parser.sections()) or "none"
        return [Finding(f"{shown} [{profile}]", f"no profile {profile!r} (profiles: {have})",
                        "add the section, or set cloud.oci.config_profile to one that exists")]
    section = parser[profile]
    out = [Finding(f"{shown} [{profile}] {key}", "missing", f"add `{key}=...` (see the console's API key page)")
           for key in OCI_REQUIRED if not section.get(key)]
    tenancy = section.get("tenancy")
    if tenancy and tenancy != oci.tenancy_ocid:
        out.append(Finding(f"{shown} [{profile}] tenancy", f"is {tenancy}, but cloud.oci.tenancy_ocid is {oci.tenancy_ocid}",
                           "use a profile of that tenancy, or fix tenancy_ocid in the spec"))
    key_file = section.get("key_file")
    if key_file:
        out += _oci_key(Path(os.path.expanduser(key_file)), f"{shown} [{profile}] key_file", section.get("pass_phrase"))
    return out


def _oci_key(path: Path, setting: str, pass_phrase: str | None) -> list[Finding]:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [Finding(setting, f"{path} does not exist", "point key_file at the API signing key you uploaded")]
    except OSError as exc:
        return [Finding(setting, f"cannot read {path}: {exc.strerror}", "make it readable by you (chmod 600)")]
    try:
        load_pem_private_key(data, password=pass_phrase.encode() if pass_phrase else None)
    except TypeError:
        return [Finding(setting, f"{path} is encrypted and the profile has no pass_phrase", "add pass_phrase=..., or use an unencrypted key")]
    except ValueError:
        return [Finding(setting, f"{path} is not a PEM private key (or the pass_phrase is wrong)",
                        "use the private key of the API key pair (oci_api_key.pem), in PEM format")]
    if not _private(path):
        return [Finding(setting, f"{path} is readable by other users", f"chmod 600 {path}")]
    return []


def _ssh_keys(spec: Any, base: Path, workspace: Any) -> list[Finding]:
    out = []
    created = {Path(workspace.ssh_key).resolve()}  # the setup phase makes it
    for i, node in enumerate(spec.proxmox.nodes):
        path = (base / os.path.expanduser(node.ssh.private_key)).resolve()
        setting = f"hypervisors.proxmox.nodes[{i}].ssh.private_key ({path})"
        if path in created and (node.instance or not path.exists()):
            if node.address and not path.exists():
                out.append(Finding(setting, f"the workspace key does not exist yet, so {node.name} cannot have it",
                                   f"run `tierzero init {base}` and add {workspace.ssh_public_key} to root's authorized_keys on {node.address}"))
            continue
        out += _key_file(setting, path, "give the path of the private key that logs in to this host")
    oci = spec.oci
    if oci is not None:
        pub = (base / os.path.expanduser(oci.ssh_public_key)).resolve()
        if pub != Path(workspace.ssh_public_key).resolve() and not pub.is_file():
            out.append(Finding(f"cloud.oci.ssh_public_key ({pub})", "no such file", "give the path of an OpenSSH public key (.pub)"))
    return out


def _ssh_key_problem(data: bytes) -> str | None:
    """Why an SSH client could not use this key unattended, or None. OpenSSH and asyncssh read
    both the OpenSSH format and PEM (PKCS#1, PKCS#8, SEC1) private keys."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key

    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            load_ssh_private_key(data, password=None)
        else:
            load_pem_private_key(data, password=None)
    except (TypeError, UnsupportedAlgorithm):  # a passphrase is needed (bcrypt-KDF keys need one too)
        return "is encrypted (tierzero runs unattended and uses no agent)"
    except ValueError:
        return "holds no OpenSSH or PEM private key"
    return None


def _git(spec: Any, base: Path, workspace: Any, which: Callable[[str], str | None]) -> list[Finding]:
    from tierzero.adapters.git import GitLocation

    out: list[Finding] = []
    needs_ssh = False
    for i, cluster in enumerate(spec.clusters):
        gitops = cluster.gitops
        if gitops is None:
            continue
        which_url = "push_url" if gitops.push_url else "repo_url"
        setting = f"clusters[{i}].gitops.{which_url} ({gitops.push_url or gitops.repo_url})"
        try:
            push = GitLocation.parse(gitops.push_url or gitops.repo_url, base)
        except InputError as exc:
            out.append(Finding(setting, exc.message, exc.hint or "give a URL git can push to"))
            continue
        needs_ssh = needs_ssh or push.scheme == "ssh" or (gitops.engine == "flux" and not gitops.repo_url.startswith("https://"))
        if push.scheme == "file" and not (Path(push.path) / "HEAD").is_file() and not (Path(push.path) / ".git").exists():
            out.append(Finding(setting, "is not a Git repository", f"create it first (git init --bare {push.path}) or give the right path"))
        if gitops.push_key:
            key = (base / os.path.expanduser(gitops.push_key)).resolve()
            out += _key_file(f"clusters[{i}].gitops.push_key ({key})", key, "give the private key that may push to the repository")
    out += _flux_sources(spec, base, workspace, which)
    if any(c.gitops is not None for c in spec.clusters) and which("git") is None:
        out.append(Finding("git", "not found on PATH; the gitops phase pushes the tree with it", "install git (Debian: apt-get install git)"))
    missing = [tool for tool in ("ssh", "ssh-keyscan") if needs_ssh and which(tool) is None]
    if missing:
        out.append(Finding(" and ".join(missing), "not found on PATH; git reaches an SSH remote with it",
                           "install the OpenSSH client (Debian: apt-get install openssh-client)"))
    return out


def _flux_sources(spec: Any, base: Path, workspace: Any, which: Callable[[str], str | None]) -> list[Finding]:
    from tierzero.adapters.connections import Connections
    from tierzero.adapters.flux_components import cache_file
    from tierzero.render.gitops.versions import FLUX_VERSION

    out: list[Finding] = []
    cached = cache_file(Path(workspace.root), FLUX_VERSION, Connections()).is_file()
    for i, cluster in enumerate(spec.clusters):
        if cluster.gitops is None or cluster.gitops.engine != "flux" or cached:
            continue
        settings = cluster.gitops.flux
        if settings.components_file:
            path = (base / os.path.expanduser(settings.components_file)).resolve()
            if not path.is_file():
                out.append(Finding(f"clusters[{i}].gitops.flux.components_file ({path})", "no such file",
                                   f"write it with `flux install --export > {path}` (flux CLI {FLUX_VERSION})"))
        elif which("flux") is None and not settings.download:
            out.append(Finding(f"clusters[{i}].gitops.flux", f"Flux {FLUX_VERSION}'s gotk-components.yaml has no source here: no cached copy, "
                               "no components_file, no `flux` CLI on PATH, and downloading is off",
                               f"install the flux CLI {FLUX_VERSION} (fluxcd.io/flux/installation), or set gitops.flux.components_file "
                               "to the output of `flux install --export`, or set gitops.flux.download: true"))
    return out


def _key_file(setting: str, path: Path, fix_missing: str) -> list[Finding]:
    if not path.exists():
        return [Finding(setting, "no such file", fix_missing)]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Finding(setting, f"cannot be read: {exc.strerror}", "make it readable by you")]
    why = _ssh_key_problem(data)
    if why:
        return [Finding(setting, why, "use an unencrypted private key file (ssh-keygen -t ed25519 -N '')")]
    if not _private(path):
        return [Finding(setting, "is readable by other users; OpenSSH refuses such keys", f"chmod 600 {path}")]
    return []


def _git_hosts(spec: Any, base: Path) -> list[tuple[str, str, int]]:
    """(setting, host, port) of each Git host a gitops phase contacts: where it pushes, and
    where Flux reads when that is another host (its host key is pinned from there)."""
    from tierzero.adapters.git import GitLocation
    from tierzero.render.gitops.flux import git_url

    out: list[tuple[str, str, int]] = []
    for i, cluster in enumerate(spec.clusters):
        gitops = cluster.gitops
        if gitops is None:
            continue
        urls = [("push_url" if gitops.push_url else "repo_url", gitops.push_url or gitops.repo_url)]
        if gitops.engine == "flux" and gitops.push_url:
            urls.append(("repo_url", git_url(gitops.repo_url)))
        for key, url in urls:
            try:
                where = GitLocation.parse(url, base)
            except InputError:
                continue  # reported by _git
            if where.scheme in ("ssh", "https", "http") and where.host:
                port = where.port or {"ssh": 22, "https": 443, "http": 80}[where.scheme]
                target = (f"clusters[{i}].gitops.{key} ({where.scheme})", where.host, port)
                if target[1:] not in [t[1:] for t in out]:
                    out.append(target)
    return out


def _targets(spec: Any, workspace: Any, flavor: str | None, home: Path, first: str | None) -> list[tuple[str, str, int]]:
    """(setting, host, port) of what the first changing phase (`first`) contacts."""
    out: list[tuple[str, str, int]] = []
    oci = spec.oci
    if first == "cloud":
        for service in ("identity", "iaas"):
            out.append((f"cloud.oci.region ({oci.region})", f"{service}.{oci.region}.oraclecloud.com", 443))
        if flavor and not _providers_installed(Path(workspace.root) / "cloud", home):
            out.append((f"the {flavor} provider registry", REGISTRY[flavor], 443))
        backend = oci.state_backend
        if backend.type == "s3":
            url = urlparse(backend.endpoint)
            out.append(("cloud.oci.state_backend.endpoint", url.hostname or "", url.port or (443 if url.scheme == "https" else 80)))
        return out
    for i, node in enumerate(spec.proxmox.nodes if first == "hypervisors" else []):
        if node.address:
            out.append((f"hypervisors.proxmox.nodes[{i}] SSH", str(node.address), node.ssh.port))
            api = urlparse(node.api_url or f"https://{node.address}:8006")
            out.append((f"hypervisors.proxmox.nodes[{i}] Proxmox API", api.hostname or "", api.port or 8006))
    return out


def _providers_installed(workdir: Path, home: Path) -> bool:
    """The OCI provider is there already (an initialised working directory, a plugin cache), or
    a CLI configuration installs providers its own way (provider_installation, plugin_cache_dir)."""
    caches = [workdir / ".terraform" / "providers", workdir / ".plugin-cache"]
    caches += [Path(os.environ[v]) for v in ("TF_PLUGIN_CACHE_DIR",) if os.environ.get(v)]
    if any(any(c.glob("*/oracle/oci")) for c in caches):
        return True
    configs = [os.environ.get("TF_CLI_CONFIG_FILE"), os.environ.get("TOFU_CLI_CONFIG_FILE"), home / ".terraformrc", home / ".tofurc"]
    for config in configs:
        try:
            text = Path(config).read_text() if config else ""
        except OSError:
            continue
        if "provider_installation" in text or "plugin_cache_dir" in text:
            return True
    return False


def _reachability(targets: list[tuple[str, str, int]], probe: Probe) -> list[Finding]:
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        results = list(pool.map(lambda t: probe(t[1], t[2], PROBE_TIMEOUT), targets))
    return [Finding(setting, f"{host}:{port} is unreachable ({why})",
                    "check the address, the network path and any firewall between this machine and it")
            for (setting, host, port), why in zip(targets, results) if why is not None]


def real_findings(loaded: Any, workspace: Any, *, purpose: str = "deploy", phases: Collection[str] | None = None,
                  probe: Probe = tcp_probe, home: Path | None = None, which: Callable[[str], str | None] = shutil.which) -> list[Finding]:
    """Everything a real run of the selected phases (default all) would trip over before its
    first change. `validate` reads the running platform through the OCI SDK and the APIs: only
    the OCI config matters there."""
    spec = loaded.platform
    home = home or Path(os.path.expanduser("~"))
    selected = set(phases) if phases is not None else {"setup", "cloud", "hypervisors", "platform", "gitops", "services", "validate"}
    cloud = spec.oci is not None and "cloud" in selected
    out: list[Finding] = []
    if purpose == "validate" or selected & {"cloud", "validate"} == {"validate"}:
        out += _oci(spec, home) if spec.oci is not None else []
        if purpose == "validate":
            return out
    flavor = None
    if cloud:
        out += _tofu(which)
        flavor = "tofu" if which("tofu") else "terraform" if which("terraform") else None
        out += _oci(spec, home)
    if "hypervisors" in selected:
        out += _ssh_keys(spec, loaded.base_dir, workspace)
    if "gitops" in selected:
        out += _git(spec, loaded.base_dir, workspace, which)
    if not out:  # probes take seconds: only once the local checks passed
        first = "cloud" if cloud else "hypervisors" if "hypervisors" in selected else None
        targets = _targets(spec, workspace, flavor, home, first)
        if first is None and "gitops" in selected:
            targets += _git_hosts(spec, loaded.base_dir)
        out += _reachability(targets, probe)
    return out


def check_before_run(loaded: Any, workspace: Any, target: str, *, purpose: str = "deploy", phases: Collection[str] | None = None,
                     probe: Probe = tcp_probe, home: Path | None = None, which: Callable[[str], str | None] = shutil.which) -> None:
    """Raise PreflightFailed (exit 2) listing every problem; return when the run may start.
    `purpose` "deploy" checks what the selected phases need; "validate" what reading the platform needs."""
    problems = _references(loaded, workspace) if purpose == "deploy" else []
    findings = real_findings(loaded, workspace, purpose=purpose, phases=phases, probe=probe, home=home, which=which) if target == "real" else []
    if problems or findings:
        raise PreflightFailed(str(loaded.path), problems, findings)


def check_references(loaded: Any, workspace: Any) -> None:
    """Raise PreflightFailed (exit 2) when a secret reference in use does not resolve."""
    problems = _references(loaded, workspace)
    if problems:
        raise PreflightFailed(str(loaded.path), problems)


def _references(loaded: Any, workspace: Any) -> list[Problem]:
    from tierzero.workspace.secrets import WorkspaceSecrets

    return unresolved_references(loaded, WorkspaceSecrets(workspace, loaded.base_dir))
