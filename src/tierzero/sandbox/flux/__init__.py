"""The Flux stand-in (`STANDIN`, "flux"): Flux's controllers for each spec cluster whose GitOps
engine is Flux, reconciling from what is really in Git on the sandbox's Git host into the
Kubernetes stand-in (`controller.py`, with `source.py`, `kustomize.py`, `helm.py`, `build.py`).

It starts as a cluster is before `flux bootstrap`: nothing of Flux runs until tierzero applies
Flux's Deployments (from the committed gotk-components.yaml); then each controller runs.
It also plays a `flux` CLI of the pinned version for the run (`cli.py`): the components source
a real run would use, with its own manifest and a digest only the sandbox trusts.
"""

from __future__ import annotations

from pathlib import Path

from tierzero.sandbox import git_forge, kubernetes
from tierzero.sandbox.context import Handle, SandboxContext, StandIn, Stop
from tierzero.sandbox.flux.cli import SANDBOX_DIGEST, write_program
from tierzero.sandbox.flux.controller import FluxController

CONTROLLERS: Handle[dict[str, FluxController]] = Handle("flux")  # by cluster name


def _start(box: SandboxContext) -> Stop:
    from tierzero.render.gitops.versions import FLUX_VERSION

    base = Path(box.state_dir) / "flux"
    box.connections.git.flux_cli = write_program(base / "bin")
    box.connections.git.extra_digests[FLUX_VERSION] = SANDBOX_DIGEST
    box.connections.git.cache_dir = base / "cache"
    servers = box[kubernetes.SERVERS]
    forge = box.get(git_forge.SERVER)
    controllers = box.put(CONTROLLERS, {})
    for cluster in box.spec.clusters:
        if cluster.gitops is None or cluster.gitops.engine != "flux" or cluster.name not in servers:
            continue
        controllers[cluster.name] = FluxController(cluster.name, servers[cluster.name].state, forge, base / "storage" / cluster.name,
                                                   box.options.flux_interval_scale).start()

    def stop() -> None:
        for controller in controllers.values():
            controller.stop()

    return stop


STANDIN = StandIn("flux", _start)
