"""A small valid spec with a cloud.oci section, as the user would write it."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tierzero.spec.models import Platform

SPEC = """
apiVersion: tierzero.dev/v1
kind: Platform
metadata:
  name: homelab
cloud:
  oci:
    region: eu-frankfurt-1
    tenancy_ocid: ocid1.tenancy.oc1..aaaaaaaaexampleexample
    compartment_name: tierzero
    availability_domains: [AD-1, AD-2, AD-3]
    network:
      admin_cidrs: [203.0.113.7/32]
      allow_http: true
    a1_instances:
      - {name: a1-1, ocpus: 1, memory_gb: 6, boot_volume_gb: 50}
      - {name: a1-2, ocpus: 1, memory_gb: 6, boot_volume_gb: 50, availability_domain: AD-2}
    micro_instances:
      - {name: bastion, roles: [bastion, quorum-witness], boot_volume_gb: 50}
    block_volumes:
      - {name: data-1, size_gb: 50, instance: a1-1}
    budget:
      alert_email: you@example.com
hypervisors:
  proxmox:
    cluster_name: tierzero
    nodes:
      - {name: pve1, instance: a1-1, memory_reserve_gb: 2}
      - {name: pve2, instance: a1-2, memory_reserve_gb: 2}
    storage: local-lvm
    bridge: vmbr1
    network: 10.10.0.0/24
    gateway: 10.10.0.1
    qdevice:
      host: bastion
    allow_software_emulation: true
"""

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExample tierzero"


def spec_data() -> dict[str, Any]:
    return yaml.safe_load(SPEC)


def platform(**oci_changes: Any) -> Platform:
    data = copy.deepcopy(spec_data())
    data["cloud"]["oci"].update(oci_changes)
    return Platform.model_validate(data)
