"""The GitOps phase against the sandbox's Git host, Kubernetes API and Flux stand-in: a starter
project rendered for real, the gitops steps run through the real engine, and the means to act
on the remote as someone else would (a clone with the account key)."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tierzero.adapters.retry import Policy
from tierzero.engine.runner import Runner, StepFailed
from tierzero.engine.state import StateStore
from tierzero.phases import gitops
from tierzero.render import plan
from tierzero.sandbox import flux, git_forge, kubernetes
from tierzero.sandbox.harness import Sandbox
from tierzero.spec import load_spec
from tierzero.workspace import plan as workspace_plan
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.layout import Workspace
from tierzero.workspace.secrets import WorkspaceSecrets

STANDINS = ["kubernetes", "internet", "git-forge", "flux"]
KS = "kustomize.toolkit.fluxcd.io/v1"


class GitopsWorld:
    def __init__(self, root: Path, blueprint: str = "oci-free-tier", edit: Any = None, **options: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        with resources.as_file(resources.files("tierzero.spec").joinpath(f"blueprints/{blueprint}.yaml")) as path:
            data = yaml.safe_load(path.read_text())
        if edit is not None:
            edit(data)
        self.spec_file = root / "tierzero.yaml"
        self.spec_file.write_text(yaml.safe_dump(data, sort_keys=False))
        self.ws = Workspace.beside(self.spec_file)
        init_workspace(self.ws)
        self.box = Sandbox(self.load().platform, self.ws, persist=False, **options)
        self.conns = self.box.start(only=STANDINS)
        self.conns.retry.wait = Policy(base=0.05, cap=0.3, deadline=20)
        self.conns.retry.kubernetes = Policy(base=0.05, cap=0.3, deadline=10)
        self.state = StateStore.open(self.ws.state_dir, "sandbox")
        self.events: list[tuple[str, dict[str, Any]]] = []

    def load(self) -> Any:
        return load_spec(self.spec_file)

    @property
    def spec(self) -> Any:
        return self.load().platform

    def render(self) -> None:
        """The GitOps part of `tierzero plan`: rendered, sealed (unchanged Secrets keep their
        ciphertext), written at once."""
        loaded = self.load()
        ctx = workspace_plan.make_context(loaded, self.ws)
        key = WorkspaceSecrets(self.ws, self.root).age_key()
        previous = self.ws.render_dir if self.ws.render_dir.is_dir() else None
        sealed = workspace_plan.seal_stream(plan.gitops_part(ctx), ctx.recipient, key, previous)
        workspace_plan.write_plan(sealed.files, self.ws.render_dir)

    def edit_spec(self, change: Any) -> None:
        data = yaml.safe_load(self.spec_file.read_text())
        change(data)
        self.spec_file.write_text(yaml.safe_dump(data, sort_keys=False))

    async def deploy(self, *, force: bool = False, render: bool = True) -> Any:
        if render:
            self.render()
        spec = self.spec
        self.conns.git.force = force
        runner = Runner(gitops.steps(spec), spec=spec, workspace=self.ws, target="sandbox", connections=self.conns,
                        secrets=WorkspaceSecrets(self.ws, self.root), state=self.state,
                        emit=lambda kind, **f: self.events.append((kind, f)))
        return await runner.run()

    async def failure(self, **kw: Any) -> StepFailed:
        try:
            await self.deploy(**kw)
        except StepFailed as exc:
            return exc
        raise AssertionError("the deploy did not fail")

    async def until(self, predicate: Any, deadline: float = 20.0) -> None:
        """Wait (polling the stand-ins' state) until `predicate()` holds."""
        from tierzero.adapters.retry import retry_async

        async def check() -> None:
            if not predicate():
                raise ConnectionError("not yet")

        await retry_async(check, policy=Policy(base=0.02, cap=0.2, deadline=deadline))

    def reconcile_now(self) -> None:
        """What `flux reconcile source git flux-system` does: a new requestedAt annotation."""
        import time

        repo = self.flux_object("flux-system", "GitRepository", "source.toolkit.fluxcd.io/v1")
        self.kube.apply({"apiVersion": repo["apiVersion"], "kind": repo["kind"], "spec": repo["spec"],
                         "metadata": {"name": "flux-system", "namespace": "flux-system",
                                      "annotations": {"reconcile.fluxcd.io/requestedAt": str(time.time())}}}, "test")

    async def wait_ready(self, deadline: float = 20.0) -> dict[str, Any]:
        """The ready step alone, for the commit at the head of the branch (pushed by someone else)."""
        from tierzero.engine.step import StepContext

        self.conns.retry.wait = Policy(base=0.05, cap=0.3, deadline=deadline)
        ctx = StepContext(spec=self.spec, workspace=self.ws, target="sandbox", connections=self.conns, secrets=WorkspaceSecrets(self.ws, self.root),
                          outputs={"gitops/main/push": {"revision": f"main@sha1:{self.head()}"}}, step_id="gitops/main/ready")
        try:
            return dict(await gitops._ready(gitops.GitopsHooks(), "main")(ctx, None))
        finally:
            self.conns.retry.wait = Policy(base=0.05, cap=0.3, deadline=20)

    def output(self, step: str) -> dict[str, Any]:
        rec = self.state.get(step)
        assert rec is not None, step
        return dict(rec.outputs)

    def logs(self) -> list[str]:
        return [f["message"] for kind, f in self.events if kind == "log"]

    # -- the world

    @property
    def kube(self) -> kubernetes.KubeState:
        return self.box.context[kubernetes.SERVERS]["main"].state  # type: ignore[index]

    @property
    def forge(self) -> git_forge.GitForge:
        return self.box.context[git_forge.SERVER]  # type: ignore[return-value]

    @property
    def controller(self) -> Any:
        return self.box.context[flux.CONTROLLERS]["main"]  # type: ignore[index]

    def repo(self) -> Path:
        return next(iter(self.forge.repos.values())).path

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """git as the repository's owner (the account key), against the sandbox's Git host."""
        where = self.forge.resolve(self.spec.clusters[0].gitops.repo_url)
        assert where is not None
        known = self.root / "owner_known_hosts"
        port = self.forge.hosts["github.com"].ssh_port
        if not known.exists():
            scan = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True, text=True, check=True).stdout
            known.write_text("".join("github.com " + ln.split(" ", 1)[1] + "\n" for ln in scan.splitlines() if not ln.startswith("#")))
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.com",
               "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@example.com",
               "GIT_SSH_COMMAND": f"ssh -i {self.ws.ssh_key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={known} "
                                  "-o StrictHostKeyChecking=yes -o HostKeyAlias=github.com"}
        args = tuple(where.url if a == "REMOTE" else a for a in args)
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def by_hand(self, change: Any, message: str) -> str:
        """Clone, let `change(work_dir)` edit files, commit as Alice and push; the new head."""
        work = self.root / "alice"
        shutil.rmtree(work, ignore_errors=True)
        self.git("clone", "-q", "REMOTE", str(work))
        change(work)
        self.git("add", "-A", cwd=work)
        self.git("commit", "-qm", message, cwd=work)
        self.git("push", "-q", "origin", "HEAD:main", cwd=work)
        return self.head()

    def head(self) -> str:
        return subprocess.run(["git", "--git-dir", str(self.repo()), "rev-parse", "--verify", "-q", "main"], capture_output=True, text=True).stdout.strip()

    def commits(self) -> list[str]:
        out = subprocess.run(["git", "--git-dir", str(self.repo()), "log", "--format=%H %s", "main"], capture_output=True, text=True)
        return out.stdout.splitlines()

    def flux_object(self, name: str, kind: str = "Kustomization", api: str = KS) -> dict[str, Any]:
        found = self.kube.read(api, kind, name, "flux-system")
        assert found is not None, name
        return found

    def ready(self, name: str, kind: str = "Kustomization", api: str = KS) -> dict[str, Any]:
        return next(c for c in self.flux_object(name, kind, api)["status"]["conditions"] if c["type"] == "Ready")

    def close(self) -> None:
        self.state.close()
        self.box.stop()
