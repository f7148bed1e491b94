"""`sensor: - platform: dsmr` in YAML becomes config entries that follow the YAML."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import logging
from pathlib import Path
import socket
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_IMPORT, ConfigEntry, ConfigEntryState
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr import sensor
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.yaml_import import (
    PLATFORM_SCHEMA,
    async_import_yaml,
    async_setup_platform,
    user_precision,
)
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .helpers import send, wait_for

TIMEOUT = "custom_components.dsmr.detect.VALIDATION_TIMEOUT"
POWER = "sensor.electricity_meter_power_consumption"
ENERGY_T1 = "sensor.electricity_meter_energy_consumption_tarif_1"


@pytest.fixture
async def server(servers: list[BaseServer]) -> TcpServer:
    """A ser2net-style bridge in front of a DSMR 5 meter (manual mode)."""
    tcp = TcpServer(Meter("5", seed=1))
    servers.append(tcp)
    await tcp.start()
    return tcp


@contextlib.asynccontextmanager
async def meters_talking(*servers: BaseServer) -> AsyncIterator[None]:
    """The meters send a telegram every 50 ms, so that imports can validate."""

    async def talk() -> None:
        while True:
            for server in servers:
                await server.send_telegram()
            await asyncio.sleep(0.05)

    task = asyncio.ensure_future(talk())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def block(server: TcpServer | None = None, **keys: Any) -> dict[str, Any]:
    """A `sensor:` list item for the dsmr platform."""
    if server is not None:
        keys = {"host": server.host, "port": server.port, "dsmr_version": "5", **keys}
    return {"platform": "dsmr", **keys}


async def setup_yaml(hass: HomeAssistant, *servers: BaseServer, blocks: list[Any]) -> None:
    """Start the sensor integration with this YAML, as Home Assistant does at startup."""
    async with meters_talking(*servers):
        assert await async_setup_component(hass, "sensor", {"sensor": blocks})
        await hass.async_block_till_done()


async def import_again(hass: HomeAssistant, *servers: BaseServer, blocks: list[Any]) -> None:
    """The next start: the integration's async_setup sees this YAML."""
    # Set up already (by its entries, or the first start); a direct call must not set it up.
    assert await async_setup_component(hass, DOMAIN, {})
    async with meters_talking(*servers):
        await async_import_yaml(hass, {"sensor": blocks})
        await hass.async_block_till_done()


async def first_telegrams(entry: ConfigEntry, server: TcpServer) -> None:
    """Wait until the entry is connected and its meter's M-Bus device is remembered.

    The protocol hands telegrams to the coordinator as it reads them; a sub-meter is made (and
    remembered in the entry) once two publishes in a row name it: what the meter's telegrams add
    to the entry is there before the next import looks.
    """
    await wait_for(lambda: entry.runtime_data.connection.connected)
    for _ in range(5):
        await send(entry, server)  # type: ignore[arg-type]
        if entry.data.get("mbus_devices"):
            return
    pytest.fail(f"no M-Bus device remembered: {dict(entry.data)}")


def free_port() -> int:
    """A local TCP port that nothing listens on.

    Entries that get loaded without a meter use one (refused at once) rather than a missing
    device path: unloading while serialx opens a path in an executor can log an exception
    from its shielded open.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def only_entry(hass: HomeAssistant) -> ConfigEntry:
    entries = hass.config_entries.async_entries(DOMAIN)
    assert len(entries) == 1
    return entries[0]


def error_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_network_block(hass: HomeAssistant, server: TcpServer) -> None:
    await setup_yaml(hass, server, blocks=[block(server)])
    entry = only_entry(hass)
    serial_id = server.meter.render().values["EQUIPMENT_IDENTIFIER"]
    assert entry.source == SOURCE_IMPORT
    assert entry.title == f"127.0.0.1:{server.port}"
    assert entry.unique_id == serial_id
    # (Plus the M-Bus devices, once a telegram arrived: setup has opened the port already.)
    assert {k: v for k, v in entry.data.items() if k != "mbus_devices"} == {
        "host": "127.0.0.1",
        "port": server.port,
        "dsmr_version": "5",
        "reconnect_interval": 30,
        "yaml": True,
        "protocol": "dsmr_protocol",
        "serial_id": serial_id,
        "serial_id_gas": None,
    }
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: hass.states.get(POWER) is not None)
    # Setup opened the port while the meter talked: those telegrams started the 30 s update
    # window. A fresh connection publishes its first telegram at once: reload, then send one.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    assert server.last_rendered is not None
    expected = float(server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"])
    assert float(hass.states.get(POWER).state) == pytest.approx(expected)


async def test_serial_block(hass: HomeAssistant, servers: list[BaseServer], tmp_path: Path) -> None:
    pty = PtyServer(Meter("5", seed=1), link=tmp_path / "ttyP1")
    servers.append(pty)
    await pty.start()
    await setup_yaml(hass, pty, blocks=[block(port=pty.port, dsmr_version="5")])
    entry = only_entry(hass)
    assert entry.title == pty.port
    assert entry.data["port"] == pty.port
    assert "host" not in entry.data
    assert entry.data["yaml"] is True
    assert entry.data["serial_id"] == pty.meter.render().values["EQUIPMENT_IDENTIFIER"]


async def test_every_key_is_honoured(hass: HomeAssistant, servers: list[BaseServer]) -> None:
    bridge = TcpServer(Meter("5B", seed=1))
    servers.append(bridge)
    await bridge.start()
    await setup_yaml(
        hass,
        bridge,
        blocks=[
            block(
                bridge, port=str(bridge.port), dsmr_version="5B", reconnect_interval=7, precision=1
            )
        ],
    )
    entry = only_entry(hass)
    assert entry.data["host"] == "127.0.0.1"
    assert entry.data["port"] == bridge.port  # an int, as core's network entries
    assert entry.data["dsmr_version"] == "5B"
    assert entry.data["reconnect_interval"] == 7
    assert entry.data["precision"] == 1
    assert entry.data["serial_id"] == bridge.meter.render().values["BELGIUM_EQUIPMENT_IDENTIFIER"]
    connection = entry.runtime_data.connection
    assert connection.reconnect_interval == 7
    await wait_for(lambda: connection.connected)
    await send(entry, bridge)
    assert bridge.last_rendered is not None
    raw = bridge.last_rendered.values["ELECTRICITY_USED_TARIFF_1"]
    state = hass.states.get(ENERGY_T1)
    assert state is not None
    assert float(state.state) == round(float(raw), 1)
    assert len(state.state.partition(".")[2]) <= 1
    assert float(state.state) != pytest.approx(float(raw), abs=1e-4)  # really rounded


def test_user_precision() -> None:
    assert user_precision({"precision": 1}) == 1
    assert user_precision({"precision": "3"}) == 3  # as an old entry may hold it
    assert user_precision({"precision": 0}) == 0  # no decimals is a precision
    assert user_precision({}) is None  # the meter's own


def test_the_sensor_platform_takes_the_yaml_block() -> None:
    """Home Assistant validates the block with the sensor platform's schema, then calls it."""
    assert sensor.PLATFORM_SCHEMA is PLATFORM_SCHEMA
    assert sensor.async_setup_platform is async_setup_platform


def test_defaults() -> None:
    assert PLATFORM_SCHEMA({"platform": "dsmr"}) == {
        "platform": "dsmr",
        "port": "/dev/ttyUSB0",
        "dsmr_version": "2.2",
        "reconnect_interval": 30,
    }


async def test_defaults_applied(hass: HomeAssistant, servers: list[BaseServer]) -> None:
    bridge = TcpServer(Meter("2.2", seed=1))
    servers.append(bridge)
    await bridge.start()
    await setup_yaml(
        hass, bridge, blocks=[{"platform": "dsmr", "host": "127.0.0.1", "port": bridge.port}]
    )
    entry = only_entry(hass)
    values = bridge.meter.render().values
    assert entry.data == {
        "host": "127.0.0.1",
        "port": bridge.port,
        "dsmr_version": "2.2",
        "reconnect_interval": 30,
        "yaml": True,
        "protocol": "dsmr_protocol",
        "serial_id": values["EQUIPMENT_IDENTIFIER"],
        "serial_id_gas": values["EQUIPMENT_IDENTIFIER_GAS"],
    }


async def test_default_port(hass: HomeAssistant, caplog: pytest.LogCaptureFixture) -> None:
    """No port: /dev/ttyUSB0, which does not exist here; the import says so and retries later."""
    await setup_yaml(hass, blocks=[{"platform": "dsmr"}])
    assert hass.config_entries.async_entries(DOMAIN) == []
    messages = error_messages(caplog)
    assert len(messages) == 1
    assert "/dev/ttyUSB0" in messages[0]


async def test_same_yaml_again(hass: HomeAssistant, server: TcpServer) -> None:
    blocks = [block(server)]
    await setup_yaml(hass, server, blocks=blocks)
    entry = only_entry(hass)
    await first_telegrams(entry, server)  # its M-Bus device is remembered: data of the meter's
    data, coordinator = dict(entry.data), entry.runtime_data
    await import_again(hass, server, blocks=blocks)
    assert only_entry(hass) is entry
    assert dict(entry.data) == data
    assert entry.runtime_data is coordinator  # not reloaded


async def test_changed_key_updates_the_entry(hass: HomeAssistant, server: TcpServer) -> None:
    await setup_yaml(hass, server, blocks=[block(server)])
    entry = only_entry(hass)
    coordinator = entry.runtime_data
    await import_again(hass, server, blocks=[block(server, precision=1, reconnect_interval=9)])
    assert only_entry(hass) is entry
    assert entry.data["precision"] == 1
    assert entry.data["reconnect_interval"] == 9
    assert entry.data["yaml"] is True
    assert entry.data["serial_id"]  # kept
    # Reloaded with the new settings.
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not coordinator
    assert entry.runtime_data.connection.reconnect_interval == 9
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    assert server.last_rendered is not None
    raw = server.last_rendered.values["ELECTRICITY_USED_TARIFF_1"]
    assert float(hass.states.get(ENERGY_T1).state) == round(float(raw), 1)


async def test_changed_port_replaces_the_entry(
    hass: HomeAssistant, servers: list[BaseServer], server: TcpServer
) -> None:
    await setup_yaml(hass, server, blocks=[block(server)])
    old = only_entry(hass)
    moved = TcpServer(Meter("5", seed=1))  # the same meter, now behind another bridge
    servers.append(moved)
    await moved.start()
    await import_again(hass, moved, blocks=[block(moved)])
    new = only_entry(hass)
    assert new.entry_id != old.entry_id
    assert new.data["port"] == moved.port
    assert new.unique_id == old.unique_id


async def test_removed_block_removes_the_entry(hass: HomeAssistant, server: TcpServer) -> None:
    await setup_yaml(hass, server, blocks=[block(server)])
    entry = only_entry(hass)
    registry = er.async_get(hass)
    assert er.async_entries_for_config_entry(registry, entry.entry_id)
    await async_import_yaml(hass, {})
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == []
    assert er.async_entries_for_config_entry(registry, entry.entry_id) == []
    assert hass.states.get(POWER) is None


async def test_other_platforms_do_not_count(hass: HomeAssistant, server: TcpServer) -> None:
    """Only dsmr blocks, under `sensor:` or a packaged `sensor other:`, are imported."""
    await setup_yaml(hass, server, blocks=[block(server)])
    entry = only_entry(hass)
    await import_again(
        hass,
        server,
        blocks=[{"platform": "template"}],
    )
    assert hass.config_entries.async_entries(DOMAIN) == []
    async with meters_talking(server):
        await async_import_yaml(
            hass, {"sensor": None, "sensor extra": [block(server)], "dsmr": [block(server)]}
        )
        await hass.async_block_till_done()
    assert only_entry(hass).entry_id != entry.entry_id


async def test_unmarked_entry_is_not_removed(hass: HomeAssistant, server: TcpServer) -> None:
    """An entry made by core's YAML import years ago (or in the UI) carries no mark."""
    port = free_port()  # a bridge that is gone: refused at once
    core = MockConfigEntry(
        domain=DOMAIN,
        source=SOURCE_IMPORT,
        title=f"127.0.0.1:{port}",
        data={
            "host": "127.0.0.1",
            "port": port,
            "dsmr_version": "5",
            "precision": 3,
            "reconnect_interval": 30,
            "serial_id": "1234",
            "serial_id_gas": None,
        },
        unique_id="1234",
    )
    core.add_to_hass(hass)
    await setup_yaml(hass, server, blocks=[block(server)])
    assert len(hass.config_entries.async_entries(DOMAIN)) == 2
    await async_import_yaml(hass, {})
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == [core]
    assert "yaml" not in core.data


async def test_unmarked_entry_of_the_same_meter_is_left_alone(
    hass: HomeAssistant, server: TcpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """YAML naming a meter that an unmarked entry reads already: that entry is not taken over."""
    serial_id = server.meter.render().values["EQUIPMENT_IDENTIFIER"]
    data = {
        "host": "127.0.0.1",
        "port": server.port,
        "dsmr_version": "5",
        "protocol": "dsmr_protocol",
        "serial_id": serial_id,
        "serial_id_gas": None,
    }
    ui = MockConfigEntry(domain=DOMAIN, data=data, unique_id=serial_id)
    ui.add_to_hass(hass)
    with patch(TIMEOUT, 0.5):
        await setup_yaml(hass, blocks=[block(server, precision=1)])  # the meter stays silent
    assert hass.config_entries.async_entries(DOMAIN) == [ui]
    assert error_messages(caplog) == []  # not validated: the port is the entry's
    assert dict(ui.data) == data  # not marked as YAML, precision not written
    await async_import_yaml(hass, {})
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == [ui]


async def test_same_meter_in_the_ui_on_another_port(
    hass: HomeAssistant, server: TcpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """YAML naming, on another port, a meter an entry made in the UI reads: not taken over."""
    serial_id = server.meter.render().values["EQUIPMENT_IDENTIFIER"]
    data = {
        "port": f"socket://127.0.0.1:{free_port()}",  # core's flow stores bridges as URLs
        "dsmr_version": "5",
        "protocol": "dsmr_protocol",
        "serial_id": serial_id,
        "serial_id_gas": None,
    }
    ui = MockConfigEntry(domain=DOMAIN, data=data, unique_id=serial_id)
    ui.add_to_hass(hass)
    await setup_yaml(hass, server, blocks=[block(server)])
    assert hass.config_entries.async_entries(DOMAIN) == [ui]
    assert dict(ui.data) == data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("already set up" in w for w in warnings)


async def test_invalid_version(hass: HomeAssistant, caplog: pytest.LogCaptureFixture) -> None:
    await setup_yaml(hass, blocks=[block(host="127.0.0.1", port=2001, dsmr_version="6")])
    assert hass.config_entries.async_entries(DOMAIN) == []
    messages = error_messages(caplog)
    assert messages
    assert any("dsmr_version" in m for m in messages)


@pytest.mark.parametrize(
    "bad",
    [
        {"dsmr_version": "6"},
        {"precision": "many"},
        {"reconnect_interval": 0},
        {"host": "127.0.0.1"},  # a host without a TCP port: /dev/ttyUSB0 is no TCP port
        {"host": "127.0.0.1", "port": "telnet"},
    ],
)
async def test_invalid_block_next_to_a_valid_one(
    hass: HomeAssistant, server: TcpServer, caplog: pytest.LogCaptureFixture, bad: dict[str, Any]
) -> None:
    """The integration's own pass over the YAML: the bad block is reported, the good one kept."""
    await import_again(hass, server, blocks=[block(**bad), block(server)])
    entry = only_entry(hass)
    assert entry.data["port"] == server.port
    messages = error_messages(caplog)
    assert len(messages) == 1
    assert "Invalid dsmr configuration" in messages[0]


async def test_invalid_block_keeps_the_entries(
    hass: HomeAssistant, server: TcpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in a block does not delete the entry (and its history) the block names."""
    await setup_yaml(hass, server, blocks=[block(server)])
    entry = only_entry(hass)
    await first_telegrams(entry, server)  # its M-Bus device is remembered: data of the meter's
    data = dict(entry.data)
    await import_again(hass, server, blocks=[block(server, dsmr_version="5 ")])
    assert only_entry(hass) is entry
    assert dict(entry.data) == data
    assert len(error_messages(caplog)) == 1
    # Fixed again: nothing changes; removed: the entry goes.
    await import_again(hass, server, blocks=[block(server)])
    assert only_entry(hass) is entry
    await import_again(hass, server, blocks=[])
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_single_block_without_a_list(hass: HomeAssistant, server: TcpServer) -> None:
    """`sensor:` holding one block (no dash) is valid YAML for Home Assistant, and for us."""
    await setup_yaml(hass, server, blocks=[block(server)])
    entry = only_entry(hass)
    async with meters_talking(server):
        await async_import_yaml(hass, {"sensor": block(server)})
        await hass.async_block_till_done()
    assert only_entry(hass) is entry


async def test_top_level_key_is_an_error(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """`dsmr:` at the top level is not our YAML: an error and a repair issue, no entry."""
    assert await async_setup_component(hass, DOMAIN, {DOMAIN: {"port": "/dev/ttyUSB0"}})
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == []
    assert "The dsmr integration does not support YAML setup" in "\n".join(error_messages(caplog))
    issue = ir.async_get(hass).async_get_issue(HOMEASSISTANT_DOMAIN, f"platform_only_{DOMAIN}")
    assert issue is not None
    assert issue.issue_domain == DOMAIN
