"""A TCP server like ser2net's raw mode: every connected client gets every telegram."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
import logging

from .faults import Faults
from .meter import Meter
from .server import BaseServer

__all__ = ["TcpServer"]

_LOGGER = logging.getLogger(__name__)


class _Client(asyncio.Protocol):
    """One connected reader; what it sends is ignored (a meter does not listen)."""

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._clients.add(transport)
        self.server._clients_changed()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._clients.discard(self.transport)
            self.server._clients_changed()


class TcpServer(BaseServer):
    """Serves telegrams on ``host:port``; ``port=0`` binds an ephemeral port (see :attr:`port`).

    The bound port is kept across :meth:`stop` / :meth:`start`, so a restart listens on the
    same port again. A client that does not read loses data once ``max_buffer`` bytes are
    queued for it, as on a real line.
    """

    def __init__(
        self,
        meter: Meter,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        interval: float | None = None,
        step_seconds: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], datetime] | None = None,
        max_buffer: int = 65536,
    ) -> None:
        """Configure the server; :meth:`start` binds the socket."""
        super().__init__(
            meter, interval=interval, step_seconds=step_seconds, faults=faults, clock=clock
        )
        self.host = host
        self.port = port
        self.max_buffer = max_buffer
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Transport] = set()
        self._clients_event = asyncio.Event()
        self._skip: set[asyncio.Transport] = set()

    @property
    def url(self) -> str:
        """The serialx / dsmr_parser URL of this server, ``socket://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"socket://{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """Same as :attr:`url`."""
        return self.url

    @property
    def client_count(self) -> int:
        """Number of connected clients."""
        return len(self._clients)

    def _clients_changed(self) -> None:
        self._clients_event.set()

    async def wait_for_clients(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until exactly ``count`` clients are connected (0 waits for all to leave)."""
        async with asyncio.timeout(timeout):
            while len(self._clients) != count:
                self._clients_event.clear()
                await self._clients_event.wait()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Client(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        _LOGGER.debug("dsmr_sim listening on %s:%s", self.host, self.port)

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._disconnect()
        if server is not None:
            await server.wait_closed()
        await self._settle()

    def _disconnect(self) -> list[asyncio.Transport]:
        """Close every client: gracefully, or abruptly when unsent data would hold it open."""
        clients = list(self._clients)
        for transport in clients:
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
        return clients

    async def _settle(self) -> None:
        """Let ``connection_lost`` callbacks of closed transports run."""
        for _ in range(10):
            if not self._clients:
                return
            await asyncio.sleep(0)

    def _can_write(self) -> bool:
        return self._server is not None

    def _write(self, data: bytes, *, first: bool) -> None:
        if first:  # a reader that does not read loses whole telegrams, as on a real line
            self._skip = {t for t in self._clients if t.get_write_buffer_size() > self.max_buffer}
        for transport in list(self._clients):
            if not transport.is_closing() and transport not in self._skip:
                transport.write(data)

    async def drop_clients(self) -> int:
        """Close every client connection (the server keeps listening); return how many."""
        clients = self._disconnect()
        await self._settle()
        return len(clients)

    async def _drop(self) -> None:
        await self.drop_clients()
