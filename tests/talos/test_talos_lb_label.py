"""Issue 17 case 3: a cluster with no workers that renders a load-balancer provider drops Talos'
exclude-from-external-load-balancers label from its control planes, and `check` says so.

Right values: Talos adds `node.kubernetes.io/exclude-from-external-load-balancers: ""` to control planes from
contract 1.8 (siderolabs/talos pkg/machinery/config/contract.go AddExcludeFromExternalLoadBalancer; generate/init.go
`.machine.nodeLabels` before v1.14, generate/kubernetes.go KubeNodeConfig from v1.14, tags v1.11.6–v1.14.0-rc.1);
MetalLB ≥ 0.14 and Kubernetes' service controller skip labelled nodes (metallb/metallb issue 2676, shared/facts.md)."""

from __future__ import annotations

import pytest

from memory_secrets import MemorySecrets
from tierzero.render import talos_spec
from tierzero.render.load_balancers import exclude_label_decision

from test_talos_from_spec import CONTRACTS, docs_of, labels_of, platform

LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def without_workers(data):
    data["clusters"][0]["workers"] = []


def with_provider(kind: str):
    def mutate(data):
        addons = data["clusters"][0]["addons"]
        addons.pop("metallb", None)
        if kind in ("metallb", "cilium"):
            addons["metallb"] = {"implementation": kind, "addresses": ["10.10.0.200-10.10.0.220"]}
        elif kind == "oci_ccm":
            addons["oci_ccm"] = {}
    return mutate


def both(*mutations):
    def mutate(data):
        for m in mutations:
            m(data)
    return mutate


def control_plane_labels(p, talos: str) -> dict:
    cluster = p.clusters[0]
    docs = docs_of(talos_spec.machine_config(p, cluster, cluster.control_planes[0].name, MemorySecrets()))
    return labels_of(docs, talos)


@pytest.mark.parametrize("provider", ["metallb", "cilium"])
@pytest.mark.parametrize("talos,kubernetes", CONTRACTS)
def test_no_workers_and_a_provider_drops_the_label(talos, kubernetes, provider):
    p = platform(talos, kubernetes, mutate=both(without_workers, with_provider(provider)))
    labels = control_plane_labels(p, talos)
    assert LABEL not in labels
    assert labels.get("fleet") == "tz"  # the user's cluster patch still applies
    assert exclude_label_decision(p.clusters[0]).remove_label


@pytest.mark.parametrize("talos,kubernetes", CONTRACTS)
def test_the_label_stays_when_workers_carry_the_load_balancers(talos, kubernetes):
    """The boundary: one worker is enough for the providers; control planes keep Talos' default."""
    p = platform(talos, kubernetes, mutate=with_provider("metallb"))
    assert LABEL in control_plane_labels(p, talos)
    assert not exclude_label_decision(p.clusters[0]).remove_label


@pytest.mark.parametrize("talos,kubernetes", [CONTRACTS[0], CONTRACTS[-1]])
def test_the_label_stays_without_a_provider(talos, kubernetes):
    p = platform(talos, kubernetes, mutate=both(without_workers, with_provider("none")))
    assert LABEL in control_plane_labels(p, talos)
    assert exclude_label_decision(p.clusters[0]).describe() is None


def test_the_oci_ccm_counts_as_a_provider():
    """The OCI CCM's load balancers go through Kubernetes' service controller, which honours the label."""
    from tierzero.spec.clusters import Cluster

    base = platform(mutate=without_workers).clusters[0]
    data = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["addons"] = {"oci_ccm": {}}
    decision = exclude_label_decision(Cluster.model_validate(data))
    assert decision.remove_label and "OCI cloud-controller-manager" in decision.describe()


def test_check_says_what_it_did(tmp_path, capsys):
    """The starter blueprint (3 control planes, no workers, OCI CCM) drops the label; check prints it."""
    from tierzero.cli.main import run

    with pytest.raises(SystemExit):
        run(["init", str(tmp_path)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(["check", "-f", str(tmp_path / "tierzero.yaml")])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert f"no workers, so the control-plane configs drop the label {LABEL}" in out
