"""The stack step over real SSH: the sandbox's stand-in Proxmox hosts answer `pct exec` with the
Infisical ContainerStandIn, so the `.env` really travels on stdin through asyncssh."""

from __future__ import annotations

from tierzero.phases import services as phase
from tierzero.phases.hosts import host_ssh as real_host_ssh
from tierzero.sandbox.infisical import ContainerStandIn
from tierzero.sandbox.pve_hosts import hosts_for_spec, start_pve_hosts
from tierzero.workspace.keys import create_ssh_keypair


async def test_stack_and_bootstrap_over_ssh(harness, standin, monkeypatch):
    monkeypatch.setattr(phase, "host_ssh", real_host_ssh)  # the real node SSH client
    create_ssh_keypair(harness.workspace)
    nodes, witnesses = hosts_for_spec(harness.spec)
    hosts = start_pve_hosts(nodes, harness.workspace.ssh_public_key, witnesses=witnesses)
    containers = ContainerStandIn()
    hosts._cmd_pct = lambda host, args, stdin: containers.pct(args, stdin)  # type: ignore[attr-defined]
    try:
        hosts.connections(harness.connections)
        harness.outputs["services/lxc/infisical"] = {"address": "192.168.10.30"}
        by_id = {s.id: s for s in phase.steps(harness.spec)}
        await harness.run(by_id["services/stack/infisical"])
        await harness.run(by_id["services/bootstrap/infisical"])
    finally:
        from tierzero.adapters.ssh import close_all

        await close_all(harness.connections)
        hosts.stop()

    mode, env = containers.files[(300, "/opt/tierzero/infisical/.env")]
    assert mode == "0600"
    assert f"ENCRYPTION_KEY={harness.secrets.values['infisical/infisical/encryption-key']}\n" in env
    assert containers.docker_present
    sent = "\n".join(cmd for _, cmd in hosts.commands)
    assert "pct exec 300" in sent
    for name, value in harness.secrets.values.items():
        assert value not in sent, name
    logs = repr(harness.events)
    assert "pct exec 300" in logs  # the SSH client reports every command it sends, as the step's
    for name, value in harness.secrets.values.items():
        if not name.endswith("client-id"):
            assert value not in logs, name
    assert harness.outputs["services/bootstrap/infisical"]["result"] == "bootstrapped"
