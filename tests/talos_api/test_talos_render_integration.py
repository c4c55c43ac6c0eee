"""The stand-in accepts what tierzero.render.talos generates (Talos-style Ed25519 OS CA and
admin certificate), end to end: apply, reboot, bootstrap, health, kubeconfig."""

from __future__ import annotations

import pytest
import yaml

from tierzero.adapters.talos import TalosClient

render_node = pytest.importorskip("tierzero.render.talos.node")
render_client = pytest.importorskip("tierzero.render.talos.client")
render_secrets = pytest.importorskip("tierzero.render.talos.secrets")
render_contract = pytest.importorskip("tierzero.render.talos.contract")


async def test_generated_configs_and_talosconfig_work_against_the_stand_in(start, connections) -> None:
    bundle = render_secrets.generate_bundle()
    common = render_node.ClusterInputs(
        name="homelab", endpoint="https://10.20.0.10:6443", talos_version=render_contract.DEFAULT_CONTRACT, kubernetes_version="1.34.1",
        secrets=bundle,
    )
    nodes = {"10.20.0.11": ("cp1", "controlplane"), "10.20.0.21": ("w1", "worker")}
    kube = render_client.admin_kubeconfig(bundle, "homelab", "https://10.20.0.10:6443")
    for address, (hostname, role) in nodes.items():
        await start(address, kubeconfig=lambda cluster, addr: kube)
        node_inputs = render_node.NodeInputs(hostname=hostname, role=role, address=f"{address}/24", gateway="10.20.0.1")
        config = render_node.render_node_config(common, node_inputs)
        async with TalosClient.maintenance(address, connections=connections) as insecure:
            assert (await insecure.apply_configuration(config)).mode == "reboot"

    talosconfig = render_client.talosconfig(bundle, "homelab", ["10.20.0.11"], ["10.20.0.11"])
    async with TalosClient.authenticated("10.20.0.11", talosconfig, connections=connections) as cp:
        assert (await cp.wait_ready(10)).hostname == "cp1"
        assert await cp.bootstrap() is True
        await cp.wait_services(timeout=5)
        assert [m.hostname for m in await cp.etcd_members()] == ["cp1"]
        assert yaml.safe_load(await cp.kubeconfig())["clusters"][0]["name"] == "homelab"
    async with TalosClient.authenticated("10.20.0.21", talosconfig, connections=connections) as worker:
        assert (await worker.wait_ready(10)).hostname == "w1"
        assert await worker.unhealthy_services(("apid", "kubelet")) == []
