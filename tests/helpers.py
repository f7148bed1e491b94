"""Helpers shared by the integration tests: set up a meter against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import socket
from typing import Any

from dsmr_parser.clients.protocol import _create_dsmr_protocol
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache_with_extra_data,
)

from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.detect import async_validated
from custom_components.dsmr.p1.telegram import gas_identifier, identifier
from dsmr_sim.meter import Meter
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer


class RawBridge:
    """A network bridge on 127.0.0.1 that sends whatever the test gives it (real TCP).

    For what no meter sends: silence, noise, hostile frames. Append it to the `servers`
    fixture's list so that it stops after the entries reading it are unloaded.
    """

    def __init__(self) -> None:
        """Not listening until started."""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> RawBridge:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """The bridge as a port URL."""
        return f"socket://127.0.0.1:{self.port}"

    @property
    def client_count(self) -> int:
        """Connected clients."""
        return len(self._writers)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            await reader.read()  # until the client goes
        except ConnectionError:
            pass
        finally:
            self._writers.remove(writer)
            writer.close()

    async def send(self, data: bytes) -> None:
        """Send to every connected client."""
        for writer in list(self._writers):
            writer.write(data)
            await writer.drain()

    async def stop(self) -> None:
        """Drop the clients and stop listening."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def free_port() -> int:
    """A local TCP port that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until `predicate` holds (the reader runs on real sockets and ttys)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def entry_data(server: BaseServer, **extra: Any) -> dict[str, Any]:
    """Entry data reaching the simulator: network entries as host + port, serial as a path."""
    data: dict[str, Any] = {"dsmr_version": server.meter.version, "protocol": "dsmr_protocol"}
    if isinstance(server, TcpServer):
        data |= {"host": server.host, "port": server.port}
    else:
        data |= {"port": server.port}
    if server.meter.encrypted:
        data["encryption_key"] = server.meter.key_hex
    return data | extra


async def validated(server: BaseServer, **extra: Any) -> dict[str, Any]:
    """What the config flow stores: the data plus identifiers read from a real telegram.

    The meter advances one step, then repeats that telegram every 20 ms until validation has
    read one: however long that takes on a busy machine, the meter's state afterwards is the same.
    """
    task = asyncio.ensure_future(async_validated(entry_data(server, **extra)))
    await server.send_telegram()
    while not task.done():
        await asyncio.sleep(0.02)
        await server.repeat_telegram()
    return await task


def identified(server: BaseServer, **extra: Any) -> dict[str, Any]:
    """Entry data with the identifiers read from the simulator's own telegram, port unopened.

    For 7E1 meters on a pty: Linux ptys refuse a second 7-bit tcsetattr (EINVAL; reproduced
    with plain termios), so those tests open the port once, in the entry, not in validation.
    """
    data = entry_data(server, **extra)
    factory, _ = _create_dsmr_protocol(data["dsmr_version"], None, object)
    telegram = factory.args[1].parse(server.meter.telegram())
    version = data["dsmr_version"]
    return data | {
        "serial_id": identifier(telegram, version),
        "serial_id_gas": gas_identifier(telegram, version),
    }


async def serve(
    servers: list[BaseServer], meter: Meter, interval: float | None = None
) -> TcpServer:
    """A TCP simulator of `meter`, started; `servers` stops it at the end."""
    servers.append(server := TcpServer(meter, interval=interval))
    await server.start()
    return server


async def setup_meter(
    hass: HomeAssistant,
    server: BaseServer,
    options: dict[str, Any] | None = None,
    *,
    validate: bool = True,
    **extra: Any,
) -> MockConfigEntry:
    """Add and set up an entry for the simulated meter, and deliver its first telegram."""
    data = await validated(server, **extra) if validate else identified(server, **extra)
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=data,
        unique_id=data["serial_id"],
        options=options if options is not None else {"time_between_update": 0},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    return entry


async def enable_all(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Enable every entity of the entry (disabled by default or by us) and reload it."""
    registry = er.async_get(hass)
    for reg in er.async_entries_for_config_entry(registry, entry.entry_id):
        if reg.disabled_by is not None:
            registry.async_update_entity(reg.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)


async def send(entry: MockConfigEntry, server: BaseServer, count: int = 1) -> None:
    """Send telegrams and wait until each has been read (and so taken by the coordinator)."""
    stats = entry.runtime_data.coordinator.counters

    def frames() -> int:
        return stats.telegrams + stats.crc_errors + stats.parse_errors

    for _ in range(count):
        before = frames()
        await server.send_telegram()
        # The protocol hands a telegram to the coordinator as it parses it: taken by now.
        await wait_for(lambda before=before: frames() > before)  # type: ignore[misc]
    await asyncio.sleep(0)


def entity_snapshot(hass: HomeAssistant, entry: MockConfigEntry) -> list[dict[str, Any]]:
    """Every entity of an entry: registry facts, and the state of the enabled ones."""
    registry = er.async_get(hass)
    rows = []
    for reg in sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda r: r.unique_id
    ):
        state = hass.states.get(reg.entity_id)
        rows.append(
            {
                "entity_id": reg.entity_id,
                "unique_id": reg.unique_id.replace(entry.entry_id, "<entry_id>"),
                "disabled_by": reg.disabled_by,
                "device_class": reg.original_device_class,
                "unit": reg.unit_of_measurement,
                "state": state.state if state else None,
                "attributes": dict(state.attributes) if state else None,
            }
        )
    return rows


RESTORED_POWER = "sensor.electricity_meter_power_consumption"


def restored_power_entry(hass: HomeAssistant, where: dict[str, Any]) -> MockConfigEntry:
    """A DSMR 5 entry (not set up) whose power sensor has a restored state of 1.234 kW.

    `where`: the port, or host and port, the entry reads.
    """
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(RESTORED_POWER, "1.234"),
                {"native_value": 1.234, "native_unit_of_measurement": "kW"},
            )
        ],
    )
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={**where, "dsmr_version": "5", "serial_id": "1234", "serial_id_gas": None},
    )
    entry.add_to_hass(hass)
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        "1234_current_electricity_usage",
        suggested_object_id="electricity_meter_power_consumption",
        config_entry=entry,
    )
    return entry
