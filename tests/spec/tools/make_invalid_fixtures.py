"""Regenerate tests/spec/invalid/*.yaml from valid/base.yaml and the mutation table below.

Each fixture records the YAML path, line and message the loader must report. The expected line
is computed here from the text (the line holding the anchor), independently of the loader.
Run: python tests/spec/tools/make_invalid_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BASE = (HERE / "valid" / "base.yaml").read_text()

W1 = "      - name: w-1\n        node: pve2\n        cores: 1\n        memory_gb: 2\n        ip: 10.10.0.21/24\n        mac: BC:24:11:00:00:21\n        vmid: 1011\n"


def w1(**changes: str) -> tuple[str, str]:
    new = W1
    for key, value in changes.items():
        line = next(row for row in W1.splitlines() if row.strip().startswith(f"{key}:"))
        new = new.replace(line, line.split(":")[0] + f": {value}")
    return W1, new


# slug, old text, new text, expected path, message fragment, anchor (default: the new text's first changed line)
CASES: list[tuple[str, str, str, str, str, str | None]] = [
    ("unknown-top-level-key", "kind: Platform\n", "kind: Platform\nclusterz: []\n", "clusterz", "did you mean 'clusters'", "clusterz"),
    ("wrong-api-version", "apiVersion: tierzero.dev/v1", "apiVersion: tierzero.dev/v2", "apiVersion", "tierzero.dev/v1", None),
    ("wrong-kind", "kind: Platform", "kind: Cluster", "kind", "'Platform'", None),
    ("metadata-name-typo", "  name: fixture\n", "  nmae: fixture\n", "metadata.nmae", "did you mean 'name'", "nmae"),
    ("metadata-name-invalid", "  name: fixture\n", "  name: Fixture_1\n", "metadata.name", "pattern", "Fixture_1"),
    ("region-invalid", "region: eu-frankfurt-1", "region: Frankfurt", "cloud.oci.region", "pattern", None),
    ("tenancy-not-ocid", "tenancy_ocid: ocid1.tenancy.oc1..aaaaaaaafixture", "tenancy_ocid: ocid1.user.oc1..x", "cloud.oci.tenancy_ocid", "ocid1", None),
    ("vcn-prefix-too-long", "vcn_cidr: 10.0.0.0/16", "vcn_cidr: 10.0.0.0/33", "cloud.oci.network.vcn_cidr", "CIDR", None),
    ("vcn-host-bits", "vcn_cidr: 10.0.0.0/16", "vcn_cidr: 10.0.0.1/16", "cloud.oci.network.vcn_cidr", "host bits", None),
    ("subnet-outside-vcn", "subnet_cidr: 10.0.1.0/24", "subnet_cidr: 10.1.1.0/24", "cloud.oci.network.subnet_cidr", "not inside the VCN", None),
    ("admin-cidr-world", "admin_cidrs: [198.51.100.4/32]", "admin_cidrs: [0.0.0.0/0]", "cloud.oci.network.admin_cidrs[0]", "whole Internet", None),
    ("a1-fractional-ocpus", "        ocpus: 1\n", "        ocpus: 1.33\n", "cloud.oci.a1_instances[0].ocpus", "1.33 is a decimal number but this field takes a whole number", "ocpus: 1.33"),
    ("a1-zero-ocpus", "        ocpus: 1\n", "        ocpus: 0\n", "cloud.oci.a1_instances[0].ocpus", "greater than or equal to 1", "ocpus: 0"),
    ("a1-memory-not-number", "        memory_gb: 6\n", "        memory_gb: lots\n", "cloud.oci.a1_instances[0].memory_gb", "'lots' is a string but this field takes a whole number", "memory_gb: lots"),
    ("duplicate-instance-name", "      - name: a1-2\n", "      - name: a1-1\n", "cloud.oci.a1_instances[1].name", "already used", "- name: a1-1\nEND"),
    ("micro-unknown-role", "roles: [bastion, quorum-witness]", "roles: [bastion, witness]", "cloud.oci.micro_instances[0].roles[1]", "'quorum-witness'", None),
    ("reserved-ip-unknown-instance", "        instance: bastion\n", "        instance: nope\n", "cloud.oci.reserved_ips[0].instance", "no instance named 'nope'", "instance: nope"),
    ("budget-email-invalid", "alert_email: ops@example.com", "alert_email: ops", "cloud.oci.budget.alert_email", "pattern", None),
    ("budget-negative", "      amount: 1\n", "      amount: -1\n", "cloud.oci.budget.amount", "greater than 0", "amount: -1"),
    ("budget-amount-yes", "      amount: 1\n", "      amount: yes\n", "cloud.oci.budget.amount", "'yes' is a string but this field takes a number", "amount: yes"),
    ("compartment-both", "    compartment_name: tierzero\n", "    compartment_name: tierzero\n    compartment_ocid: ocid1.compartment.oc1..x\n", "cloud.oci", "not both", "region: eu-frankfurt-1"),
    ("proxmox-node-two-kinds", "        instance: a1-1\n", "        instance: a1-1\n        address: 10.10.0.5\n", "hypervisors.proxmox.nodes[0]", "exactly one of", "name: pve1"),
    ("proxmox-node-unknown-instance", "        instance: a1-1\n", "        instance: a1-9\n", "hypervisors.proxmox.nodes[0].instance", "no A1 instance named 'a1-9'", "instance: a1-9"),
    ("proxmox-cluster-name-long", "cluster_name: fixture", "cluster_name: this-name-is-far-too-long", "hypervisors.proxmox.cluster_name", "pattern", None),
    ("proxmox-network-invalid", "    network: 10.10.0.0/24\n", "    network: 10.10.0.0/99\n", "hypervisors.proxmox.network", "CIDR", "10.10.0.0/99"),
    ("gateway-outside-network", "gateway: 10.10.0.1", "gateway: 10.20.0.1", "hypervisors.proxmox.gateway", "outside the network", None),
    ("qdevice-unknown-host", "      host: bastion\n", "      host: witness\n", "hypervisors.proxmox.qdevice.host", "no micro instance named 'witness'", "host: witness"),
    ("proxmox-key-typo", "    gateway: 10.10.0.1\n", "    gateway: 10.10.0.1\n    brigde: vmbr0\n", "hypervisors.proxmox.brigde", "did you mean 'bridge'", "brigde"),
    ("vlan-out-of-range", "    gateway: 10.10.0.1\n", "    gateway: 10.10.0.1\n    vlan: 5000\n", "hypervisors.proxmox.vlan", "less than or equal to 4094", "vlan: 5000"),
    ("ceph-min-size-above-size", "    gateway: 10.10.0.1\n", "    gateway: 10.10.0.1\n    ceph:\n      enabled: false\n      size: 2\n      min_size: 3\n", "hypervisors.proxmox.ceph", "min_size cannot exceed size", "enabled: false"),
    ("talos-unsupported", "talos_version: v1.13.9", "talos_version: v1.9.5", "clusters[0].talos_version", "not supported", None),
    ("talos-version-format", "talos_version: v1.13.9", "talos_version: '1.13'", "clusters[0].talos_version", "pattern", None),
    ("kubernetes-unsupported", "kubernetes_version: 1.36.2", "kubernetes_version: 1.28.0", "clusters[0].kubernetes_version", "not supported by Talos v1.13", None),
    ("endpoint-not-https", "endpoint: https://10.10.0.10:6443", "endpoint: http://10.10.0.10:6443", "clusters[0].endpoint", "pattern", None),
    ("endpoint-not-vip", "endpoint: https://10.10.0.10:6443", "endpoint: https://10.10.0.99:6443", "clusters[0].endpoint", "neither the VIP", None),
    ("vip-is-node-ip", "    vip: 10.10.0.10\n", "    vip: 10.10.0.11\n", "clusters[0].vip", "is already used by node cp-1", "vip: 10.10.0.11"),
    ("vip-outside-network", "    vip: 10.10.0.10\n", "    vip: 10.20.0.10\n", "clusters[0].vip", "outside the network", "vip: 10.20.0.10"),
    ("arch-invalid", "arch: arm64", "arch: riscv64", "clusters[0].arch", "'amd64' or 'arm64'", None),
    ("no-control-planes", "services: []\n", "  - name: second\n    talos_version: v1.13.9\n    kubernetes_version: 1.36.2\n    endpoint: https://10.10.0.40:6443\n    control_planes: []\nservices: []\n", "clusters[1].control_planes", "at least 1 item", "control_planes: []"),
    ("worker-ip-outside", *w1(ip="10.11.0.21/24"), "clusters[0].workers[0].ip", "outside the network", "ip: 10.11.0.21/24"),
    ("worker-ip-network-address", *w1(ip="10.10.0.0/24"), "clusters[0].workers[0].ip", "network address", "ip: 10.10.0.0/24"),
    ("worker-ip-broadcast", *w1(ip="10.10.0.255/24"), "clusters[0].workers[0].ip", "broadcast address", "ip: 10.10.0.255/24"),
    ("worker-ip-no-prefix", *w1(ip="10.10.0.21"), "clusters[0].workers[0].ip", "prefix length", "ip: 10.10.0.21\n"),
    ("worker-ip-wrong-prefix", *w1(ip="10.10.0.21/16"), "clusters[0].workers[0].ip", "use /24", "ip: 10.10.0.21/16"),
    ("worker-ip-duplicate", *w1(ip="10.10.0.13/24"), "clusters[0].workers[0].ip", "is already used by node cp-3", "ip: 10.10.0.13/24\n        mac: BC:24:11:00:00:21"),
    ("worker-mac-duplicate", *w1(mac="BC:24:11:00:00:13"), "clusters[0].workers[0].mac", "already used; MAC addresses must be unique", "mac: BC:24:11:00:00:13\n        vmid: 1011"),
    ("worker-mac-multicast", *w1(mac="01:24:11:00:00:21"), "clusters[0].workers[0].mac", "multicast", "mac: 01:24:11"),
    ("worker-mac-invalid", *w1(mac="zz"), "clusters[0].workers[0].mac", "not a MAC", "mac: zz"),
    ("worker-vmid-duplicate", *w1(vmid="1003"), "clusters[0].workers[0].vmid", "already used", "vmid: 1003\nEND"),
    ("worker-vmid-too-low", *w1(vmid="99"), "clusters[0].workers[0].vmid", "greater than or equal to 100", "vmid: 99"),
    ("worker-unknown-host", *w1(node="pve7"), "clusters[0].workers[0].node", "no Proxmox node named 'pve7'", "node: pve7"),
    ("worker-does-not-fit-host", *w1(memory_gb="8"), "hypervisors.proxmox.nodes[1]", "need 10 GB", "name: pve2"),
    ("pod-cidr-overlaps-services", "    arch: arm64\n", "    arch: arm64\n    network:\n      pod_cidr: 10.96.0.0/16\n", "clusters[0].network.service_cidr", "overlaps the pod CIDR", "pod_cidr: 10.96.0.0/16"),
    ("pod-cidr-overlaps-node-network", "    arch: arm64\n", "    arch: arm64\n    network:\n      pod_cidr: 10.10.0.0/16\n", "clusters[0].network.pod_cidr", "overlaps the VM network", "pod_cidr: 10.10.0.0/16"),
    ("gitops-engine-invalid", "engine: flux", "engine: fluxcd", "clusters[0].gitops.engine", "'flux' or 'argocd'", None),
    ("gitops-repo-url-invalid", "repo_url: https://github.com/example/platform", "repo_url: github.com/example/platform", "clusters[0].gitops.repo_url", "pattern", None),
    ("plaintext-secret", "        acme_email: ops@example.com\n", "        acme_email: ops@example.com\n        cloudflare_api_token: abcdef123456\n", "clusters[0].addons.cert_manager.cloudflare_api_token", "plaintext secrets are not allowed", "cloudflare_api_token"),
    ("secret-ref-unknown-scheme", "        acme_email: ops@example.com\n", "        acme_email: ops@example.com\n        cloudflare_api_token: vault:cf\n", "clusters[0].addons.cert_manager.cloudflare_api_token", "env:NAME, file:PATH or sops:PATH#key", "cloudflare_api_token"),
    ("addon-key-typo", "        acme_email: ops@example.com\n", "        acme_emial: ops@example.com\n", "clusters[0].addons.cert_manager.acme_emial", "did you mean 'acme_email'", "acme_emial"),
    ("addon-name-typo", "      cert_manager:\n", "      cert_manger:\n", "clusters[0].addons.cert_manger", "did you mean 'cert_manager'", "cert_manger"),
    ("metallb-range-outside", "addresses: [10.10.0.200-10.10.0.220]", "addresses: [192.168.1.10-192.168.1.20]", "clusters[0].addons.metallb.addresses[0]", "outside the node network", None),
    ("patches-not-a-list", "    arch: arm64\n", "    arch: arm64\n    patches:\n      cluster: 42\n", "clusters[0].patches.cluster", "valid list", "cluster: 42"),
    ("json-patch-on-multidoc-contract", "    arch: arm64\n", "    arch: arm64\n    patches:\n      worker:\n        - - {op: add, path: /machine/env, value: {}}\n", "clusters[0].patches.worker[0]", "strategic merge patch", "- - {op: add"),
    ("cni-invalid", "    arch: arm64\n", "    arch: arm64\n    cni: flannel\n", "clusters[0].cni", "'cilium' or 'none'", "cni: flannel"),
    ("extension-without-namespace", "    arch: arm64\n", "    arch: arm64\n    extensions: [qemu-guest-agent]\n", "clusters[0].extensions", "Image Factory name", "extensions:"),
    ("install-disk-invalid", "    arch: arm64\n", "    arch: arm64\n    install_disk: sda\n", "clusters[0].install_disk", "pattern", "install_disk: sda"),
    ("service-missing-fields", "services: []\n", "services:\n  - kind: infisical\n    name: inf\n    node: pve2\n    vmid: 300\n", "services[0].admin_email", "missing required key 'admin_email'", "- kind: infisical"),
    ("service-unknown-node", "services: []\n", "services:\n  - kind: infisical\n    name: inf\n    node: pve9\n    vmid: 300\n    memory_gb: 1\n    admin_email: a@example.com\n    organization: x\n", "services[0].node", "no Proxmox node named 'pve9'", "node: pve9"),
    ("tab-indentation", "    region: eu-frankfurt-1\n", "\tregion: eu-frankfurt-1\n", "(document)", "tab", "region: eu-frankfurt-1"),
    ("duplicate-key", "    region: eu-frankfurt-1\n", "    region: eu-frankfurt-1\n    region: eu-paris-1\n", "(document)", "duplicate key 'region'", "region: eu-paris-1"),
    ("yaml-syntax-error", "  name: fixture\n", "  name: [fixture\n", "(document)", "started at line 7", "cloud:"),
    # Strict types: YAML's own type must be the field's.
    ("ocpus-boolean", "        ocpus: 1\n", "        ocpus: true\n", "cloud.oci.a1_instances[0].ocpus", "true is a boolean", "ocpus: true"),
    ("ocpus-quoted", "        ocpus: 1\n", "        ocpus: '1'\n", "cloud.oci.a1_instances[0].ocpus", "write it without quotes", "ocpus: '1'"),
    ("emulation-number", "allow_software_emulation: true", "allow_software_emulation: 1", "hypervisors.proxmox.allow_software_emulation", "takes true or false", None),
    ("memory-infinite", *w1(memory_gb=".inf"), "clusters[0].workers[0].memory_gb", "finite number", "memory_gb: .inf"),
    # Key material where a path belongs, or anywhere else.
    ("private-key-pasted", "        instance: a1-1\n", "        instance: a1-1\n        ssh: {private_key: \"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjE\"}\n", "hypervisors.proxmox.nodes[0].ssh.private_key", "an OpenSSH private key", "ssh: {private_key"),
    ("age-key-pasted", "      repo_url: https://github.com/example/platform\n", "      repo_url: https://github.com/example/platform\n      path: AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54K\n", "clusters[0].gitops.path", "an age secret key", "path: AGE-SECRET"),
    ("public-key-as-path", "        instance: a1-1\n", "        instance: a1-1\n        ssh: {private_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB}\n", "hypervisors.proxmox.nodes[0].ssh.private_key", "public key itself", "ssh: {private_key"),
    # Address collisions.
    ("node-on-gateway", *w1(ip="10.10.0.1/24"), "clusters[0].workers[0].ip", "already used by the Proxmox gateway", "ip: 10.10.0.1/24"),
    ("vip-on-gateway", "    vip: 10.10.0.10\n", "    vip: 10.10.0.1\n", "clusters[0].vip", "already used by the Proxmox gateway", "vip: 10.10.0.1\n"),
    ("vm-network-is-vcn-subnet", "    network: 10.10.0.0/24\n    gateway: 10.10.0.1\n", "    network: 10.0.1.0/24\n    gateway: 10.0.1.1\n", "hypervisors.proxmox.network", "overlaps the VCN", "network: 10.0.1.0/24"),
    ("lb-pool-covers-vip-and-nodes", "addresses: [10.10.0.200-10.10.0.220]", "addresses: [10.10.0.2-10.10.0.30]", "clusters[0].addons.metallb.addresses[0]", "the VIP of cluster main", None),
    ("lb-pool-covers-gateway", "addresses: [10.10.0.200-10.10.0.220]", "addresses: [10.10.0.0/28]", "clusters[0].addons.metallb.addresses[0]", "the Proxmox gateway", None),
    ("lb-pool-backwards", "addresses: [10.10.0.200-10.10.0.220]", "addresses: [10.10.0.220-10.10.0.200]", "clusters[0].addons.metallb.addresses[0]", "runs backwards", None),
    ("lb-pools-overlap", "addresses: [10.10.0.200-10.10.0.220]", "addresses: [10.10.0.200-10.10.0.220, 10.10.0.210/28]", "clusters[0].addons.metallb.addresses[1]", "overlaps pool 10.10.0.200-10.10.0.220", None),
    ("pod-cidr-overlaps-vcn", "    arch: arm64\n", "    arch: arm64\n    network:\n      pod_cidr: 10.0.0.0/16\n", "clusters[0].network.pod_cidr", "overlaps the VCN", "pod_cidr: 10.0.0.0/16"),
    ("service-cidr-too-large", "    arch: arm64\n", "    arch: arm64\n    network:\n      service_cidr: 100.64.0.0/10\n", "clusters[0].network.service_cidr", "larger than kube-apiserver accepts", "service_cidr: 100.64.0.0/10"),
    ("lxc-on-node-address", "services: []\n", "services:\n  - kind: infisical\n    name: inf\n    node: pve2\n    vmid: 300\n    memory_gb: 1\n    ip: 10.10.0.12/24\n    admin_email: a@example.com\n    organization: x\n", "services[0].ip", "already used by node cp-2", "ip: 10.10.0.12/24\n    admin"),
    ("subnet-ipv6", "subnet_cidr: 10.0.1.0/24", "subnet_cidr: fd00::/64", "cloud.oci.network.subnet_cidr", "not inside the VCN", None),
    ("vm-more-vcpus-than-host", *w1(cores="2"), "clusters[0].workers[0].cores", "Proxmox VE would not start this VM", "cores: 2"),
    ("vcn-too-large", "vcn_cidr: 10.0.0.0/16", "vcn_cidr: 10.0.0.0/8", "cloud.oci.network.vcn_cidr", "/16 to /30", None),
]


def line_of(text: str, anchor: str) -> int:
    if anchor.endswith("\nEND"):  # anchor at the last occurrence
        idx = text.rindex(anchor[:-4])
    else:
        idx = text.index(anchor)
    return text[:idx].count("\n") + 1 + anchor[: len(anchor) - len(anchor.lstrip("\n"))].count("\n")


def main() -> None:
    out_dir = HERE / "invalid"
    for old in out_dir.glob("*.yaml"):
        old.unlink()
    for number, (slug, old, new, path, fragment, anchor) in enumerate(CASES, start=1):
        assert old in BASE, slug
        body = BASE.replace(old, new, 1)
        anchor = anchor or next(row for row in new.splitlines() if row not in old.splitlines()).strip()
        try:
            line = line_of(body, anchor) + 3  # the three header lines below
        except ValueError:
            raise SystemExit(f"{slug}: anchor {anchor!r} not in the mutated text") from None
        text = f"# expect-line: {line}\n# expect-path: {path}\n# expect-message: {fragment}\n" + body
        (out_dir / f"{number:02d}-{slug}.yaml").write_text(text)
    print(f"wrote {len(CASES)} fixtures")


if __name__ == "__main__":
    main()
