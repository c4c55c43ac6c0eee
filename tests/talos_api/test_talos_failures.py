"""Failure handling: wrong certificates, a node down while rebooting, permanent errors."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.talos import TalosClient, TalosTLSError, TalosUnavailable
from tierzero.errors import OperationError


@pytest.fixture
async def configured(pki, start, connections):
    node = await start("10.10.1.11", hostname="cp1")
    async with TalosClient.maintenance("10.10.1.11", connections=connections) as insecure:
        await insecure.apply_configuration(pki.machine_config("controlplane"))
    async with TalosClient.authenticated("10.10.1.11", pki.talosconfig(["10.10.1.11"]), connections=connections) as c:
        await c.wait_ready(10)
    return node


async def test_client_certificate_from_another_cluster_is_rejected(configured, connections, make_pki) -> None:
    other = make_pki("other")
    # trusts the node (right CA) but presents an admin certificate the node's OS CA never signed
    pki_mixed = replace(other, ca_crt=configured.config.os_ca_crt)
    started = time.monotonic()
    talosconfig = pki_mixed.talosconfig(["10.10.1.11"])
    async with TalosClient.authenticated("10.10.1.11", talosconfig, connections=connections, call_timeout=120) as c:
        with pytest.raises(TalosTLSError) as err:
            await c.version()
    assert time.monotonic() - started < 60, "the rejection is reported as it happens, not waited out until the call timeout"
    assert "TLS" in err.value.message and "10.10.1.11" in err.value.message
    assert "talosconfig" in (err.value.hint or "")


async def test_node_certificate_not_signed_by_the_talosconfig_ca_is_rejected(configured, connections, make_pki) -> None:
    other = make_pki("other")
    async with TalosClient.authenticated("10.10.1.11", other.talosconfig(["10.10.1.11"]), connections=connections) as c:
        with pytest.raises(TalosTLSError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await c.version()


async def test_wait_ready_retries_through_unavailable_until_up(pki, configured, connections) -> None:
    configured.down_calls = 3
    causes: list[str] = []
    async with TalosClient.authenticated("10.10.1.11", pki.talosconfig(["10.10.1.11"]), connections=connections) as c:
        version = await c.wait_ready(10, on_retry=lambda attempt, cause, delay: causes.append(cause))
        assert version.hostname == "cp1"
        assert len(causes) == 3 and all("UNAVAILABLE" in cause for cause in causes)

        await c.reboot()
        await c.wait_ready(10)
    assert configured.calls.count("Reboot") == 1


async def test_wait_ready_gives_up_at_the_deadline(pki, configured, connections) -> None:
    configured.down_calls = 10_000
    async with TalosClient.authenticated("10.10.1.11", pki.talosconfig(["10.10.1.11"]), connections=connections) as c:
        started = time.monotonic()
        with pytest.raises(TalosUnavailable, match="not ready after 0.7s") as err:
            await c.wait_ready(0.7)
        # Never before the deadline; after it by at most one call (the client's per-call timeout).
        assert 0.7 <= time.monotonic() - started < 0.7 + c.call_timeout
        assert err.value.hint


async def test_rejected_configuration_stops_fast(pki, start, connections) -> None:
    node = await start("10.10.1.21")
    node.reject_apply = "unknown keys found during decoding: machine.bogus"
    async with TalosClient.maintenance("10.10.1.21", connections=connections) as insecure:
        with pytest.raises(OperationError) as err:
            await insecure.retrying(lambda: insecure.apply_configuration(pki.machine_config()), timeout=30)
    assert not isinstance(err.value, TalosUnavailable)
    assert "INVALID_ARGUMENT" in err.value.message and "machine.bogus" in err.value.message
    assert "validate" in (err.value.hint or "")
    assert node.calls.count("ApplyConfiguration") == 1


async def test_malformed_configuration_is_invalid_argument(start, connections) -> None:
    await start("10.10.1.22")
    async with TalosClient.maintenance("10.10.1.22", connections=connections) as insecure:
        with pytest.raises(OperationError, match="INVALID_ARGUMENT.*machine type"):
            await insecure.apply_configuration(b"version: v1alpha1\nmachine: {type: toaster}\n")


async def test_unreachable_node_is_unavailable_not_tls(connections) -> None:
    connections.add("talos", "10.10.1.99", Endpoint("127.0.0.1", 9))  # nothing listens on discard
    async with TalosClient.maintenance("10.10.1.99", connections=connections, call_timeout=3) as insecure:
        with pytest.raises(TalosUnavailable) as err:
            await insecure.version()
    assert not isinstance(err.value, TalosTLSError)
    assert "127.0.0.1:9" in err.value.message


async def test_a_node_slow_to_answer_the_handshake_is_waited_for(start, connections) -> None:
    """A distant node (or a busy machine) takes longer than 0.2 s for TCP + TLS + HTTP/2 SETTINGS;
    the client must wait for it like talosctl does (gRPC's 20 s minimum connect timeout), not fail
    with "connection attempt timed out before receiving SETTINGS frame"."""
    import asyncio

    node = await start("10.10.1.21", hostname="far", version="v1.13.9")  # answers Version in maintenance mode
    direct = connections.endpoint("talos", "10.10.1.21")
    lag = 0.6  # seconds before the node's first bytes reach us

    async def slow_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(direct.host, direct.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
            first = True
            while data := await src.read(65536):
                if first and delay:
                    await asyncio.sleep(delay)  # the latency under test, not a wait for an event
                first = False
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, 0.0), pipe(up_reader, writer, lag), return_exceptions=True)

    link = await asyncio.start_server(slow_link, "127.0.0.1", 0)
    connections.add("talos", "10.10.1.21", replace(direct, port=link.sockets[0].getsockname()[1]))
    try:
        started = time.monotonic()
        async with TalosClient.maintenance("10.10.1.21", connections=connections) as client:
            version = await client.version()
        assert version.hostname == "far" and time.monotonic() - started >= lag
    finally:
        link.close()
    assert node.calls == ["Version"]
