"""A 3-node cluster from scratch: fresh secrets bundle plus three rendered machine configs."""

from __future__ import annotations

from tierzero.render.talos.node import ClusterInputs, NodeInputs, render_node_config
from tierzero.render.talos.secrets import generate_bundle

NODES = [
    NodeInputs("cp-1", "controlplane", address="10.0.0.11/24", gateway="10.0.0.1", vip="10.0.0.5"),
    NodeInputs("cp-2", "controlplane", address="10.0.0.12/24", gateway="10.0.0.1", vip="10.0.0.5"),
    NodeInputs("worker-1", "worker", address="10.0.0.21/24", gateway="10.0.0.1"),
]


def build_cluster() -> list[str]:
    common = ClusterInputs("bench", "https://10.0.0.5:6443", "v1.14", "1.33.0", generate_bundle())
    return [render_node_config(common, node) for node in NODES]


def test_three_node_cluster(benchmark):
    configs = benchmark(build_cluster)
    assert len(configs) == 3 and all("KubeClusterConfig" in text for text in configs)
    if benchmark.stats:
        assert benchmark.stats["mean"] < 1.0
