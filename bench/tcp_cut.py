"""A TCP forwarder that can cut every connection and refuse new ones for a while.

    async with TcpCut("127.0.0.1", upstream_port) as cut:
        url = f"ws://127.0.0.1:{cut.port}/stream"
        await cut.outage(60)  # abort open connections, refuse connects for 60 s, then accept

While cut, the listening socket is closed (connects fail with ECONNREFUSED) and every forwarded
connection is aborted on both sides (the client sees a reset, no close frame). Afterwards it
listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpCut:
    """An asyncio TCP proxy to ``(host, port)`` with an on/off switch."""

    def __init__(self, host: str, port: int, *, listen_host: str = "127.0.0.1") -> None:
        self._upstream = (host, port)
        self._listen_host = listen_host
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.WriteTransport] = set()
        #: The port it listens on (chosen when first started, kept across outages).
        self.port = 0
        #: Connections accepted in total.
        self.connections = 0
        #: Connections aborted by cuts.
        self.aborted = 0

    async def __aenter__(self) -> TcpCut:
        await self.restore()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cut()
        for task in tuple(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    @property
    def is_cut(self) -> bool:
        """True while refusing connections."""
        return self._server is None

    async def restore(self) -> None:
        """Listen (again, on the same port) and forward new connections."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self._listen_host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        """Stop listening and abort every forwarded connection (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for transport in tuple(self._transports):
            transport.abort()
            self.aborted += 1
        self._transports.clear()

    async def outage(self, seconds: float) -> None:
        """Cut, stay cut for ``seconds``, restore."""
        await self.cut()
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.restore()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                writer.transport.abort()
                return
            pair = (writer.transport, up_writer.transport)
            self._transports.update(pair)
            try:
                async with asyncio.TaskGroup() as pumps:
                    pumps.create_task(_pump(reader, up_writer))
                    pumps.create_task(_pump(up_reader, writer))
            finally:
                for transport in pair:
                    self._transports.discard(transport)
                    transport.abort()
        finally:
            self._handlers.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF or an error, then half-close ``writer``."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
