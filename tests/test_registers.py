"""The registers beyond energy and power: Belgian capacity tariff, power failures, texts."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest
from syrupy.assertion import SnapshotAssertion

from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import enable_all, send, setup_meter

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


@pytest.mark.parametrize("version", ["5B", "5", "4", "2.2"])
async def test_registers(hass: HomeAssistant, snapshot: SnapshotAssertion, version: str) -> None:
    server = TcpServer(Meter(version, seed=51, text_message="Storing gepland 03:00"))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        await enable_all(hass, entry)
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
