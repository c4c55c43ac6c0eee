"""The OCI module and its twin, read with python-hcl2: contract with the Python side, safety rules."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import hcl2
import pytest
from hcl_module import conforms, load_blocks, outputs, resources, variables
from platform_fixture import SSH_KEY, platform

from tierzero.adapters.tofu_workspace import layer_files, layer_module_dir, stage_layer
from tierzero.freetier.limits import limits_on
from tierzero.render.tofu_vars import CLOUD_OUTPUTS, tfvars_for

OCI = layer_module_dir("oci")
_STAGED = tempfile.TemporaryDirectory(prefix="tierzero-twin-")  # removed when the test process ends
TWIN = Path(_STAGED.name)
stage_layer("oci_twin", TWIN)  # the twin as tofu sees it: its own files and the ones it shares with oci
ADMIN_PORTS = {22, 6443, 50000}


@pytest.mark.parametrize("module", [OCI, TWIN], ids=["oci", "twin"])
def test_every_file_parses(module: Path) -> None:
    files = sorted(module.glob("*.tf"))
    assert len(files) >= 4
    for path in files:
        with path.open() as handle:
            assert hcl2.load(handle), path.name


def test_twin_has_the_same_variables_and_outputs() -> None:
    real, twin = variables(OCI), variables(TWIN)
    assert sorted(real) == sorted(twin)
    for name in real:
        assert real[name].type == twin[name].type, name
        assert real[name].has_default == twin[name].has_default, name
    assert outputs(OCI) == outputs(TWIN)


def test_the_twin_stages_the_one_copy_of_the_shared_files() -> None:
    packaged = layer_module_dir("oci_twin")
    shared = {name: path for name, path in layer_files("oci_twin").items() if path.parent != packaged}
    assert sorted(shared) == ["limits.tf", "variables.tf"]
    for name, path in shared.items():
        assert not (packaged / name).exists() and path == OCI / name  # no copy in the twin's directory
        assert (TWIN / name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("module", [OCI, TWIN], ids=["oci", "twin"])
def test_every_tfvars_key_is_a_declared_variable_of_compatible_type(module: Path) -> None:
    declared = variables(module)
    values = tfvars_for(platform(), ssh_public_key=SSH_KEY, limits=limits_on())
    unknown = sorted(set(values) - set(declared))
    assert not unknown, f"tfvars_for writes undeclared variables {unknown}"
    for name, value in values.items():
        if value is None:
            assert declared[name].nullable_default, f"{name} is null but has no null default"
        assert conforms(value, declared[name].type, name) == []
    required = {n for n, v in declared.items() if not v.has_default}
    assert required <= set(values), f"required variables never written: {sorted(required - set(values))}"


@pytest.mark.parametrize("module", [OCI, TWIN], ids=["oci", "twin"])
def test_every_output_python_reads_is_declared(module: Path) -> None:
    assert set(CLOUD_OUTPUTS) <= outputs(module)


def _ports(rule: dict) -> set[int]:
    tcp = (rule.get("tcp_options") or [{}])[0]
    if not tcp:
        return set(range(0, 65536)) if rule.get("protocol") in ('"all"', '"6"') else set()
    low, high = tcp.get("min"), tcp.get("max")
    if isinstance(low, int) and isinstance(high, int):
        return set(range(low, high + 1))
    return {-1}  # computed: checked through its for_each source below


def _locals(module: Path) -> dict:
    found: dict = {}
    for block in load_blocks(module)["locals"]:
        found.update(block)
    return found


def test_admin_ports_are_never_open_to_the_world() -> None:
    security_list = resources(OCI)["oci_core_security_list.this"]
    for rule in security_list["ingress_security_rules"]:
        if rule["source"] in ('"0.0.0.0/0"', '"::/0"'):
            assert not (_ports(rule) & ADMIN_PORTS), rule

    dynamic = [body for item in security_list["dynamic"] for body in item.values()]
    admin = [b for b in dynamic if "local.admin_rules" in b["for_each"]]
    world = [b for b in dynamic if b["content"][0]["source"] in ('"0.0.0.0/0"', '"::/0"')]
    # Admin ports are only ever opened to the CIDRs of var.admin_cidrs ...
    assert len(admin) == 1 and admin[0]["content"][0]["source"] == "${ingress_security_rules.value.cidr}"
    local = _locals(OCI)
    assert set(local["admin_ports"]) == ADMIN_PORTS
    assert "setproduct(var.admin_cidrs, local.admin_ports)" in local["admin_rules"]
    # ... and the rules open to the world iterate only over HTTP ports or ICMP types.
    assert {b["for_each"] for b in world} == {"${local.http_ports}", "${var.allow_icmp ? [8] : []}"}
    assert local["http_ports"] == "${var.allow_http ? [80, 443] : []}"
    # The variable itself refuses /0 (exercised for real against the twin in test_twin_e2e).
    validations = str(load_blocks(OCI)["variable"])
    assert "0.0.0.0/0 or ::/0" in validations


@pytest.mark.parametrize("address", ["oci_core_instance.a1", "oci_core_instance.talos", "oci_core_instance.micro"])
def test_instances_ignore_image_and_metadata_changes(address: str) -> None:
    body = resources(OCI)[address]
    assert "var." in body["for_each"]  # over a map by name: adding one never renumbers the others
    ignored = body["lifecycle"][0]["ignore_changes"]
    assert {"source_details", "metadata"} <= set(ignored)
    assert body["instance_options"][0]["are_legacy_imds_endpoints_disabled"] is True  # IMDSv2 only


def test_talos_instances_take_their_machine_config_as_user_data_and_the_a1_hosts_skip_them() -> None:
    found = resources(OCI)
    talos = found["oci_core_instance.talos"]
    assert talos["metadata"] == {"user_data": '${lookup(var.talos_user_data, each.key, "")}'}  # no SSH key: Talos has no SSH
    assert talos["source_details"][0]["source_id"] == "${each.value.image_id}"
    assert talos["create_vnic_details"][0]["private_ip"] == "${each.value.private_ip}"
    assert talos["launch_options"][0]["network_type"] == '"PARAVIRTUALIZED"'
    assert "!contains(keys(var.talos_nodes), n)" in found["oci_core_instance.a1"]["for_each"]
    declared = {name.strip('"'): body for item in load_blocks(OCI)["variable"] for name, body in item.items()}
    assert declared["talos_user_data"]["sensitive"] is True  # never shown in a plan or a log


def test_one_network_load_balancer_fronts_kubernetes_and_talos_with_the_health_checks_talos_documents() -> None:
    found = resources(OCI)
    listeners = {found[f"oci_network_load_balancer_listener.{n}"]["port"] for n in ("kubernetes", "talos")}
    assert listeners == {6443, 50000}
    kube = found["oci_network_load_balancer_backend_set.kubernetes"]["health_checker"][0]
    assert (kube["protocol"], kube["port"], kube["url_path"], kube["return_code"]) == ('"HTTPS"', 6443, '"/readyz"', 401)
    talos = found["oci_network_load_balancer_backend_set.talos"]["health_checker"][0]
    assert (talos["protocol"], talos["port"]) == ('"TCP"', 50000)
    nlb = found["oci_network_load_balancer_network_load_balancer.talos"]
    assert nlb["for_each"] == "${local.talos_clusters}" and nlb["is_private"] is False


def test_instance_principals_for_the_ccm_and_csi() -> None:
    found = resources(OCI)
    group = found["oci_identity_dynamic_group.talos"]
    assert group["compartment_id"] == "${var.tenancy_ocid}"  # dynamic groups live in the tenancy
    assert "instance.id = '${oci_core_instance.talos[n].id}'" in group["matching_rule"]
    statements = found["oci_identity_policy.talos"]["statements"]
    for verb in ("read instance-family", "use virtual-network-family", "manage load-balancers", "manage volumes", "manage volume-attachments"):
        assert f'"{verb}"' in statements or verb in statements


def test_provider_is_pinned_and_budget_alerts_at_the_first_cent() -> None:
    terraform = load_blocks(OCI)["terraform"][0]
    oci = terraform["required_providers"][0]["oci"]
    assert oci["source"] == '"oracle/oci"' and oci["version"].startswith('"~> 7.')
    found = resources(OCI)
    rule = found["oci_budget_alert_rule.actual_spend"]
    assert rule["type"] == '"ACTUAL"' and rule["threshold_type"] == '"PERCENTAGE"'
    assert found["oci_core_public_ip.reserved"]["lifetime"] == '"RESERVED"'
    declared = {item_name.strip('"'): body for item in load_blocks(OCI)["variable"] for item_name, body in item.items()}
    assert declared["budget_amount"]["default"] == 1
    assert declared["budget_alert_threshold_percent"]["default"] == 1
    assert declared["limit_a1_ocpus"]["default"] == 2 and declared["limit_a1_memory_gb"]["default"] == 12
    assert declared["limit_block_storage_gb"]["default"] == 200 and declared["limit_micro_instances"]["default"] == 2


@pytest.mark.parametrize("module", [OCI, TWIN], ids=["oci", "twin"])
def test_the_real_parser_accepts_the_module_as_formatted(module: Path, tofu_binary) -> None:
    # `fmt -check` parses with the tool's own HCL parser (the OCI provider cannot be downloaded
    # here, so `validate` is only possible for the twin, below).
    proc = subprocess.run([tofu_binary.path, "fmt", "-check", "-no-color", str(module)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_twin_validates(make_runner, tmp_path: Path) -> None:
    workdir = tmp_path / "twin"
    stage_layer("oci_twin", workdir)
    runner = make_runner(workdir=workdir)
    runner.init()
    result = runner.run("validate", ["validate", "-no-color", "-json"], stream=False)
    assert result.ok and json.loads(result.stdout)["valid"] is True


def test_between_hosts_only_the_cluster_ports_are_open() -> None:
    """pve-docs 9.1.3 pve-firewall.adoc "Ports used by Proxmox VE", pvecm.adoc, pvesdn.adoc (VXLAN 4789)."""
    security_list = resources(OCI)["oci_core_security_list.this"]
    sources = {rule["source"] for rule in security_list["ingress_security_rules"]}
    assert '"${var.vcn_cidr}"' not in sources and "${var.vcn_cidr}" not in sources  # no "all protocols" inside the VCN
    assert not [r for r in security_list["ingress_security_rules"] if r.get("protocol") == '"all"']
    dynamic = [body for item in security_list["dynamic"] for body in item.values()]
    hosts = [b for b in dynamic if b["for_each"] == "${local.host_rules}"]
    assert len(hosts) == 1 and hosts[0]["content"][0]["source"] == "${var.subnet_cidr}"
    import re

    text = (OCI / "network.tf").read_text()
    found = {(p, int(lo), int(hi)) for p, lo, hi in re.findall(r'\{ protocol = "(\d+)", min = (\d+), max = (\d+) \}', text)}
    always = {("6", 22, 22), ("6", 8006, 8006), ("6", 5403, 5403), ("17", 5405, 5412), ("17", 4789, 4789)}
    ceph = {("6", 3300, 3300), ("6", 6789, 6789), ("6", 6800, 7300)}
    assert found == always | ceph
    assert "var.ceph_between_hosts ? [" in str(_locals(OCI)["host_rules"])


def test_the_vm_network_has_a_route_rule_to_a_host_that_skips_the_source_dest_check() -> None:
    """OCI Networking docs, "Using a Private IP as a Route Target": the rule names the private IP's OCID and the
    target's VNIC skips the source/destination check; the security list admits the VM ports from the subnet only."""
    found = resources(OCI)
    vnic = found["oci_core_instance.a1"]["create_vnic_details"][0]
    assert vnic["skip_source_dest_check"] == "${local.vm_router == each.key}"
    table = found["oci_core_route_table.vm"]
    rules = {r["destination"]: r["network_entity_id"] for r in table["route_rules"]}
    assert rules == {'"0.0.0.0/0"': "${oci_core_internet_gateway.this.id}",
                     "${var.vm_network.cidr}": "${data.oci_core_private_ips.vm_router[0].private_ips[0].id}"}
    conditions = [p["condition"] for p in table["lifecycle"][0]["precondition"]]
    assert "${oci_core_instance.a1[local.vm_router].create_vnic_details[0].skip_source_dest_check == true}" in conditions
    attach = found["oci_core_route_table_attachment.vm"]
    assert attach["route_table_id"] == "${oci_core_route_table.vm[0].id}" and attach["subnet_id"] == "${oci_core_subnet.this.id}"
    assert found["oci_core_subnet.this"]["lifecycle"][0]["ignore_changes"] == ["route_table_id"]
    dynamic = [body for item in found["oci_core_security_list.this"]["dynamic"] for body in item.values()]
    (vm,) = [b for b in dynamic if b["for_each"] == "${local.vm_ports}"]
    assert vm["content"][0]["source"] == "${var.subnet_cidr}" and vm["content"][0]["protocol"] == '"6"'


def test_the_vm_network_variable_follows_the_spec() -> None:
    from spec_builder import build_spec

    from tierzero.render.tofu_vars import vm_network

    assert vm_network(build_spec("oci-free-tier")) == {"cidr": "10.10.0.0/24", "via_instance": "a1-1", "ports": [6443, 8080, 50000]}
    assert vm_network(build_spec("oci-free-tier", {"services": []}))["ports"] == [6443, 50000]
    assert vm_network(build_spec("oci-talos")) is None  # Talos on the instances: no VM network behind them
