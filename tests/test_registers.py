"""The registers beyond energy and power: Belgian capacity tariff, power failures, texts."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for

WANTED = (
    "current_average_demand",
    "maximum_demand_current_month",
    "average_monthly_peak_demand_12_months",
    "power_failure_log",
    "long_power_failure_count",
    "short_power_failure_count",
    "text_message",
    "text_message_code",
    "timestamp",
)


async def _enable_all(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    registry = er.async_get(hass)
    for reg in er.async_entries_for_config_entry(registry, entry.entry_id):
        if reg.disabled_by is not None:
            registry.async_update_entity(reg.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.reader.connected)


@pytest.mark.parametrize("version", ["5B", "5", "4", "2.2"])
async def test_registers(hass: HomeAssistant, snapshot: SnapshotAssertion, version: str) -> None:
    server = TcpServer(Meter(version, seed=51, text_message="Storing gepland 03:00"))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        await _enable_all(hass, entry)
        await send(entry, server)
        shown = {}
        for key in WANTED:
            state = hass.states.get(f"sensor.electricity_meter_{key}")
            if state is not None:
                shown[key] = {
                    "state": state.state,
                    **{
                        k: v
                        for k, v in state.attributes.items()
                        if k not in {"friendly_name", "icon"}
                    },
                }
        assert shown == snapshot
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()
