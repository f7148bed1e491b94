"""Setting a meter up and down: the port opened first (not ready until it opens), runtime data,
the connection's task, devices that can be removed, the saved flows removed with the entry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.dsmr.connection import Connection, Counters
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.coordinator import DsmrCoordinator, DsmrRuntimeData
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .helpers import restored_power_entry, send, setup_meter, wait_for

POWER = "sensor.electricity_meter_power_consumption"


async def test_setup_and_unload(hass: HomeAssistant) -> None:
    """The runtime data holds the coordinator, the connection and the counters; unloading
    closes the connection and leaves nothing running."""
    server = TcpServer(Meter("5", seed=8))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        data = entry.runtime_data
        assert isinstance(data, DsmrRuntimeData)
        assert isinstance(data.coordinator, DsmrCoordinator)
        assert isinstance(data.connection, Connection)
        assert isinstance(data.coordinator.counters, Counters)
        assert data.connection.counters is data.coordinator.counters
        assert data.coordinator.data is not None  # the first telegram's snapshot
        assert server.client_count == 1
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert entry.state is ConfigEntryState.NOT_LOADED
        await wait_for(lambda: server.client_count == 0)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server)
        assert entry.runtime_data is not data
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_stale_mbus_device_can_be_removed(hass: HomeAssistant, hass_ws_client: Any) -> None:
    """A sub-meter the meter no longer reports can be deleted; current ones and the meter cannot."""
    server = TcpServer(Meter("5", seed=9, mbus=("gas", "water")))
    await server.start()
    entry = await setup_meter(hass, server)
    await send(entry, server)  # the sub-meters: named by two telegrams in a row
    await server.stop()
    only_gas = TcpServer(Meter("5", seed=9, mbus=("gas",)), port=server.port)  # water meter removed
    await only_gas.start()
    try:
        await wait_for(lambda: entry.runtime_data.connection.connected, timeout=10)
        await send(entry, only_gas)
        assert await async_setup_component(hass, "config", {})
        client = await hass_ws_client(hass)
        devices = {
            d.name: d for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        }

        async def remove(name: str) -> bool:
            await client.send_json_auto_id(
                {
                    "type": "config/device_registry/remove_config_entry",
                    "config_entry_id": entry.entry_id,
                    "device_id": devices[name].id,
                }
            )
            return bool((await client.receive_json())["success"])

        assert not await remove("Electricity Meter")
        assert not await remove("Gas Meter")
        assert await remove("Water Meter")
        assert [k["type"] for k in entry.data["mbus_devices"]] == [3]
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await only_gas.stop()


async def test_missing_port_is_not_ready_until_it_appears(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Setup opens the port first: not there, Home Assistant retries; then restored states."""
    link = tmp_path / "ttyP1"
    entry = restored_power_entry(hass, {"port": str(link)})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == (
        f"Cannot open {link} for the DSMR meter: No such file or directory. Home Assistant "
        "keeps trying; check that the P1 cable or the network bridge is connected"
    )
    # The adapter is plugged in: Home Assistant's next attempt sets the meter up, and the
    # restored value shows until the first telegram.
    server = PtyServer(Meter("5", seed=1), link=link)
    await server.start()
    try:
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=90))
        await wait_for(lambda: entry.state is ConfigEntryState.LOADED, timeout=10)
        await hass.async_block_till_done()
        assert hass.states.get(POWER).state == "1.234"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_a_port_that_is_no_serial_port_asks_for_reconfiguration(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, data={"port": "/dev/null", "dsmr_version": "5", "serial_id": None}
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY  # refused again, never opened
    assert entry.reason == (
        "/dev/null cannot be the DSMR meter's port: not a serial device (a character device, "
        "but not a serial tty). Reconfigure the meter with its serial port or bridge"
    )


async def test_a_removed_meter_takes_its_saved_flows_along(
    hass: HomeAssistant, hass_storage: dict[str, Any], silent_port: str
) -> None:
    """The flows the coordinator saved for a restart (`dsmr.<entry_id>`) go with the entry."""
    entry = MockConfigEntry(
        domain=DOMAIN, data={"port": silent_port, "dsmr_version": "5", "serial_id": None}
    )
    key = f"{DOMAIN}.{entry.entry_id}"
    hass_storage[key] = {"version": 1, "minor_version": 1, "key": key, "data": {"flows": {}}}
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage
