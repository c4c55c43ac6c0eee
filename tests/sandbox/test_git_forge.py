"""The Git host stand-in, driven by the real git client over SSH and smart HTTPS and by the
deploy-key API: each rule in `tierzero.sandbox.git_forge` and its modules."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
import requests

from tierzero.sandbox.git_forge import GitForge

URL_SSH = "ssh://git@github.com/example/fleet.git"
URL_HTTPS = "https://github.com/example/fleet"


def keypair(path: Path) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key())
    path.chmod(0o600)
    return key.export_public_key().decode().strip()


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[GitForge]:
    account = keypair(tmp_path / "account")
    f = GitForge(tmp_path / "repos", tmp_path / "tls", asyncssh.generate_private_key("ssh-ed25519"), [account])
    f.add_repository(URL_SSH)
    yield f
    f.stop()


def pin(forge: GitForge, tmp_path: Path) -> Path:
    port = forge.hosts["github.com"].ssh_port
    out = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"], capture_output=True, text=True, check=True).stdout
    kh = tmp_path / "known_hosts"
    kh.write_text("".join("github.com " + line.split(" ", 1)[1] + "\n" for line in out.splitlines() if not line.startswith("#")))
    return kh


def git(*args: str, cwd: Path | None = None, key: Path | None = None, kh: Path | None = None, ca: str | None = None,
        token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if key is not None:
        env["GIT_SSH_COMMAND"] = (f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
                                  f"-o UserKnownHostsFile={kh} -o HostKeyAlias=github.com")
    pre: list[str] = []
    if ca:
        env["GIT_SSL_CAINFO"] = ca  # wins over http.sslCAInfo
    if token:
        pre += ["-c", "credential.helper=", "-c", f"credential.helper=!f() {{ echo username=u; echo password={token}; }}; f"]
    return subprocess.run(["git", *pre, *args], cwd=cwd, env=env, capture_output=True, text=True)


def commit_file(work: Path, name: str = "a.txt") -> None:
    work.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / name).write_text("hello\n")
    git("add", ".", cwd=work)
    assert git("commit", "-qm", "one", cwd=work).returncode == 0


def test_a_new_repository_is_empty_on_main(forge: GitForge) -> None:
    repo = next(iter(forge.repos.values()))
    head = subprocess.run(["git", "--git-dir", str(repo.path), "symbolic-ref", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert head == "refs/heads/main"
    assert subprocess.run(["git", "--git-dir", str(repo.path), "rev-parse", "--verify", "-q", "main"]).returncode != 0


def test_ssh_push_and_clone_with_the_account_key_and_a_pinned_host_key(forge: GitForge, tmp_path: Path) -> None:
    kh = pin(forge, tmp_path)
    url = forge.resolve(URL_SSH).url
    commit_file(tmp_path / "w")
    pushed = git("push", url, "main", cwd=tmp_path / "w", key=tmp_path / "account", kh=kh)
    assert pushed.returncode == 0, pushed.stderr
    assert forge.pushes == 1
    cloned = git("clone", "-q", url, str(tmp_path / "c"), key=tmp_path / "account", kh=kh)
    assert cloned.returncode == 0 and (tmp_path / "c" / "a.txt").read_text() == "hello\n"


def test_ssh_refuses_unknown_keys_other_repos_read_only_pushes_and_shells(forge: GitForge, tmp_path: Path) -> None:
    kh = pin(forge, tmp_path)
    url = forge.resolve(URL_SSH).url
    stranger = keypair(tmp_path / "stranger")
    denied = git("ls-remote", url, key=tmp_path / "stranger", kh=kh)
    assert denied.returncode != 0 and "Permission denied (publickey)" in denied.stderr
    repo = next(iter(forge.repos.values()))
    _, error = forge.add_deploy_key(repo, "flux", stranger, read_only=True, gitea=False)
    assert error is None
    assert git("ls-remote", url, key=tmp_path / "stranger", kh=kh).returncode == 0
    commit_file(tmp_path / "w")
    refused = git("push", url, "main", cwd=tmp_path / "w", key=tmp_path / "stranger", kh=kh)
    assert "ERROR: The key you are authenticating with has been marked as read only." in refused.stderr
    other = url.replace("fleet", "other")
    assert "ERROR: Repository not found." in git("ls-remote", other, key=tmp_path / "account", kh=kh).stderr
    port = forge.hosts["github.com"].ssh_port
    shell = subprocess.run(["ssh", "-p", str(port), "-i", str(tmp_path / "account"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                            "-o", f"UserKnownHostsFile={kh}", "-o", "HostKeyAlias=github.com", "git@127.0.0.1", "cat /etc/passwd"],
                           capture_output=True, text=True)
    assert shell.returncode == 128 and "unrecognized command" in shell.stderr


def test_a_changed_host_key_is_refused(forge: GitForge, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("github.com " + asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode())
    out = git("ls-remote", forge.resolve(URL_SSH).url, key=tmp_path / "account", kh=kh)
    assert out.returncode != 0 and "Host key verification failed" in out.stderr


def test_https_reads_anonymously_and_pushes_only_with_the_token(forge: GitForge, tmp_path: Path) -> None:
    where = forge.resolve(URL_HTTPS)
    assert where is not None and where.url.startswith("https://127.0.0.1:")
    commit_file(tmp_path / "w")
    anonymous = git("push", where.url, "main", cwd=tmp_path / "w", ca=where.ca_file)
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr
    wrong = git("push", where.url, "main", cwd=tmp_path / "w", ca=where.ca_file, token="nope")
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    big = tmp_path / "w" / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024))  # more than http.postBuffer: git sends it chunked
    git("add", ".", cwd=tmp_path / "w")
    git("commit", "-qm", "big", cwd=tmp_path / "w")
    ok = git("push", where.url, "main", cwd=tmp_path / "w", ca=where.ca_file, token=forge.token)
    assert ok.returncode == 0, ok.stderr
    cloned = git("-c", "protocol.version=2", "clone", "-q", where.url, str(tmp_path / "c"), ca=where.ca_file)
    assert cloned.returncode == 0 and (tmp_path / "c" / "big.bin").stat().st_size == 2 * 1024 * 1024
    assert forge.resolve("https://github.com/oracle/oci-cloud-controller-manager") is None  # not hosted: the internet


@pytest.mark.parametrize("gitea", [False, True])
def test_deploy_key_api(forge: GitForge, tmp_path: Path, gitea: bool) -> None:
    host = forge.hosts["github.com"]
    base = f"https://127.0.0.1:{host.http.port}" + ("/api/v1" if gitea else "") + "/repos/example/fleet/keys"
    auth = {"Authorization": f"{'token' if gitea else 'Bearer'} {forge.token}"}
    key = keypair(tmp_path / "deploy")
    assert requests.get(base, verify=host.http.ca_file, timeout=10).status_code == 401
    made = requests.post(base, json={"title": "flux", "key": key}, headers=auth, verify=host.http.ca_file, timeout=10)
    assert made.status_code == 201 and made.json()["read_only"] is False  # omitted read_only: read-write on both
    again = requests.post(base, json={"title": "flux2", "key": key, "read_only": True}, headers=auth, verify=host.http.ca_file, timeout=10)
    assert again.status_code == 422
    assert ("already been added" if gitea else "key is already in use") in json.dumps(again.json())
    listed = requests.get(base, headers=auth, verify=host.http.ca_file, timeout=10).json()
    assert [k["title"] for k in listed] == ["flux"]
    assert requests.delete(f"{base}/{listed[0]['id']}", headers=auth, verify=host.http.ca_file, timeout=10).status_code == 204
    assert requests.get(base, headers=auth, verify=host.http.ca_file, timeout=10).json() == []


@pytest.mark.parametrize("gitea", [False, True])
def test_tierzero_registers_its_deploy_key_read_only_like_flux_bootstrap(forge: GitForge, tmp_path: Path, gitea: bool) -> None:
    from tierzero.adapters.forge import ForgeApi, ensure_deploy_key
    from tierzero.errors import OperationError

    host = forge.hosts["github.com"]
    api = ForgeApi("gitea" if gitea else "github", f"https://127.0.0.1:{host.http.port}" + ("/api/v1" if gitea else ""), forge.token, host.http.ca_file)
    key = keypair(tmp_path / "deploy")
    repo = next(iter(forge.repos.values()))
    assert ensure_deploy_key(api, "example/fleet", "flux-system-main", key) == "created"
    assert ensure_deploy_key(api, "example/fleet", "flux-system-main", key) == "exists"
    assert [(k.title, k.read_only) for k in forge.deploy_keys(repo)] == [("flux-system-main", True)]
    forge.keys[repo.id][0].read_only = False  # changed by hand on the host: made read-write
    assert ensure_deploy_key(api, "example/fleet", "flux-system-main", key) == "replaced"
    assert [(k.title, k.read_only) for k in forge.deploy_keys(repo)] == [("flux-system-main", True)]
    newer = keypair(tmp_path / "newer")
    assert ensure_deploy_key(api, "example/fleet", "flux-system-main", newer) == "replaced"
    assert [k.key for k in forge.deploy_keys(repo)] == [" ".join(newer.split()[:2])]
    with pytest.raises(OperationError, match="401: the token may not manage deploy keys"):
        ensure_deploy_key(ForgeApi(api.kind, api.api_url, "wrong", api.verify), "example/fleet", "t", key)
    with pytest.raises(OperationError, match="404: no such repository"):
        ensure_deploy_key(api, "example/nope", "t", key)


def test_gitea_refuses_an_accounts_own_key_as_a_deploy_key_and_a_repeat_on_one_repository(forge: GitForge, tmp_path: Path) -> None:
    # go-gitea/gitea routers/api/v1/repo/key.go HandleAddKeyError; models/asymkey/ssh_key_deploy.go
    host = forge.hosts["github.com"]
    base = f"https://127.0.0.1:{host.http.port}/api/v1/repos/example/fleet/keys"
    auth = {"Authorization": f"token {forge.token}"}
    account_key = next(iter(forge.account_keys))
    own = requests.post(base, json={"title": "flux", "key": account_key}, headers=auth, verify=host.http.ca_file, timeout=10)
    assert own.status_code == 422 and own.json()["message"] == "Key content has been used as non-deploy key" and "url" in own.json()
    key = keypair(tmp_path / "deploy")
    assert requests.post(base, json={"title": "flux", "key": key}, headers=auth, verify=host.http.ca_file, timeout=10).status_code == 201
    same_title = requests.post(base, json={"title": "flux", "key": keypair(tmp_path / "second")}, headers=auth, verify=host.http.ca_file, timeout=10)
    assert (same_title.status_code, same_title.json()["message"]) == (422, "This key has already been added to this repository")
    other = forge.add_repository("https://github.com/example/other")  # one deploy key may serve several repositories on Gitea
    _, error = forge.add_deploy_key(other, "flux", key, read_only=True, gitea=True)
    assert error is None
    _, github_error = forge.add_deploy_key(other, "flux-gh", keypair(tmp_path / "third"), read_only=True, gitea=False)
    assert github_error is None
    _, github_again = forge.add_deploy_key(other, "flux-gh2", key, read_only=True, gitea=False)
    assert github_again == "key is already in use"  # GitHub: one repository per deploy key


def test_tierzero_says_what_to_do_when_its_deploy_key_is_an_account_key_on_gitea(forge: GitForge) -> None:
    from tierzero.adapters.forge import ForgeApi, ensure_deploy_key
    from tierzero.errors import OperationError

    host = forge.hosts["github.com"]
    api = ForgeApi("gitea", f"https://127.0.0.1:{host.http.port}/api/v1", forge.token, host.http.ca_file)
    with pytest.raises(OperationError, match="used as non-deploy key: the workspace's deploy key is also a user's SSH key") as caught:
        ensure_deploy_key(api, "example/fleet", "flux-system-main", next(iter(forge.account_keys)))
    assert "remove that key from the user's SSH keys" in (caught.value.hint or "")
