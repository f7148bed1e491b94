"""The capacity tariff's entities (Belgian meters): the quarter-hour forecast, the headroom to
the monthly peak and the new-peak alarm, the simulator over TCP into Home Assistant."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from syrupy.assertion import SnapshotAssertion

from dsmr_sim import Meter
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .helpers import entity_snapshot, send, setup_meter, wait_for

FORECAST = "sensor.electricity_meter_quarter_hour_forecast"
HEADROOM = "sensor.electricity_meter_peak_headroom"
PEAK_AHEAD = "binary_sensor.electricity_meter_new_monthly_peak_ahead"
GAS_FLOW = "sensor.gas_meter_gas_flow"
JANUARY = datetime(2024, 1, 15, 17, 2)
BRUSSELS = ZoneInfo("Europe/Brussels")


def assert_entities(hass: HomeAssistant, snapshot: SnapshotAssertion, *entity_ids: str) -> None:
    """Registry entries and states, as `snapshot_platform` has them, of these entities only."""
    registry = er.async_get(hass)
    for entity_id in entity_ids:
        assert registry.async_get(entity_id) == snapshot(name=f"{entity_id}-entry")
        assert hass.states.get(entity_id) == snapshot(name=f"{entity_id}-state")


async def serve(servers: list[BaseServer], meter: Meter, step: float) -> TcpServer:
    """A bridge for `meter`, `step` simulated seconds per telegram; stopped after the test."""
    server = TcpServer(meter, step_seconds=step)
    servers.append(server)
    await server.start()
    return server


def number(entity_id: str, hass: HomeAssistant) -> float:
    return float(hass.states.get(entity_id).state)


async def test_demand_entities(
    hass: HomeAssistant, servers: list[BaseServer], snapshot: SnapshotAssertion
) -> None:
    meter = Meter("5B", seed=5, start=JANUARY, appliances=True)
    server = await serve(servers, meter, 10)
    entry = await setup_meter(hass, server)
    await send(entry, server, 46)  # to 17:10:00 by the meter's clock
    assert_entities(hass, snapshot, FORECAST, HEADROOM, PEAK_AHEAD)
    serial = entry.data["serial_id"]
    registry = er.async_get(hass)
    for entity_id, key in (
        (FORECAST, "quarter_hour_forecast"),
        (HEADROOM, "peak_headroom"),
        (PEAK_AHEAD, "new_monthly_peak_ahead"),
    ):
        assert registry.async_get(entity_id).unique_id == f"{serial}_{key}"
    # The forecast is the meter's demand so far plus the present power held to :15.
    rendered = server.last_rendered
    assert rendered is not None
    so_far = float(rendered.values["BELGIUM_CURRENT_AVERAGE_DEMAND"])
    power = float(rendered.values["CURRENT_ELECTRICITY_USAGE"])
    assert rendered.values["P1_MESSAGE_TIMESTAMP"] == datetime(2024, 1, 15, 17, 10, tzinfo=BRUSSELS)
    forecast = hass.states.get(FORECAST)
    assert forecast.attributes["demand_so_far"] == so_far
    assert number(FORECAST, hass) == pytest.approx(so_far + power / 3)
    headroom = hass.states.get(HEADROOM)
    limit = headroom.attributes["limit"]
    assert limit == max(headroom.attributes["month_peak"], 2.5)
    assert number(HEADROOM, hass) == pytest.approx(limit - number(FORECAST, hass))
    assert hass.states.get(PEAK_AHEAD).attributes["limit"] == limit
    # Unavailable with the connection, as every entity.
    await server.stop()
    await wait_for(lambda: hass.states.get(FORECAST).state == STATE_UNAVAILABLE)
    assert hass.states.get(PEAK_AHEAD).state == STATE_UNAVAILABLE


async def test_only_meters_that_send_the_quarter_hour_demand_get_demand_entities(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    server = await serve(servers, Meter("5", seed=1), 1)
    entry = await setup_meter(hass, server)
    await send(entry, server)  # the gas meter: named by two telegrams in a row
    ids = {r["entity_id"] for r in entity_snapshot(hass, entry)}
    assert GAS_FLOW in ids
    assert not ids & {FORECAST, HEADROOM, PEAK_AHEAD}


async def test_the_threshold_option_sets_the_limit(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    server = await serve(servers, Meter("5B", seed=5, start=JANUARY), 10)
    options = {"time_between_update": 0, "peak_threshold": 42.5}
    entry = await setup_meter(hass, server, options)
    assert hass.states.get(PEAK_AHEAD).attributes["limit"] == 42.5
    assert hass.states.get(PEAK_AHEAD).state == "off"
    assert hass.states.get(HEADROOM).attributes["threshold"] == 42.5
    assert number(HEADROOM, hass) == pytest.approx(42.5 - number(FORECAST, hass))
    # At 0, the limit is this month's peak.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(result["flow_id"], {"peak_threshold": 0})
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    month_peak = hass.states.get(HEADROOM).attributes["month_peak"]
    assert 0 < month_peak < 42.5
    assert hass.states.get(PEAK_AHEAD).attributes["limit"] == month_peak
    assert hass.states.get(HEADROOM).attributes["threshold"] == 0
