"""The Talos stand-in's etcd snapshots and recovery, over real gRPC and TLS: EtcdSnapshot only on a
control plane running etcd; EtcdRecover then Bootstrap{recover_etcd} brings the snapshot's keys
back; a missing, broken or hashless snapshot fails the etcd service after the RPC answered, as
Talos v1.12.11 and etcd's restore do (rules in `tierzero.sandbox.talos.etcd`)."""

from __future__ import annotations

import pytest

from tierzero.adapters.talos import TalosClient
from tierzero.errors import OperationError
from tierzero.sandbox.talos import etcd
from tierzero.sandbox.talos.etcd import SnapshotError


def test_snapshot_format_and_restore_rules() -> None:
    data = etcd.snapshot({"/b": "2", "/a": "1"}, 7)
    assert etcd.restore(data) == ({"/a": "1", "/b": "2"}, 7)
    with pytest.raises(SnapshotError, match="snapshot missing hash but --skip-hash-check=false"):
        etcd.restore(data[:-32])
    assert etcd.restore(data[:-32], skip_hash_check=True)[0] == {"/a": "1", "/b": "2"}  # a copied data directory
    with pytest.raises(SnapshotError, match="error verifying snapshot: invalid database"):
        etcd.restore(b"not a database at all, but long enough to carry a hash......")
    with pytest.raises(SnapshotError, match="no such file or directory"):
        etcd.restore(None)


def _client(pki, connections, address: str) -> TalosClient:
    return TalosClient.authenticated(address, pki.talosconfig([address]), connections=connections)


async def _configured(start, connections, pki, address: str, machine_type: str, hostname: str):
    node = await start(address, hostname=hostname)
    async with TalosClient.maintenance(address, connections=connections) as insecure:
        await insecure.apply_configuration(pki.machine_config(machine_type, hostname=hostname))
    await node.settled()
    return node


async def test_snapshot_then_recovery_on_a_fresh_control_plane(start, connections, pki, registry) -> None:
    await _configured(start, connections, pki, "10.10.2.11", "controlplane", "cp1")
    await _configured(start, connections, pki, "10.10.2.21", "worker", "w1")
    async with _client(pki, connections, "10.10.2.11") as client:
        with pytest.raises(OperationError, match="UNKNOWN: failed to create etcd client"):
            await client.etcd_snapshot()  # etcd not bootstrapped yet: nothing runs locally
        await client.bootstrap()
        registry.clusters["alpha"].etcd_put("/registry/namespaces/apps", "{}")
        data = await client.etcd_snapshot()
    assert etcd.restore(data) == ({"/registry/namespaces/apps": "{}"}, 1)
    async with _client(pki, connections, "10.10.2.21") as worker:
        with pytest.raises(OperationError, match="UNIMPLEMENTED: etcd snapshot is only available on control plane nodes"):
            await worker.etcd_snapshot()
        with pytest.raises(OperationError, match="UNIMPLEMENTED: etcd recover is only available on control plane nodes"):
            await worker.etcd_recover(data)

    # alpha loses its etcd (as when every control plane is reset); a new control plane recovers it
    await _configured(start, connections, pki, "10.10.2.31", "controlplane", "cp1-new")
    registry.clusters["alpha"].bootstrapped = False  # as if alpha's control planes had all been reset
    registry.clusters["alpha"].etcd.clear()
    for node in registry.clusters["alpha"].nodes.values():
        node.in_etcd = False
    async with _client(pki, connections, "10.10.2.31") as fresh:
        assert await fresh.bootstrap(recover_etcd=True) is True  # nothing uploaded: the RPC answers, etcd fails
        etcd_service = next(s for s in await fresh.services() if s.id == "etcd")
        assert (etcd_service.state, etcd_service.message) == ("Failed", "error verifying snapshot: stat /var/lib/etcd.snapshot: no such file or directory")
        await fresh.etcd_recover(data[:-32])  # without its hash
        await fresh.bootstrap(recover_etcd=True)
        assert "missing hash" in next(s for s in await fresh.services() if s.id == "etcd").message
        await fresh.etcd_recover(data)
        assert await fresh.bootstrap(recover_etcd=True) is True
        assert next(s for s in await fresh.services() if s.id == "etcd").state == "Running"
        assert {m.hostname for m in await fresh.etcd_members()} == {"cp1", "cp1-new"}
        assert await fresh.bootstrap(recover_etcd=True) is False  # the data directory is not empty now
    assert registry.clusters["alpha"].etcd == {"/registry/namespaces/apps": "{}"}
