"""Forecast, headroom, new-peak and flow entities: the simulator over TCP into Home Assistant."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dsmr_parser.parsers import TelegramParser
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    async_mock_restore_state_shutdown_restart,
    mock_restore_cache_with_extra_data,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.dsmr import derived_descriptions
from custom_components.dsmr.derived import Deriver, flow_key
from custom_components.dsmr.derived_descriptions import flow_attributes
from custom_components.dsmr.flow import Capture, FlowState
from dsmr_sim import Meter
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .helpers import entity_snapshot, send, setup_meter, wait_for

FORECAST = "sensor.electricity_meter_quarter_hour_forecast"
HEADROOM = "sensor.electricity_meter_peak_headroom"
PEAK_AHEAD = "binary_sensor.electricity_meter_new_monthly_peak_ahead"
GAS_FLOW = "sensor.gas_meter_gas_flow"
WATER_FLOW = "sensor.water_meter_water_flow"
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


def test_a_flow_in_its_descriptions_unit_with_its_interval_and_reading_time() -> None:
    at = datetime(2024, 1, 15, 16, tzinfo=UTC)
    flow = FlowState(Capture(at, Decimal("1.5")), m3h=0.6, interval_s=3600.0)
    assert derived_descriptions.GAS_FLOW.value_fn(flow) == 0.6
    assert derived_descriptions.WATER_FLOW.value_fn(flow) == pytest.approx(10.0)  # L/min
    assert derived_descriptions.WATER_FLOW.value_fn(FlowState()) is None
    local = dt_util.as_local(at).isoformat()
    assert flow_attributes(flow) == {"interval": 3600.0, "reading_at": local}
    assert flow_attributes(FlowState()) == {"interval": None, "reading_at": None}


async def test_demand_entities(
    hass: HomeAssistant, servers: list[BaseServer], ha_snapshot: SnapshotAssertion
) -> None:
    meter = Meter("5B", seed=5, start=JANUARY, appliances=True)
    server = await serve(servers, meter, 10)
    entry = await setup_meter(hass, server)
    await send(entry, server, 46)  # to 17:10:00 by the meter's clock
    assert_entities(hass, ha_snapshot, FORECAST, HEADROOM, PEAK_AHEAD)
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


async def test_the_forecast_is_derived_only_while_an_entity_shows_it(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    server = await serve(servers, Meter("5B", seed=5, start=JANUARY), 10)
    entry = await setup_meter(hass, server)
    coordinator = entry.runtime_data.coordinator
    assert coordinator.data.derived.quarter is not None
    registry = er.async_get(hass)
    for entity_id in (FORECAST, HEADROOM, PEAK_AHEAD):
        registry.async_update_entity(entity_id, disabled_by=er.RegistryEntryDisabler.USER)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server, 2)
    coordinator = entry.runtime_data.coordinator
    assert coordinator.data.derived.quarter is None  # nobody shows it: not derived
    assert coordinator.data.value("current_electricity_usage") is not None
    registry.async_update_entity(HEADROOM, disabled_by=None)  # one comes back
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server, 2)
    assert entry.runtime_data.coordinator.data.derived.quarter is not None
    assert number(HEADROOM, hass) is not None


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


async def test_flow_entities(
    hass: HomeAssistant, servers: list[BaseServer], ha_snapshot: SnapshotAssertion
) -> None:
    meter = Meter(
        "5", seed=5, start=JANUARY, appliances=True, mbus=("gas", "water"), mbus_interval=300
    )
    server = await serve(servers, meter, 60)
    entry = await setup_meter(hass, server)
    assert hass.states.get(GAS_FLOW) is None  # a sub-meter named by one telegram: none yet
    await send(entry, server, 10)
    assert_entities(hass, ha_snapshot, GAS_FLOW, WATER_FLOW)
    registry = er.async_get(hass)
    telegram = TelegramParser(meter.telegram_specification()).parse(meter.telegram())
    for channel, flow, reading in (
        (1, GAS_FLOW, "sensor.gas_meter_gas_consumption"),
        (2, WATER_FLOW, "sensor.water_meter_water_consumption"),
    ):
        reading_id = registry.async_get(reading).unique_id
        assert registry.async_get(flow).unique_id == f"{reading_id}_flow"
        device = telegram.get_mbus_device_by_channel(channel)
        assert reading_id == device.MBUS_EQUIPMENT_IDENTIFIER.value
        state = hass.states.get(flow)
        assert state.attributes["interval"] == 300
        at = datetime.fromisoformat(state.attributes["reading_at"])
        assert at == device.MBUS_METER_READING.datetime
        # Shown, not recorded: it moves with every reading (a new attributes row each time).
        assert state.state_info is not None
        unrecorded = state.state_info["unrecorded_attributes"]
        assert "reading_at" in unrecorded
        assert "interval" not in unrecorded
    # What a shutdown stores for each flow: its state, as the snapshot builder holds it.
    stored = (await async_mock_restore_state_shutdown_restart(hass)).last_states
    flows = entry.runtime_data.coordinator.data.derived.flows
    for channel, flow in ((1, GAS_FLOW), (2, WATER_FLOW)):
        ident = telegram.get_mbus_device_by_channel(channel).MBUS_EQUIPMENT_IDENTIFIER.value
        extra = stored[flow].extra_data
        assert extra is not None
        assert FlowState.from_dict(extra.as_dict()) == flows[flow_key(channel, ident)]


def arrival_after_a_capture(meter: Meter, step: float) -> tuple[int, Any]:
    """Telegrams (one per `step`) until one carries a new gas capture, the one before known.

    Returns how many telegrams came before that one, and the gas flow's state after them.
    """
    parser = TelegramParser(meter.telegram_specification())
    deriver, derived, stamps = Deriver(demand=False), None, []
    while True:
        meter.step(step)
        telegram = parser.parse(meter.telegram(), throw_ex=True)
        stamp = telegram.get_mbus_device_by_channel(1).MBUS_METER_READING.datetime
        if len(set(stamps)) >= 2 and stamp != stamps[-1]:
            gas = telegram.get_mbus_device_by_channel(1).MBUS_EQUIPMENT_IDENTIFIER.value
            assert derived is not None
            return len(stamps), derived.flows[flow_key(1, gas)]
        stamps.append(stamp)
        derived = deriver.derive([telegram], derived)


@pytest.mark.parametrize("restored", [True, False])
async def test_a_restart_keeps_the_last_reading_and_its_time(
    hass: HomeAssistant, servers: list[BaseServer], restored: bool
) -> None:
    def gas_meter() -> Meter:
        return Meter("5", seed=5, start=JANUARY, appliances=True, mbus=("gas",), mbus_interval=300)

    # Home Assistant stopped on the telegram before a new capture; it starts again on that one.
    before, saved = arrival_after_a_capture(gas_meter(), 10)
    assert saved.last is not None and saved.m3h is not None
    if restored:
        mock_restore_cache_with_extra_data(hass, [(State(GAS_FLOW, "1.0"), saved.as_dict())])
    meter = gas_meter()
    for _ in range(before - 1):
        meter.step(10)  # validation sends telegram `before`, the entry's first is the next
    parser = TelegramParser(meter.telegram_specification())
    gas = parser.parse(meter.telegram()).get_mbus_device_by_channel(1)
    known = [{"channel": 1, "type": 3, "id": gas.MBUS_EQUIPMENT_IDENTIFIER.value, "unit": "m3"}]
    server = await serve(servers, meter, 10)
    await setup_meter(hass, server, mbus_devices=known)
    capture = parser.parse(meter.telegram()).get_mbus_device_by_channel(1).MBUS_METER_READING
    assert capture.datetime != saved.last.at  # the new capture
    state = hass.states.get(GAS_FLOW)
    if not restored:
        assert state.state == STATE_UNKNOWN  # nothing to divide by
        return
    span = (capture.datetime - saved.last.at).total_seconds()
    assert span == state.attributes["interval"] == 300
    expected = (capture.value - saved.last.value) * 3600 / Decimal(span)
    assert float(state.state) == pytest.approx(float(expected))
