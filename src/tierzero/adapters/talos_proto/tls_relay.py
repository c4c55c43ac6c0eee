"""TLS for the Talos API done by Python's `ssl` (OpenSSL) instead of gRPC's own TLS stack.

Why: gRPC's bundled BoringSSL neither skips server verification (needed for maintenance
mode, like `talosctl --insecure`) nor negotiates Ed25519 signatures, and Talos' OS CA and
admin client certificates are Ed25519 by default. So the gRPC channel speaks plaintext
HTTP/2 to a relay on 127.0.0.1 and the relay opens one TLS connection (ALPN h2) to the
node per incoming connection, piping bytes both ways. An unreachable node or a failed
handshake closes the incoming connection, which gRPC reports as UNAVAILABLE; the relay
keeps the reason so the caller can say what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from typing import Callable


def normalize_key_pem(key_pem: bytes) -> bytes:
    """Talos labels PKCS#8 Ed25519 keys "ED25519 PRIVATE KEY"; OpenSSL wants "PRIVATE KEY"."""
    return key_pem.replace(b"ED25519 PRIVATE KEY", b"PRIVATE KEY")


def load_cert_chain(ctx: ssl.SSLContext, crt_pem: bytes, key_pem: bytes) -> None:
    """`SSLContext.load_cert_chain` reads files only: write both to a private temp dir briefly."""
    with tempfile.TemporaryDirectory(prefix="tierzero-tls-") as tmp:
        crt_path, key_path = os.path.join(tmp, "crt.pem"), os.path.join(tmp, "key.pem")
        for path, data in ((crt_path, crt_pem), (key_path, normalize_key_pem(key_pem))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(crt_path, key_path)


def client_context(ca_pem: bytes | None = None, crt_pem: bytes | None = None, key_pem: bytes | None = None) -> ssl.SSLContext:
    """No CA: maintenance mode (no verification, no client certificate). With a CA: verify the
    node against it and present the client certificate (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    if ca_pem is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.load_verify_locations(cadata=ca_pem.decode())
    if crt_pem and key_pem:
        load_cert_chain(ctx, crt_pem, key_pem)
    return ctx


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_error: Callable[[str | None], None], *, expect_data: bool = False
) -> None:
    """Copy until EOF. With `expect_data`, an EOF before any byte is reported: a gRPC server
    speaks first (HTTP/2 SETTINGS), so silence then means the node dropped us after the
    handshake, which is how TLS 1.3 servers reject a client certificate."""
    got_data = False
    try:
        while data := await reader.read(65536):
            if expect_data and not got_data:
                on_error(None)
            got_data = True
            writer.write(data)
            await writer.drain()
        if expect_data and not got_data:
            on_error("the node closed the connection right after the TLS handshake (client certificate rejected?)")
    except ssl.SSLError as err:
        on_error(f"TLS: {err.reason or err}")
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class TLSRelay:
    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext, *, server_name: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.server_name = server_name
        self.connect_timeout = connect_timeout
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._last_error: tuple[str, bool] | None = None  # (message, is_tls)

    def last_failure(self) -> tuple[str, bool] | None:
        """Why the latest upstream connection failed, and whether it was TLS; None once a
        connection has carried data again."""
        return self._last_error

    def _record(self, message: str | None, is_tls: bool = False) -> None:
        self._last_error = None if message is None else (message, is_tls)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self.host, self.port, ssl=self.ssl_context, server_hostname=self.server_name or self.host
                    ),
                    self.connect_timeout,
                )
            except ssl.SSLError as err:
                self._record(f"TLS handshake: {err}", True)
                return
            except (OSError, asyncio.TimeoutError) as err:
                self._record(f"connect to {self.host}:{self.port}: {err or 'timed out'}", False)
                return
            self._writers.add(up_writer)
            await asyncio.gather(
                _pipe(reader, up_writer, lambda m: None),
                _pipe(up_reader, writer, lambda m: self._record(m, True), expect_data=True),
            )
            self._writers.discard(up_writer)
        except asyncio.CancelledError:
            # Only `close()` cancels handlers: end quietly, since asyncio's stream callback
            # reports a cancelled connection task as an error.
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._writers.discard(writer)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.close()
        # Connections still piping would otherwise be left pending when the loop closes.
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = None
