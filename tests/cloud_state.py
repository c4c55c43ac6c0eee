"""The cloud layer's state as the sandbox's stand-ins read it, for tests that skip the cloud phase."""

from __future__ import annotations

import json

from tierzero.workspace.layout import Workspace


def launched_with(ws: Workspace, key: str, instance: str = "bastion") -> None:
    """The twin layer's state with micro instance `instance` launched with `key` as its
    ssh_authorized_keys metadata, as layers/oci_twin/twin.tf records it."""
    state = {"version": 4, "resources": [{"mode": "managed", "type": "terraform_data", "name": "micro", "instances": [
        {"index_key": instance, "attributes": {"output": {"value": {"display_name": f"demo-{instance}", "metadata": {"ssh_authorized_keys": key}}}}}]}]}
    (ws.root / "cloud").mkdir(parents=True, exist_ok=True)
    (ws.root / "cloud" / "terraform.tfstate").write_text(json.dumps(state))
