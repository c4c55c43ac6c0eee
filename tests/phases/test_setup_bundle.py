"""Setup makes one Talos secrets bundle per cluster, the one the renderer reads; a workspace from
an earlier version loses the second bundle it held, and keeps the one its cluster was built from."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tierzero.adapters.connections import Connections
from tierzero.engine.runner import Runner
from tierzero.engine.state import StateStore
from tierzero.phases import setup
from tierzero.render.talos_spec import secrets_bundle
from tierzero.spec import load_spec
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.secrets import WorkspaceSecrets

from spec_builder import blueprint_data


def _run(spec_path: Path) -> tuple[WorkspaceSecrets, StateStore]:
    loaded = load_spec(spec_path)
    ws = Workspace.beside(spec_path)
    secrets = WorkspaceSecrets(ws, spec_path.parent)
    state = StateStore.open(ws.state_dir, "sandbox")
    runner = Runner(setup.steps(loaded.platform), spec=loaded.platform, workspace=ws, target="sandbox",
                    connections=Connections(target="sandbox"), secrets=secrets, state=state, emit=lambda kind, **f: None)
    asyncio.run(runner.run())
    return secrets, state


def _project(tmp_path: Path) -> Path:
    spec = tmp_path / "tierzero.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(blueprint_data("oci-free-tier")))
    init_workspace(Workspace.beside(spec))
    return spec


def test_one_bundle_per_cluster_the_one_the_configs_are_rendered_from(tmp_path: Path) -> None:
    secrets, state = _run(_project(tmp_path))
    bundles = [n for n in secrets.names() if n.startswith("talos/") and "secrets" in n]
    assert bundles == ["talos/main/secrets.yaml"]
    assert state.get("setup/secrets-bundle").outputs == {"bundles": ["talos/main/secrets.yaml"]}
    state.close()


def test_an_older_workspace_loses_the_unused_bundle_and_keeps_its_cluster(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    ws = Workspace.beside(spec)
    older = WorkspaceSecrets(ws, tmp_path)
    cluster = load_spec(spec).platform.clusters[0]
    built_from = secrets_bundle(older, cluster).to_yaml()  # what an earlier version rendered the configs from
    older.put("talos/main/secrets-bundle", "an unrelated second bundle nothing read")
    secrets, state = _run(spec)
    assert "talos/main/secrets-bundle" not in secrets.names()
    assert WorkspaceSecrets(ws, tmp_path).get("talos/main/secrets.yaml") == built_from
    state.close()
