"""source-controller's part of the Flux stand-in: a GitRepository's artifact, fetched with the
real `git` from the sandbox's Git host (source-controller v1.8.3
internal/controller/gitrepository_controller.go; fluxcd/pkg git v0.43.2; research §4).

Rules:
- the credentials come from `spec.secretRef` in the object's namespace; a missing Secret is
  AuthenticationFailed "failed to get secret '<ns>/<name>': secrets "<name>" not found"; an
  ssh:// URL needs `identity` and `known_hosts`: "failed to configure authentication options:
  invalid 'ssh' auth option: 'identity' is required" (fluxcd/pkg git/options.go `Validate`);
  the host key is checked against that known_hosts only (StrictHostKeyChecking)
- an https:// Secret gives `username` + `password` (or `bearerToken`); none: anonymous
- `ref`: branch (default `master`), tag or commit; the clone is shallow and single-branch
  (fluxcd/pkg git/gogit/clone.go `cloneBranch`: Depth 1, SingleBranch, NoTags)
- a repository without commits is EmptyGitRepository "git repository is empty"; a missing
  branch is GitOperationFailed "failed to checkout and determine revision: unable to clone
  '<url>': couldn't find remote ref "refs/heads/<branch>"" (go-git remote.go @ v5.18.0); any
  other clone failure is GitOperationFailed with the transport's own error
- success: `status.artifact.revision` "<branch>@sha1:<commit>" (fluxcd/pkg git Commit.String),
  Ready=True Succeeded "stored artifact for revision '<revision>'", ArtifactInStorage likewise
- a URL the sandbox's Git host does not serve is on the internet, which the sandbox does not
  reach: nothing is fetched (Ready=True, reason NotRunInSandbox, saying so): the stand-in's
  own reason, never the real controller's
- not played: `spec.ignore`/.sourceignore, include, verify, proxySecretRef, recurseSubmodules
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierzero.sandbox.git_forge import GitForge

NOT_RUN = "NotRunInSandbox"


@dataclass
class Outcome:
    ready: str  # "True" | "False"
    reason: str
    message: str
    artifact: dict[str, Any] | None = None
    directory: Path | None = None  # the checked-out tree


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    out = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return out


def fetch(repo: dict[str, Any], secret: dict[str, Any] | None, forge: GitForge | None, storage: Path) -> Outcome:
    meta, spec = repo["metadata"], repo.get("spec", {})
    ns, name, url = meta.get("namespace", ""), meta["name"], str(spec.get("url", ""))
    ref = spec.get("ref") or {}
    resolved = forge.resolve(url) if forge is not None else None
    if resolved is None:
        return Outcome("True", NOT_RUN, f"sandbox: {url} is on the internet, which the sandbox does not reach: nothing was fetched")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    ref_name = f"refs/tags/{ref['tag']}" if ref.get("tag") else f"refs/heads/{ref.get('branch') or 'master'}"
    with tempfile.TemporaryDirectory(prefix="flux-source-") as tmp:
        secret_ref = (spec.get("secretRef") or {}).get("name")
        data: dict[str, str] = {}
        if secret_ref:
            if secret is None:
                return Outcome("False", "AuthenticationFailed", f"failed to get secret '{ns}/{secret_ref}': secrets \"{secret_ref}\" not found")
            data = _secret_data(secret)
        if url.startswith("ssh://"):
            for required in ("identity", "known_hosts"):
                if secret_ref and not data.get(required):
                    return Outcome("False", "AuthenticationFailed",
                                   f"failed to configure authentication options: invalid 'ssh' auth option: '{required}' is required")
            key, hosts = Path(tmp, "identity"), Path(tmp, "known_hosts")
            key.write_text(data.get("identity", "")), hosts.write_text(data.get("known_hosts", ""))
            key.chmod(0o600)
            ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={hosts}",
                   "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey"]
            if resolved.host_key_alias:
                ssh += ["-o", f"HostKeyAlias={resolved.host_key_alias}"]
            if data.get("identity"):
                ssh += ["-i", str(key)]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        else:
            if resolved.ca_file:
                env["GIT_SSL_CAINFO"] = resolved.ca_file
            if data.get("password") or data.get("bearerToken"):
                env["FLUX_STANDIN_USER"], env["FLUX_STANDIN_PASSWORD"] = data.get("username", "git"), data.get("password") or data.get("bearerToken", "")
        git = ["git", "-c", "credential.helper=", "-c",
               'credential.helper=!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" "$FLUX_STANDIN_USER" "$FLUX_STANDIN_PASSWORD"; }; f']
        listing = subprocess.run([*git, "ls-remote", resolved.url], capture_output=True, env=env, timeout=120)
        if listing.returncode != 0:
            return _failed(url, listing.stderr.decode(errors="replace"))
        refs: dict[str, str] = {}
        for line in listing.stdout.decode().splitlines():
            sha, _, name = line.partition("\t")
            if name:
                refs[name] = sha
        if not refs:
            return Outcome("False", "EmptyGitRepository", "git repository is empty")
        commit = ref.get("commit") or refs.get(f"{ref_name}^{{}}") or refs.get(ref_name)
        if not commit:
            return _failed(url, f'couldn\'t find remote ref "{ref_name}"')
        revision = f"{ref.get('tag') or ref.get('branch') or 'master'}@sha1:{commit}" if not ref.get("commit") else f"sha1:{commit}"
        directory = storage / "gitrepository" / ns / name / commit
        if not directory.is_dir():
            clone = Path(tmp, "clone")
            subprocess.run(["git", "init", "-q", "--bare", str(clone)], check=True, capture_output=True, env=env)
            fetched = subprocess.run([*git, "--git-dir", str(clone), "fetch", "-q", "--depth", "1", "--no-tags", resolved.url, commit],
                                     capture_output=True, env=env, timeout=300)
            if fetched.returncode != 0:
                return _failed(url, fetched.stderr.decode(errors="replace"))
            archive = subprocess.run(["git", "--git-dir", str(clone), "archive", "--format=tar", commit], capture_output=True, env=env, check=True)
            staging = directory.with_name(f".{commit}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(staging, filter="data")
            os.replace(staging, directory)
            for old in directory.parent.iterdir():  # keep the latest artifact only
                if old != directory:
                    shutil.rmtree(old, ignore_errors=True)
    tarball = hashlib.sha256(str(sorted((p.relative_to(directory).as_posix(), p.read_bytes()) for p in directory.rglob("*") if p.is_file())).encode())
    artifact = {"revision": revision, "path": f"gitrepository/{ns}/{name}/{commit}.tar.gz", "digest": f"sha256:{tarball.hexdigest()}",
                "url": f"http://source-controller.flux-system.svc.cluster.local./gitrepository/{ns}/{name}/{commit}.tar.gz"}
    return Outcome("True", "Succeeded", f"stored artifact for revision '{revision}'", artifact, directory)


_BOILERPLATE = ("fatal: Could not read from remote repository.", "Please make sure you have the correct access rights", "and the repository exists.")


def _failed(url: str, stderr: str) -> Outcome:
    """The transport's own error (OpenSSH's or git's wording: the real controller's is go-git's,
    e.g. "ssh: handshake failed: ssh: unable to authenticate ..."), without git's boilerplate."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("hint:") and ln.strip() not in _BOILERPLATE]
    cause = "; ".join(lines[-3:]) or "unknown error"
    return Outcome("False", "GitOperationFailed", f"failed to checkout and determine revision: unable to clone '{url}': {cause}")
