"""A test-side reader: dsmr_parser's own ``create_dsmr_reader`` collecting telegrams in a queue."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["TelegramReader"]


class TelegramReader:
    """Connects ``dsmr_parser.clients.protocol.create_dsmr_reader`` to ``port`` and collects.

    ``port`` is whatever serialx opens: ``socket://127.0.0.1:PORT`` or a tty path. For
    encrypted versions pass ``encryption_key``; ``authentication_key=None`` (the default, as
    Home Assistant does) decrypts without checking the GCM tag.
    """

    def __init__(
        self,
        port: str,
        version: str,
        *,
        encryption_key: str = "",
        authentication_key: str | None = None,
    ) -> None:
        """Configure the reader; :meth:`connect` opens it."""
        self.port = port
        self.version = version
        self.encryption_key = encryption_key
        self.authentication_key = authentication_key
        self.telegrams: list[Any] = []
        self.transport: Any = None
        self.protocol: Any = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def _received(self, telegram: Any) -> None:
        self.telegrams.append(telegram)
        self._queue.put_nowait(telegram)

    async def connect(self) -> TelegramReader:
        """Open the connection (raises what serialx raises when the port is not there)."""
        from dsmr_parser.clients.protocol import create_dsmr_reader

        self.transport, self.protocol = await create_dsmr_reader(
            self.port,
            self.version,
            self._received,
            encryption_key=self.encryption_key,
            authentication_key=self.authentication_key,
        )
        return self

    async def next(self, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Wait for the next parsed telegram (``TimeoutError`` if none arrives in time)."""
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def drain(self) -> list[Any]:
        """Take every telegram received so far and not yet taken."""
        items: list[Any] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    @property
    def closed(self) -> bool:
        """Whether dsmr_parser's protocol saw the connection close (``connection_lost``)."""
        return self.protocol is not None and bool(self.protocol._closed.is_set())

    async def wait_closed(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the connection is lost."""
        async with asyncio.timeout(timeout):
            await self.protocol.wait_closed()

    async def close(self) -> None:
        """Close the connection and wait for ``connection_lost`` (idempotent)."""
        if self.transport is None:
            return
        transport, self.transport = self.transport, None
        transport.close()
        async with asyncio.timeout(5):
            await self.protocol.wait_closed()
