"""Pytest fixtures: simulated meters served in the test's own event loop.

Load with ``pytest_plugins = ["dsmr_sim.pytest_plugin"]``. Each fixture is a factory; every
server or reader it made is stopped at teardown, leaving no task, timer or descriptor (Home
Assistant's test harness fails tests that leave any). The TCP fixtures request
``socket_enabled`` (pytest-socket), since Home Assistant's harness blocks inet sockets.

    async def test_x(dsmr_tcp_server, dsmr_reader):
        server = await dsmr_tcp_server("5B", mbus=("gas", "water"))
        reader = await dsmr_reader(server)
        await server.send_telegram()
        telegram = await reader.next()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import os
from pathlib import Path
from typing import Any

import pytest

from .client import TelegramReader
from .faults import Faults
from .meter import Meter
from .serial_pty import PtyServer
from .server import BaseServer
from .tcp import TcpServer

__all__ = ["dsmr_meter", "dsmr_pty_server", "dsmr_reader", "dsmr_tcp_server"]

type TcpFactory = Callable[..., Awaitable[TcpServer]]
type PtyFactory = Callable[..., Awaitable[PtyServer]]
type ReaderFactory = Callable[..., Awaitable[TelegramReader]]


def _meter(version: str | Meter, meter_kwargs: dict[str, Any]) -> Meter:
    if isinstance(version, Meter):
        if meter_kwargs:
            raise TypeError("pass meter options to Meter(...) when giving a Meter")
        return version
    return Meter(version, **meter_kwargs)


@pytest.fixture
def dsmr_meter() -> Callable[..., Meter]:
    """Factory: ``dsmr_meter("5B", seed=1, mbus=("gas",))`` -> :class:`Meter`."""
    return Meter


@pytest.fixture
async def dsmr_tcp_server(socket_enabled: None) -> AsyncIterator[TcpFactory]:
    """Factory: ``await dsmr_tcp_server(version_or_meter="5", *, host="127.0.0.1", port=0,
    interval=None, step_seconds=None, faults=None, **meter_kwargs)`` -> started TcpServer."""
    servers: list[BaseServer] = []

    async def factory(
        version: str | Meter = "5",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float | None = None,
        step_seconds: float | None = None,
        faults: Faults | None = None,
        **meter_kwargs: Any,
    ) -> TcpServer:
        server = TcpServer(
            _meter(version, meter_kwargs),
            host,
            port,
            interval=interval,
            step_seconds=step_seconds,
            faults=faults,
        )
        servers.append(server)
        await server.start()
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest.fixture
async def dsmr_pty_server(tmp_path: Path) -> AsyncIterator[PtyFactory]:
    """Factory: ``await dsmr_pty_server(version_or_meter="5", *, link=None, interval=None,
    step_seconds=None, faults=None, stale_after=2.0, **meter_kwargs)`` -> started PtyServer.

    ``link=True`` puts the symlink at ``tmp_path / "serial" / "by-id" / "usb-dsmr_sim-port0"``.
    """
    servers: list[BaseServer] = []

    async def factory(
        version: str | Meter = "5",
        *,
        link: str | os.PathLike[str] | bool | None = None,
        interval: float | None = None,
        step_seconds: float | None = None,
        faults: Faults | None = None,
        stale_after: float = 2.0,
        **meter_kwargs: Any,
    ) -> PtyServer:
        if link is True:
            link = tmp_path / "serial" / "by-id" / f"usb-dsmr_sim-port{len(servers)}"
        server = PtyServer(
            _meter(version, meter_kwargs),
            link=link or None,
            interval=interval,
            step_seconds=step_seconds,
            faults=faults,
            stale_after=stale_after,
        )
        servers.append(server)
        await server.start()
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest.fixture
async def dsmr_reader() -> AsyncIterator[ReaderFactory]:
    """Factory: ``await dsmr_reader(server_or_port, version=None, *, encryption_key=None,
    authentication_key=None)`` -> connected :class:`TelegramReader` (dsmr_parser's reader).

    Given a server, the port, version and keys are taken from it.
    """
    readers: list[TelegramReader] = []

    async def factory(
        target: BaseServer | str,
        version: str | None = None,
        *,
        encryption_key: str | None = None,
        authentication_key: str | None = None,
    ) -> TelegramReader:
        if isinstance(target, BaseServer):
            port = target.endpoint
            version = version or target.meter.version
            encryption_key = encryption_key or target.meter.key_hex
        else:
            port = target
        if version is None:
            raise TypeError("give the version when connecting to a port")
        reader = TelegramReader(
            port,
            version,
            encryption_key=encryption_key or "",
            authentication_key=authentication_key,
        )
        await reader.connect()
        readers.append(reader)
        return reader

    yield factory
    for reader in readers:
        await reader.close()
