"""The push of a cluster's GitOps tree to its Git remote (step gitops/<cluster>/push).

The repository tierzero manages under `gitops.path` (the whole repository when empty) is the
rendered tree plus, for Flux, `flux-system/gotk-components.yaml`. Every push:
1. checks the tree: no plaintext Secret or key anywhere, nothing Flux would refuse
   (`render.gitops.checks`); a problem refuses the push, naming the file and object;
2. fetches the branch and walks back from its head to the last commit tierzero made for this
   cluster (the `Tierzero-Cluster` trailer). Commits after it are someone else's:
   - if all they did under the managed path was delete files, that is drift: the new commit
     puts the files back (a file deleted by hand in the remote returns);
   - anything else there (an edit, a new file) is refused, naming the commits and what they
     changed, unless `--force` (the commit then goes on top of them: they stay in history,
     their changes under the managed path are replaced);
   files outside the managed path are theirs and are carried over unchanged;
3. commits only when the tree changed, with a message naming what changed, on top of the
   branch head, and pushes that one commit to that one branch, never forced: the remote holds
   either the old head or the whole new commit.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierzero.adapters import git
from tierzero.adapters.git import CommitInfo, GitAuth, GitLocation, blob_id, pin_host_key
from tierzero.adapters.protocols import GitRemote
from tierzero.errors import OperationError, RefusedError

if TYPE_CHECKING:
    from tierzero.engine.step import StepContext
    from tierzero.spec.clusters import Cluster

TRAILER = "Tierzero-Cluster"
SHOWN = 20  # files named in a commit message or an error at most


@dataclass
class TreeChange:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def lines(self, limit: int = SHOWN) -> list[str]:
        rows = [f"{what}: {p}" for what, paths in (("added", self.added), ("changed", self.changed), ("removed", self.removed)) for p in paths]
        return rows[:limit] + ([f"... and {len(rows) - limit} more"] if len(rows) > limit else [])


def diff(old: Mapping[str, str], new: Mapping[str, str]) -> TreeChange:
    """What changed from `old` to `new` (path -> blob id)."""
    return TreeChange(sorted(set(new) - set(old)), sorted(p for p in set(old) & set(new) if old[p] != new[p]), sorted(set(old) - set(new)))


@dataclass
class PushResult:
    commit: str | None  # the branch head after the push (None: an empty branch stayed empty)
    pushed: bool
    change: TreeChange
    restored: list[str] = field(default_factory=list)  # files deleted outside tierzero, put back
    foreign: list[CommitInfo] = field(default_factory=list)  # commits pushed over with --force

    def revision(self, branch: str) -> str | None:
        """As Flux writes it: `<branch>@sha1:<commit>` (fluxcd/pkg git Commit.String)."""
        return f"{branch}@sha1:{self.commit}" if self.commit else None


def _managed(path: str, prefix: str) -> bool:
    return not prefix or path.startswith(prefix + "/")


def _subject(cluster: str, change: TreeChange, restored: list[str], first: bool) -> str:
    if first:
        return f"{cluster}: GitOps tree from tierzero.yaml ({len(change.added)} files)"
    if restored and len(restored) == len(change.added) and not change.changed and not change.removed:
        return f"{cluster}: restore {len(restored)} file{'s' if len(restored) > 1 else ''} deleted outside tierzero ({', '.join(restored[:3])}{', ...' if len(restored) > 3 else ''})"
    every = change.added + change.changed + change.removed
    if len(every) == 1:
        verb = "add" if change.added else "update" if change.changed else "remove"
        return f"{cluster}: {verb} {every[0]}"
    counts = ", ".join(f"{n} {what}" for n, what in ((len(change.added), "added"), (len(change.changed), "changed"), (len(change.removed), "removed")) if n)
    dirs = sorted({posixpath.dirname(p) or "." for p in every})
    return f"{cluster}: {counts} in {', '.join(dirs[:3])}{', ...' if len(dirs) > 3 else ''}"


def commit_message(cluster: str, change: TreeChange, restored: list[str], first: bool, foreign: list[CommitInfo]) -> str:
    body = change.lines()
    if foreign:
        body.append("")
        body += [f"on top of {c.short} {c.subject!r} by {c.author} (pushed with --force)" for c in foreign[:SHOWN]]
    return f"{_subject(cluster, change, restored, first)}\n\n" + "\n".join(body) + f"\n\n{TRAILER}: {cluster}\n"


def push_tree(remote: GitRemote, managed: Mapping[str, bytes], *, cluster: str, prefix: str = "", force: bool = False,
              log: Callable[[str], None] = lambda m: None) -> PushResult:
    """Push `managed` (repository path -> bytes, every path under `prefix`) as described in the
    module docstring. RefusedError for foreign commits without `force`."""
    head = remote.fetch()
    history = remote.history(head) if head else []
    foreign: list[CommitInfo] = []
    base: str | None = None
    for info in history:
        if info.tierzero_cluster == cluster:
            base = info.sha
            break
        foreign.append(info)
    head_files = remote.files(head)
    ours = {p: b for p, b in head_files.items() if _managed(p, prefix)}
    restored: list[str] = []
    if foreign:
        before = {p: b for p, b in remote.files(base).items() if _managed(p, prefix)}
        theirs = diff(before, ours)
        if theirs.added or theirs.changed:
            if not force:
                raise _refusal(remote, foreign, theirs, prefix)
            log(f"--force: committing on top of {len(foreign)} commit(s) tierzero did not make; their changes under "
                f"{prefix or 'the repository'} are replaced")
        restored = [p for p in theirs.removed if p in managed]
        if restored:
            log(f"{len(restored)} file(s) were deleted in the remote outside tierzero; putting them back: {', '.join(restored[:SHOWN])}")
    wanted = {p: blob_id(d) for p, d in managed.items()}
    change = diff(ours, wanted)
    if change.empty:
        return PushResult(head, False, change)
    keep = {p: b for p, b in head_files.items() if not _managed(p, prefix)}
    message = commit_message(cluster, change, restored, first=head is None or base is None and not foreign, foreign=foreign if force else [])
    commit = remote.commit(managed, head, message, keep=keep)
    if head is not None and remote.tree_of(commit) == remote.tree_of(head):
        return PushResult(head, False, TreeChange())
    remote.push(commit)
    return PushResult(commit, True, change, restored, foreign if force else [])


def _refusal(remote: GitRemote, foreign: list[CommitInfo], theirs: TreeChange, prefix: str) -> RefusedError:
    commits = "; ".join(f"{c.short} {c.subject!r} by {c.author}" for c in foreign[:SHOWN])
    more = f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else ""
    changes = ", ".join(theirs.lines(SHOWN))
    return RefusedError(
        f"the branch {remote.branch} of {remote.shown_url} has {len(foreign)} commit(s) tierzero did not make: {commits}{more}; "
        f"under {prefix + '/' if prefix else 'the tree tierzero manages'} they made these changes: {changes}. Nothing was pushed",
        hint=f"to keep those changes, merge them into tierzero.yaml (or a patch it applies) so the rendered tree carries them, then run "
             f"`tierzero deploy --force` to commit on top of them; to drop them, revert them on {remote.branch} or run "
             "`tierzero deploy --force` (they stay in the branch history, their changes are replaced)")


# ---------------------------------------------------------------------------- the step's parts

def known_hosts_file(ctx: StepContext) -> Path:
    return Path(ctx.workspace.root) / "git_known_hosts"


@dataclass(frozen=True)
class RemoteSpec:
    """Where a cluster's tree is pushed and how: what git connects to, the name the user wrote."""

    location: GitLocation
    auth: GitAuth
    shown: str
    connect: tuple[str, int] | None = None  # where an ssh host really answers, when not its name (sandbox)


def remote_spec(ctx: StepContext, cluster: Cluster) -> RemoteSpec:
    """From the spec (`gitops.push_url` or `repo_url`, `push_key`, `token`), unless the target's
    Connections say where the remote really is (the sandbox's Git host)."""
    gitops = cluster.gitops
    assert gitops is not None
    shown = gitops.push_url or gitops.repo_url
    endpoint = ctx.connections.endpoints.get(("git", cluster.name))
    base_dir = Path(ctx.workspace.root).parent
    if endpoint is not None and endpoint.extra.get("url"):
        location = GitLocation.parse(str(endpoint.extra["url"]))
        extra = endpoint.extra
        auth = GitAuth(identity=Path(extra["identity"]) if extra.get("identity") else None,
                       known_hosts=known_hosts_file(ctx) if location.scheme == "ssh" else None,
                       host_key_alias=extra.get("host_key_alias"), username=gitops.username, token=extra.get("token"),
                       ca_file=endpoint.verify if isinstance(endpoint.verify, str) else None)
        return RemoteSpec(location, auth, shown, (location.host, location.port or 22))
    location = GitLocation.parse(shown, base_dir)
    token = ctx.secrets.resolve(gitops.token) if gitops.token and location.scheme in ("https", "http") else None
    key = Path(gitops.push_key).expanduser() if gitops.push_key else None
    if key is not None and not key.is_absolute():
        key = base_dir / key
    auth = GitAuth(identity=key, known_hosts=known_hosts_file(ctx) if location.scheme == "ssh" else None,
                   username=gitops.username, token=token)
    return RemoteSpec(location, auth, shown)


def open_remote(ctx: StepContext, cluster: Cluster) -> GitRemote:
    """The cluster's remote with its workspace clone; an ssh host's key is pinned first."""
    spec = remote_spec(ctx, cluster)
    if spec.location.scheme == "ssh":
        assert spec.auth.known_hosts is not None
        prints, fresh = pin_host_key(spec.location, spec.auth.known_hosts, connect=spec.connect, alias=spec.auth.host_key_alias)
        if fresh:
            ctx.log(f"first contact with {spec.auth.host_key_alias or spec.location.host}: pinned its SSH host key "
                    f"({'; '.join(prints)}) in {spec.auth.known_hosts}; compare with the fingerprints your Git host publishes")
    assert cluster.gitops is not None
    clone = Path(ctx.workspace.root) / "git" / f"{cluster.name}.git"
    return git.GitRemote(clone, spec.location, cluster.gitops.branch, spec.auth, shown_url=spec.shown)


def check_tree(managed: Mapping[str, bytes], recipients: list[str]) -> None:
    """Refuse a tree with a plaintext secret or with what Flux would refuse, naming each."""
    from tierzero.render.gitops.checks import plaintext_secrets, tree_problems

    secrets = plaintext_secrets(managed)
    if secrets:
        raise RefusedError(f"refusing to push: {len(secrets)} plaintext secret(s) in the tree: " + "; ".join(p.line() for p in secrets[:SHOWN]),
                           hint="nothing was pushed; encrypt them with sops (the workspace .sops.yaml says how) or remove them, then deploy again")
    problems = tree_problems(managed, recipients=recipients)
    if problems:
        raise RefusedError(f"refusing to push: {len(problems)} problem(s) Flux would refuse: " + "; ".join(p.line() for p in problems[:SHOWN]),
                           hint="nothing was pushed; fix the spec (or the file named) and deploy again")


def render_files(ctx: StepContext, cluster: Cluster) -> dict[str, bytes]:
    root = Path(ctx.workspace.render_dir) / "gitops" / cluster.name
    if not root.is_dir():
        raise OperationError(f"no rendered GitOps tree at {root}", hint="run `tierzero plan` first: it renders the GitOps tree")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def managed_tree(files: Mapping[str, bytes], prefix: str, extra: Mapping[str, bytes] = {}) -> dict[str, bytes]:  # noqa: B006 - read only
    """The repository's managed files: the tree's paths under `prefix`."""
    return {posixpath.join(prefix, p) if prefix else p: d for p, d in {**files, **extra}.items()}


def outputs(result: PushResult, branch: str, remote: GitRemote) -> dict[str, Any]:
    return {"revision": result.revision(branch), "commit": result.commit, "pushed": result.pushed, "remote": remote.shown_url,
            "branch": branch, "changed": result.change.lines(), "restored": result.restored,
            "forced_over": [c.short for c in result.foreign]}
