"""Phase "cloud" (minimal, written by the engine owner as glue): stage the OCI OpenTofu module
in `.tierzero/cloud/`, write its variables from the spec, plan, pass the plan through the
free-tier guard, apply exactly that plan, and read the outputs back. Instance addresses are
published as endpoints (ssh/proxmox per Proxmox node on a cloud instance).

The sandbox applies the `oci_twin` layer (terraform_data only) instead: the harness sets
`connections.state["tofu_layer"]`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tierzero.engine.step import Step, StepContext


def _workdir(ctx: StepContext) -> Any:
    return ctx.workspace.root / "cloud"


def _apply_sync(ctx: StepContext) -> dict[str, Any]:
    from tierzero.adapters.tofu import TofuRunner
    from tierzero.adapters.tofu_workspace import layer_module_dir, stage_module
    from tierzero.freetier.guard import require_free
    from tierzero.render.tofu_vars import parse_outputs, state_backend, write_tfvars

    layer = str(ctx.connections.state.get("tofu_layer", "oci"))
    workdir = _workdir(ctx)
    stage_module(layer_module_dir(layer), workdir)
    write_tfvars(ctx.spec, workdir, base_dir=ctx.workspace.root.parent)
    runner = TofuRunner(workdir)
    runner.init(backend=state_backend(ctx.spec, ctx.secrets.resolve))
    plan, _ = runner.plan_guard_apply(lambda plan_json: require_free(plan_json))
    cloud = parse_outputs(runner.output())
    endpoints = []
    for node in ctx.spec.proxmox.nodes:
        inst = cloud.instances.get(node.instance or "")
        if inst is None:
            continue
        address = inst.public_ip or inst.private_ip
        endpoints.append({"kind": "ssh", "name": node.name, "host": address, "port": node.ssh.port, "scheme": "ssh",
                          "extra": {"user": node.ssh.user, "address": inst.private_ip}})
        endpoints.append({"kind": "proxmox", "name": node.name, "host": address, "port": 8006, "verify": False})
    return {
        "layer": layer,
        "compartment_id": cloud.compartment_id,
        "bastion_ip": cloud.bastion_ip,
        "instances": {n: {"ocid": i.ocid, "shape": i.shape, "private_ip": i.private_ip, "public_ip": i.public_ip,
                          "availability_domain": i.availability_domain} for n, i in cloud.instances.items()},
        "endpoints": endpoints,
    }


def _destroy_sync(ctx: StepContext) -> dict[str, Any]:
    from tierzero.adapters.tofu import TofuRunner

    workdir = _workdir(ctx)
    if not (workdir / "terraform.tfstate").exists() and ctx.spec.oci.state_backend.type == "local":
        return {"destroyed": False}
    runner = TofuRunner(workdir)
    runner.destroy(lambda plan_json: None)  # the user confirmed the destroy; nothing is created by it
    return {"destroyed": True}


async def _destroy(ctx: StepContext) -> Mapping[str, Any]:
    ctx.wait("OpenTofu destroy")
    return await asyncio.to_thread(_destroy_sync, ctx)


async def _apply(ctx: StepContext) -> Mapping[str, Any]:
    ctx.wait("OpenTofu plan, free-tier guard and apply")
    return await asyncio.to_thread(_apply_sync, ctx)


def steps(spec: Any) -> list[Step]:
    if spec.oci is None:
        return []
    return [Step("cloud/oci", "cloud", "OCI network, instances and budget (OpenTofu, guarded)", _apply,
                 inputs=lambda ctx: {"oci": ctx.spec.oci.model_dump(mode="json"), "layer": str(ctx.connections.state.get("tofu_layer", "oci"))},
                 destroy=_destroy, real_only=True)]
