"""The binary sensor platform: the meter's connection."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import snapshot_platform
from syrupy.assertion import SnapshotAssertion

from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for

CONNECTION = "binary_sensor.electricity_meter_connection"


async def test_binary_sensor_platform(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion
) -> None:
    server = TcpServer(Meter("5", seed=12))
    await server.start()
    try:
        with patch("custom_components.dsmr.PLATFORMS", [Platform.BINARY_SENSOR]):
            entry = await setup_meter(hass, server)
            await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
            assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_connection_follows_the_meter(hass: HomeAssistant) -> None:
    """On while telegrams arrive, off at once when the connection goes (always available)."""
    server = TcpServer(Meter("5", seed=13))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        assert hass.states.get(CONNECTION).state == STATE_ON
        port = server.port
        await server.stop()
        await wait_for(lambda: hass.states.get(CONNECTION).state == STATE_OFF)
        server = TcpServer(Meter("5", seed=13), port=port)
        await server.start()
        await wait_for(lambda: entry.runtime_data.connection.connected, timeout=10)
        assert hass.states.get(CONNECTION).state == STATE_OFF  # connected, no telegram yet
        await send(entry, server)
        await wait_for(lambda: hass.states.get(CONNECTION).state == STATE_ON)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()
