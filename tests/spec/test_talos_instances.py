"""Issue 15: clusters whose nodes are A1 instances running Talos directly (blueprint oci-talos), and what
the spec loader refuses about them, each at the field to fix."""

from __future__ import annotations

import pytest
import yaml
from spec_builder import spec_data

from tierzero.spec import SpecError, load_spec_bytes


def load(changes: dict):
    return load_spec_bytes(yaml.safe_dump(spec_data("oci-talos", changes), sort_keys=False).encode(), "tierzero.yaml")


def problems(changes: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as err:
        load(changes)
    return [(".".join(str(p) for p in problem.path), problem.message) for problem in err.value.problems]


def test_the_blueprint_loads_without_proxmox_and_maps_nodes_to_instances():
    loaded = load({})
    p = loaded.platform
    assert not p.has_proxmox and not p.services
    assert [(c.name, n.name, i.name) for c, n, i in p.talos_instances()] == [("main", "cp-1", "talos-cp-1"), ("main", "w-1", "talos-w-1")]
    assert p.cluster("main").on_instances
    with pytest.raises(LookupError):
        p.proxmox  # noqa: B018  (a spec without Proxmox hosts says so instead of answering None)


@pytest.mark.parametrize("changes, where, words", [
    ({"clusters.0.control_planes.0.instance": "nope"}, "clusters.0.control_planes.0.instance", "no A1 instance named 'nope'"),
    ({"clusters.0.workers.0.instance": "talos-cp-1"}, "clusters.0.workers.0.instance", "already used"),
    ({"clusters.0.control_planes.0.node": "pve1"}, "clusters.0.control_planes.0", "exactly one of `node`"),
    ({"clusters.0.workers.0": {"name": "w-1", "node": "pve1", "ip": "10.0.1.21/24"}}, "clusters.0", "mixes Proxmox VMs"),
    ({"clusters.0.arch": "amd64"}, "clusters.0.arch", "arm64"),
    ({"clusters.0.vip": "10.0.1.10"}, "clusters.0.vip", "layer-2"),
    ({"clusters.0.workers.0.ip": "10.0.1.1/24"}, "clusters.0.workers.0.ip", "reserved by OCI"),
    ({"clusters.0.workers.0.ip": "10.0.2.21/24"}, "clusters.0.workers.0.ip", "outside the network 10.0.1.0/24"),
    ({"services": [{"kind": "infisical", "name": "inf", "node": "pve1", "vmid": 300, "ip": "10.0.1.30/24",
                    "admin_email": "a@b.co", "organization": "o"}]}, "services.0", "no hypervisors.proxmox"),
    ({"clusters.0.image_ocid": "ocid1.instance.oc1..x"}, "clusters.0.image_ocid", ""),
])
def test_refused_at_the_field_to_fix(changes, where, words):
    found = problems(changes)
    assert any(path == where and words in message for path, message in found), found


def test_a_proxmox_host_instance_cannot_also_run_talos():
    data_changes = {
        "hypervisors": {"proxmox": {"cluster_name": "t", "network": "10.10.0.0/24", "gateway": "10.10.0.1",
                                    "nodes": [{"name": "pve1", "instance": "talos-w-1"}]}},
    }
    found = problems(data_changes)
    assert any(path == "clusters.0.workers.0.instance" and "already a Proxmox host" in message for path, message in found), found
