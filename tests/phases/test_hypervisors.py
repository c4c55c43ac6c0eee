from __future__ import annotations

import pytest

from tierzero.adapters.proxmox import TOKEN_SECRET_NAME
from tierzero.adapters.retry import Policy
from tierzero.engine.runner import StepFailed
from tierzero.phases import hypervisors
from tierzero.sandbox.pve_hosts.commands import failing_repositories

from .conftest import blueprint


def oci_spec() -> dict:
    return blueprint("oci-free-tier.yaml")


def onprem_spec(ceph: bool = True) -> dict:
    data = blueprint("proxmox.yaml")
    data["hypervisors"]["proxmox"]["ceph"]["enabled"] = ceph
    return data


def witness_by_address(data: dict) -> dict:
    """The witness given by its address: its SSH endpoint comes from the spec (the cloud phase,
    which would publish a cloud witness's address, does not run in these tests)."""
    data["hypervisors"]["proxmox"]["qdevice"] = {"host": "10.99.0.250"}
    return data


async def test_a_cloud_witness_without_the_cloud_phase_names_the_fix(make_sandbox):
    box = make_sandbox(oci_spec(), kvm=False)
    with pytest.raises(StepFailed) as err:
        await box.run(hypervisors.steps(box.spec))
    assert err.value.step_id == "hypervisors/qdevice"
    assert "no address is known for the QDevice witness 'bastion'" in err.value.message and "cloud phase" in (err.value.hint or "")
    assert not [c for _, c in box.hosts.commands if c.startswith("pvecm qdevice")]


async def test_two_hosts_with_qdevice(make_sandbox):
    box = make_sandbox(witness_by_address(oci_spec()), kvm=False)
    await box.run(hypervisors.steps(box.spec))
    summary = box.state.get("hypervisors/summary").outputs
    assert summary["members"] == ["pve1", "pve2"]
    assert summary["quorate"] is True and summary["qdevice"] is True
    assert box.hosts.cluster.qdevice == "10.99.0.250"
    assert "corosync-qnetd" in box.hosts.hosts["10.99.0.250"].packages
    assert box.secrets.get(TOKEN_SECRET_NAME) == box.hosts.cluster.tokens["root@pam!tierzero"]
    assert box.secrets.get(TOKEN_SECRET_NAME) not in repr(box.events)

    # Re-running every step on the finished cluster changes nothing.
    before = len(box.hosts.commands)
    box.forget()
    await box.run(hypervisors.steps(box.spec))
    changing = [c for _, c in box.hosts.commands[before:]
                if c.startswith(("pvecm create", "pvecm add", "pvecm qdevice", "pveum user token add", "apt-get install"))
                or "cat > /etc/apt" in c]
    assert changing == []  # (the package index is refreshed, `apt-get update`, which changes no setting)


async def test_no_kvm_refused_without_consent(make_sandbox):
    data = oci_spec()
    data["hypervisors"]["proxmox"]["allow_software_emulation"] = False
    box = make_sandbox(data, kvm=False)
    with pytest.raises(StepFailed) as err:
        await box.run(hypervisors.steps(box.spec))
    assert "/dev/kvm" in err.value.message and "allow_software_emulation" in (err.value.hint or "")


async def test_onprem_three_hosts_with_ceph(make_sandbox):
    box = make_sandbox(onprem_spec())
    await box.run(hypervisors.steps(box.spec))
    summary = box.state.get("hypervisors/summary").outputs
    assert summary["members"] == ["pve1", "pve2", "pve3"] and summary["qdevice"] is False
    assert summary["ceph_health"] == "HEALTH_OK"
    ceph = box.hosts.cluster.ceph
    assert ceph.mons == ["pve1", "pve2", "pve3"] and len(ceph.osds) == 3 and ceph.pools["tierzero"] == {"size": 3, "min_size": 2}
    before = len(box.hosts.commands)
    box.forget()
    await box.run(hypervisors.steps(box.spec))
    again = [c for _, c in box.hosts.commands[before:] if c.startswith(("pveceph", "pvecm create", "pvecm add", "pveum user token add", "yes |"))]
    assert again == []


async def test_lost_quorum_stops_with_remedy(make_sandbox):
    box = make_sandbox(onprem_spec(ceph=False))
    await box.run(hypervisors.steps(box.spec))
    box.hosts.lose_quorum()
    box.forget()
    with pytest.raises(StepFailed) as err:
        await box.run(hypervisors.steps(box.spec))
    assert err.value.step_id == "hypervisors/quorum"
    assert "not quorate" in err.value.message and "witness" in (err.value.hint or "")


async def test_lost_quorum_recovers_within_deadline(make_sandbox):
    box = make_sandbox(onprem_spec(ceph=False))
    await box.run(hypervisors.steps(box.spec))
    box.hosts.lose_quorum()
    box.forget()
    box.events.clear()
    # Quorum comes back while the step is waiting for it: on its first retry, however long the
    # machine took to get there. The deadline is generous because the heal, not time, ends the wait.
    box.conns.retry.wait = Policy(base=0.01, cap=0.05, deadline=120)
    healed: list[str] = []

    def heal_on_first_retry(kind: str, fields: dict) -> None:
        if kind == "retry" and fields.get("step") == "hypervisors/quorum" and not healed:
            healed.append(fields["step"])
            box.hosts.regain_quorum()

    box.on_event = heal_on_first_retry
    await box.run(hypervisors.steps(box.spec))
    assert healed == ["hypervisors/quorum"], "the step waited for quorum instead of failing or passing at once"
    assert box.state.get("hypervisors/quorum").outputs["quorate"] is True


async def test_node_offline_is_a_clear_stop(make_sandbox):
    box = make_sandbox(onprem_spec(ceph=False))
    box.hosts.set_offline("pve3")
    with pytest.raises(StepFailed) as err:
        await box.run(hypervisors.steps(box.spec))
    assert "pve3" in err.value.step_id and "SSH" in err.value.message


async def test_ceph_warn_is_reported_and_err_stops(make_sandbox):
    box = make_sandbox(onprem_spec())
    box.hosts.set_ceph_health("HEALTH_WARN", {"OSD_NEARFULL": "1 nearfull osd(s)"})
    await box.run(hypervisors.steps(box.spec))
    summary = box.state.get("hypervisors/summary").outputs
    assert summary["ceph_health"] == "HEALTH_WARN" and summary["ceph_reasons"] == ["OSD_NEARFULL: 1 nearfull osd(s)"]

    box.hosts.set_ceph_health("HEALTH_ERR", {"MON_DOWN": "2/3 mons down"}, down=True)
    box.forget()
    with pytest.raises(StepFailed) as err:
        await box.run(hypervisors.steps(box.spec))
    assert err.value.step_id == "hypervisors/ceph/health" or "ceph" in err.value.step_id


async def test_lost_token_secret_is_recreated(make_sandbox):
    box = make_sandbox(onprem_spec(ceph=False))
    steps = hypervisors.steps(box.spec)
    await box.run(steps)
    first = box.secrets.get(TOKEN_SECRET_NAME)
    box.secrets.values.clear()
    box.forget()
    await box.run(steps)
    second = box.secrets.get(TOKEN_SECRET_NAME)
    assert second and second != first and box.hosts.cluster.tokens["root@pam!tierzero"] == second
    assert box.pve.pve.apitokens["root@pam!tierzero"] == second


def test_a_witness_given_by_address_is_reached_there_in_a_real_run() -> None:
    """Real mode, no sandbox route: the endpoint is the spec's address, port and user, as given."""
    from types import SimpleNamespace

    from tierzero.adapters.connections import Connections
    from tierzero.phases.hosts import witness_name
    from tierzero.spec import Platform

    data = witness_by_address(oci_spec())
    data["hypervisors"]["proxmox"]["qdevice"].update(ssh_user="admin", ssh_port=2222)
    ctx = SimpleNamespace(spec=Platform.model_validate(data), connections=Connections(target="real"))
    assert witness_name(ctx) == "10.99.0.250"  # type: ignore[arg-type]
    found = ctx.connections.endpoint("ssh", "10.99.0.250")
    assert (found.host, found.port, found.extra) == ("10.99.0.250", 2222, {"user": "admin", "address": "10.99.0.250"})


def two_onprem_hosts() -> dict:
    """The on-prem starter cut to two fresh Proxmox VE installs (pve1, pve2) and a QDevice witness."""
    data = onprem_spec(ceph=False)
    px = data["hypervisors"]["proxmox"]
    px["nodes"] = px["nodes"][:2]
    px["qdevice"] = {"host": "192.168.10.250"}
    for cluster in data["clusters"]:
        for member in [*cluster.get("control_planes", []), *cluster.get("workers", [])]:
            if member.get("node") not in ("pve1", "pve2"):
                member["node"] = "pve1"
    for service in data.get("services", []):
        if service.get("node") not in ("pve1", "pve2"):
            service["node"] = "pve1"
    return data


async def test_fresh_hosts_switch_to_the_no_subscription_repositories_before_installing(make_sandbox):
    """A fresh PVE enables the enterprise repositories (401 without a subscription, so `apt-get
    update` fails); the hypervisors phase disables them, adds pve-no-subscription, and only then
    installs corosync-qdevice. Sources: tierzero.phases.pve_repos."""
    box = make_sandbox(two_onprem_hosts(), kvm=True)
    pve1 = box.hosts.hosts["pve1"]
    pve1.memory_total = pve1.memory_available = 64 * 1024**3  # pve3's guests moved here
    assert failing_repositories(pve1.files)  # the stand-in starts as a fresh install
    await box.run(hypervisors.steps(box.spec))
    for name in ("pve1", "pve2"):
        files = box.hosts.hosts[name].files
        assert failing_repositories(files) == []
        assert b"Components: pve-no-subscription" in files["/etc/apt/sources.list.d/proxmox.sources"]
        assert b"Enabled: no" in files["/etc/apt/sources.list.d/pve-enterprise.sources"]
        commands = [c for host, c in box.hosts.commands if host == name]
        assert commands.index("apt-get update -q") < commands.index("env DEBIAN_FRONTEND=noninteractive apt-get install -y corosync-qdevice")


async def test_a_host_with_a_subscription_keeps_its_enterprise_repositories(make_sandbox):
    box = make_sandbox(two_onprem_hosts(), kvm=True)
    box.hosts.hosts["pve1"].memory_total = box.hosts.hosts["pve1"].memory_available = 64 * 1024**3  # pve3's guests moved here
    for host in ("pve1", "pve2"):
        box.hosts.hosts[host].subscribed = True
    await box.run(hypervisors.steps(box.spec))
    assert "/etc/apt/sources.list.d/proxmox.sources" not in box.hosts.hosts["pve1"].files
    assert failing_repositories(box.hosts.hosts["pve1"].files)  # still enabled (they work with the key)


async def test_a_port_without_proxmox_enterprise_sources_keeps_its_repositories(make_sandbox):
    """The A1 hosts run a community port (PXVIRT) from a Debian cloud image: no enterprise.proxmox.com
    source to disable, so no pve-no-subscription (which has no arm64 packages) is added either."""
    box = make_sandbox(witness_by_address(oci_spec()), kvm=False)
    await box.run(hypervisors.steps(box.spec))
    for name in ("pve1", "pve2"):
        assert not [p for p in box.hosts.hosts[name].files if p.endswith(("proxmox.sources", "pve-no-subscription.list"))]
        assert box.state.get(f"hypervisors/apt/{name}").outputs["changed"] == []


async def test_the_api_certificate_is_pinned_from_the_cluster_ca_read_over_ssh(make_sandbox, tmp_path):
    from pathlib import Path

    from fakepve.certs import make_cert

    from tierzero.adapters.connections import Connections, Endpoint
    from tierzero.adapters.proxmox import connect
    from tierzero.cli.session import real_connections
    from tierzero.errors import OperationError
    from tierzero.phases.pve_api_ca import pinned_ca_path

    box = make_sandbox(onprem_spec(ceph=False))
    await box.run(hypervisors.steps(box.spec))
    pinned = pinned_ca_path(box.ws.root)
    assert pinned.read_bytes() == Path(box.pve.cafile).read_bytes()  # what the stand-in host's /etc/pve/pve-root-ca.pem holds
    assert box.state.get("hypervisors/api-ca").outputs["path"] == str(pinned)
    # A real run verifies each node's API against that file.
    real = real_connections(box.spec, box.ws)
    assert {real.endpoint("proxmox", n.name).verify for n in box.spec.proxmox.nodes} == {str(pinned)}

    box.pve.pve.add_token("root@pam!t", "s3cret", privsep=0)
    ep = box.conns.endpoint("proxmox", "pve1")

    def conns_verifying(ca: Path) -> Connections:
        conns = Connections(target="sandbox", retry=box.conns.retry)
        conns.add("proxmox", "pve1", Endpoint(ep.host, ep.port, verify=str(ca)))
        return conns

    assert await connect(conns_verifying(pinned), "pve1", "root@pam!t", "s3cret").call("get", "version")
    other, _, _ = make_cert(str(tmp_path), name="impostor")  # a server with another certificate is refused
    with pytest.raises(OperationError):
        await connect(conns_verifying(Path(other)), "pve1", "root@pam!t", "s3cret").call("get", "version")
    with pytest.raises(OperationError, match="no pinned CA"):
        connect(conns_verifying(tmp_path / "missing.pem"), "pve1", "root@pam!t", "s3cret")
