"""Setting a meter up and down: runtime data, the reader's task, devices that can be removed."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component

from custom_components.dsmr.coordinator import DsmrCoordinator, DsmrRuntimeData
from custom_components.dsmr.counters import ReaderStats
from custom_components.dsmr.reader import DsmrReader
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for


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
        assert isinstance(data.reader, DsmrReader)
        assert isinstance(data.counters, ReaderStats)
        assert data.reader.stats is data.counters is data.coordinator.counters
        assert data.coordinator.data is not None  # the first telegram's snapshot
        assert server.client_count == 1
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert entry.state is ConfigEntryState.NOT_LOADED
        await wait_for(lambda: server.client_count == 0)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.reader.connected)
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
    await server.stop()
    only_gas = TcpServer(Meter("5", seed=9, mbus=("gas",)), port=server.port)  # water meter removed
    await only_gas.start()
    try:
        await wait_for(lambda: entry.runtime_data.reader.connected, timeout=10)
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
