"""A byte relay between a client and the server behind it (the Talos node and network stand-ins)."""

from __future__ import annotations

import asyncio
import contextlib


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    """Copy both ways between a client and the server behind it until each side ends, then close
    both; a side that breaks just ends its direction (a stand-in relay, not a checked transport)."""

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        with contextlib.suppress(Exception):
            w.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
