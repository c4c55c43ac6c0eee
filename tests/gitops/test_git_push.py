"""The push on the real `git`, to a local bare repository (a path or file://): one commit when
the tree changed and none when it did not, a message naming what changed, foreign commits
refused by name, files outside the managed path kept, drift restored, a remote that moves
during the push left as it was."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tierzero.adapters.git import GitAuth, GitLocation, GitRemote, blob_id
from tierzero.errors import InputError, OperationError, RefusedError
from tierzero.phases.gitops_push import TRAILER, push_tree


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bob", "GIT_AUTHOR_EMAIL": "bob@example.com", "GIT_COMMITTER_NAME": "Bob",
           "GIT_COMMITTER_EMAIL": "bob@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git("init", "-q", "--bare", "--initial-branch=main", str(path))
    return path


def remote(tmp_path: Path, bare: Path, url: str | None = None) -> GitRemote:
    return GitRemote(tmp_path / "clone.git", GitLocation.parse(url or str(bare)), "main", GitAuth())


def files_at(bare: Path, ref: str = "main") -> dict[str, str]:
    out = git("--git-dir", str(bare), "ls-tree", "-r", "--name-only", ref)
    return {p: git("--git-dir", str(bare), "show", f"{ref}:{p}") for p in out.split()}


def by_hand(tmp_path: Path, bare: Path, change, message: str) -> str:
    work = tmp_path / "bob"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    git("clone", "-q", str(bare), str(work))
    change(work)
    git("add", "-A", cwd=work)
    git("commit", "-qm", message, cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("--git-dir", str(bare), "rev-parse", "main").strip()


TREE = {"a.yaml": b"a: 1\n", "dir/b.yaml": b"b: 2\n"}


def test_one_commit_then_none_and_messages_that_name_the_change(tmp_path: Path, bare: Path) -> None:
    r = remote(tmp_path, bare, f"file://{bare}")
    first = push_tree(r, TREE, cluster="lab")
    assert first.pushed and first.revision("main") == f"main@sha1:{first.commit}"
    assert files_at(bare) == {"a.yaml": "a: 1\n", "dir/b.yaml": "b: 2\n"}
    message = git("--git-dir", str(bare), "log", "-1", "--format=%B", "main")
    assert message.startswith("lab: GitOps tree from tierzero.yaml (2 files)\n") and f"{TRAILER}: lab" in message
    assert git("--git-dir", str(bare), "log", "-1", "--format=%an <%ae>", "main").strip() == "tierzero <tierzero@localhost>"
    again = push_tree(r, TREE, cluster="lab")
    assert not again.pushed and again.commit == first.commit
    second = push_tree(r, {**TREE, "a.yaml": b"a: 2\n"}, cluster="lab")
    assert git("--git-dir", str(bare), "log", "-1", "--format=%s", "main").strip() == "lab: update a.yaml"
    third = push_tree(r, {"a.yaml": b"a: 2\n", "c/d.yaml": b"d\n", "c/e.yaml": b"e\n"}, cluster="lab")
    assert git("--git-dir", str(bare), "log", "-1", "--format=%s", "main").strip() == "lab: 2 added, 1 removed in c, dir"
    assert third.change.added == ["c/d.yaml", "c/e.yaml"] and third.change.removed == ["dir/b.yaml"]
    assert len(git("--git-dir", str(bare), "log", "--format=%H", "main").split()) == 3 and second.pushed


def test_foreign_commits_are_refused_then_forced_over_without_rewriting_history(tmp_path: Path, bare: Path) -> None:
    r = remote(tmp_path, bare)
    push_tree(r, TREE, cluster="lab")
    theirs = by_hand(tmp_path, bare, lambda w: (w / "a.yaml").write_text("a: mine\n"), "Tune a")
    with pytest.raises(RefusedError) as err:
        push_tree(r, {**TREE, "dir/b.yaml": b"b: 3\n"}, cluster="lab")
    assert f"{theirs[:12]} 'Tune a' by Bob <bob@example.com>" in err.value.message and "changed: a.yaml" in err.value.message
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == theirs
    forced = push_tree(r, {**TREE, "dir/b.yaml": b"b: 3\n"}, cluster="lab", force=True)
    assert forced.pushed and [c.sha for c in forced.foreign] == [theirs]
    assert git("--git-dir", str(bare), "rev-parse", "main^").strip() == theirs  # on top of theirs: nothing rewritten
    assert files_at(bare)["a.yaml"] == "a: 1\n"
    assert push_tree(r, {**TREE, "dir/b.yaml": b"b: 3\n"}, cluster="lab").pushed is False  # ours again: no longer foreign


def test_a_repository_someone_else_started_is_refused(tmp_path: Path, bare: Path) -> None:
    by_hand(tmp_path, bare, lambda w: (w / "README.md").write_text("hi\n"), "Initial commit")
    with pytest.raises(RefusedError) as err:
        push_tree(remote(tmp_path, bare), TREE, cluster="lab")
    assert "'Initial commit' by Bob" in err.value.message and "added: README.md" in err.value.message


def test_a_managed_path_leaves_the_rest_of_the_repository_alone(tmp_path: Path, bare: Path) -> None:
    by_hand(tmp_path, bare, lambda w: ((w / "README.md").write_text("hi\n"), (w / "other").mkdir(), (w / "other/x").write_text("x\n")), "Start")
    r = remote(tmp_path, bare)
    pushed = push_tree(r, {f"fleet/{p}": d for p, d in TREE.items()}, cluster="lab", prefix="fleet")
    assert pushed.pushed and set(files_at(bare)) == {"README.md", "other/x", "fleet/a.yaml", "fleet/dir/b.yaml"}
    by_hand(tmp_path, bare, lambda w: (w / "README.md").write_text("hello\n"), "Docs")  # outside: not ours to judge
    again = push_tree(r, {"fleet/a.yaml": b"a: 9\n", "fleet/dir/b.yaml": b"b: 2\n"}, cluster="lab", prefix="fleet")
    assert again.pushed and files_at(bare)["README.md"] == "hello\n" and files_at(bare)["fleet/a.yaml"] == "a: 9\n"


def test_deleted_files_are_drift_and_come_back(tmp_path: Path, bare: Path) -> None:
    r = remote(tmp_path, bare)
    push_tree(r, TREE, cluster="lab")
    by_hand(tmp_path, bare, lambda w: (w / "dir/b.yaml").unlink(), "Clean up")
    restored = push_tree(r, TREE, cluster="lab")
    assert restored.pushed and restored.restored == ["dir/b.yaml"] and files_at(bare)["dir/b.yaml"] == "b: 2\n"
    assert git("--git-dir", str(bare), "log", "-1", "--format=%s", "main").strip() == "lab: restore 1 file deleted outside tierzero (dir/b.yaml)"


def test_a_remote_that_moves_during_the_push_keeps_its_commit(tmp_path: Path, bare: Path) -> None:
    r = remote(tmp_path, bare)
    push_tree(r, TREE, cluster="lab")
    head = r.fetch()
    ours = r.commit({**TREE, "a.yaml": b"a: 5\n"}, head, f"x\n\n{TRAILER}: lab\n")
    theirs = by_hand(tmp_path, bare, lambda w: (w / "z").write_text("z\n"), "Meanwhile")
    with pytest.raises(OperationError) as err:
        r.push(ours)
    assert "moved while tierzero was pushing; nothing was pushed" in err.value.message
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == theirs


def test_commit_writes_exactly_the_tree_and_blob_ids_match_git(tmp_path: Path, bare: Path) -> None:
    r = remote(tmp_path, bare)
    r.ensure_clone()
    sha = r.commit({"x/y.yaml": b"y\n", "z": b""}, None, "m\n")
    assert r.files(sha) == {"x/y.yaml": blob_id(b"y\n"), "z": blob_id(b"")}
    with pytest.raises(OperationError):
        r.commit({"bad\nname": b""}, None, "m\n")


@pytest.mark.parametrize("url, expected", [
    ("git@github.com:me/fleet.git", ("ssh", "github.com", None, "/me/fleet.git", "github.com")),
    ("ssh://git@git.example.org:2222/me/fleet.git", ("ssh", "git.example.org", 2222, "/me/fleet.git", "[git.example.org]:2222")),
    ("https://github.com/me/fleet", ("https", "github.com", None, "/me/fleet", "github.com")),
    ("file:///srv/git/fleet.git", ("file", "", None, "/srv/git/fleet.git", "")),
])
def test_locations(url: str, expected: tuple) -> None:
    loc = GitLocation.parse(url)
    assert (loc.scheme, loc.host, loc.port, loc.path, loc.known_hosts_name if loc.host else "") == expected


def test_locations_refuse_passwords_and_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="carries a password"):
        GitLocation.parse("https://me:ghp_secret@github.com/me/fleet")
    with pytest.raises(InputError, match="unsupported Git URL scheme 'git'"):
        GitLocation.parse("git://github.com/me/fleet")
    assert GitLocation.parse("fleet.git", tmp_path).path == str(tmp_path / "fleet.git")


def test_a_real_run_pushes_where_the_spec_says_with_what_it_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from tierzero.adapters.connections import Connections
    from tierzero.phases.gitops_push import remote_spec
    from tierzero.spec.clusters import GitOps
    from tierzero.workspace.layout import Workspace
    from tierzero.workspace.secrets import WorkspaceSecrets

    ws = Workspace(tmp_path / ".tierzero")
    monkeypatch.setenv("PUSH_TOKEN", "token-value-for-the-push")
    secrets = WorkspaceSecrets(ws, tmp_path)

    def spec_of(**gitops: str) -> SimpleNamespace:
        cluster = SimpleNamespace(name="lab", gitops=GitOps(**gitops))
        ctx = SimpleNamespace(connections=Connections(target="real"), workspace=ws, secrets=secrets)
        return remote_spec(ctx, cluster)  # type: ignore[arg-type]

    https = spec_of(repo_url="https://github.com/me/fleet", token="env:PUSH_TOKEN", username="me")
    assert https.location.url == "https://github.com/me/fleet" and https.auth.token == "token-value-for-the-push"
    assert https.auth.username == "me" and https.auth.known_hosts is None and https.connect is None
    ssh = spec_of(repo_url="git@github.com:me/fleet.git", push_key="keys/deploy")
    assert ssh.location.url == "ssh://git@github.com/me/fleet.git" and ssh.auth.identity == tmp_path / "keys/deploy"
    assert ssh.auth.known_hosts == ws.root / "git_known_hosts" and ssh.auth.token is None
    mirror = spec_of(repo_url="git@github.com:me/fleet.git", push_url="mirror.git")
    assert mirror.location.scheme == "file" and mirror.location.path == str(tmp_path / "mirror.git") and mirror.shown == "mirror.git"
