"""The M-Bus sub-meters' entities: devices that appear later, and the gas and water flows (the
simulator over TCP into Home Assistant); a restart keeps a flow from the coordinator's store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.p1.flow_rate import Capture, FlowState
from custom_components.dsmr.p1.snapshot import Snapshot, Window, flow_key
from custom_components.dsmr.submeters import GAS_FLOW as GAS_FLOW_DESCRIPTION, WATER_FLOW, flow
from dsmr_sim import Meter
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, validated, wait_for

GAS_FLOW = "sensor.gas_meter_gas_flow"
WATER_FLOW_ID = "sensor.water_meter_water_flow"
JANUARY = datetime(2024, 1, 15, 17, 2)


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


def with_flows(flows: dict[str, FlowState]) -> Snapshot:
    """A published snapshot (of an empty telegram) with these flows."""
    window = Window("5", ())
    window.add(Telegram())
    published = window.publish(None, 0.0, fresh=True, replaced=False)
    return dataclasses.replace(published, flows=flows)


def test_a_flow_in_its_descriptions_unit_with_its_interval_and_reading_time() -> None:
    at = datetime(2024, 1, 15, 16, tzinfo=UTC)
    state = FlowState(Capture(at, Decimal("1.5")), m3h=0.6, interval_s=3600.0)
    snapshot = with_flows({"mbus G1": state})
    gas, water = flow(GAS_FLOW_DESCRIPTION, "mbus G1"), flow(WATER_FLOW, "mbus G1")
    assert gas.value_fn(snapshot) == 0.6
    assert water.value_fn(snapshot) == pytest.approx(10.0)  # L/min
    assert water.value_fn(with_flows({"mbus G1": FlowState()})) is None
    assert water.value_fn(with_flows({})) is None  # no flow (yet) under that key
    assert gas.attributes_fn is not None  # (the entity shows the time in local time)
    assert gas.attributes_fn(snapshot) == {"interval": 3600.0, "reading_at": at}
    assert gas.attributes_fn(with_flows({})) == {"interval": None, "reading_at": None}


async def test_mbus_device_appearing_later_is_added_and_remembered(hass: HomeAssistant) -> None:
    without = TcpServer(Meter("5", seed=2, mbus=()))
    await without.start()
    port = without.port
    entry = await setup_meter(hass, without)
    devices = dr.async_get(hass)
    assert len(dr.async_entries_for_config_entry(devices, entry.entry_id)) == 1
    await without.stop()
    # The same meter, now with a gas and a water meter connected (channels 1 and 2).
    with_mbus = TcpServer(Meter("5", seed=2, mbus=("gas", "water")), port=port)
    await with_mbus.start()
    try:
        await wait_for(lambda: entry.runtime_data.connection.connected, timeout=10)
        await send(entry, with_mbus, 2)  # a new sub-meter: named by two telegrams in a row
        await hass.async_block_till_done()
        names = sorted(d.name for d in dr.async_entries_for_config_entry(devices, entry.entry_id))
        assert names == ["Electricity Meter", "Gas Meter", "Water Meter"]
        gas = hass.states.get("sensor.gas_meter_gas_consumption")
        assert gas.attributes["unit_of_measurement"] == "m³"
        water = hass.states.get("sensor.water_meter_water_consumption")
        assert float(water.state) > 0
        assert len(entry.data["mbus_devices"]) == 2
        # After a reload they exist at once, before any telegram.
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        state = hass.states.get("sensor.water_meter_water_consumption")
        assert state is not None
        assert "restored" not in state.attributes
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await with_mbus.stop()


async def test_flow_entities(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    servers: list[BaseServer],
    snapshot: SnapshotAssertion,
) -> None:
    meter = Meter(
        "5", seed=5, start=JANUARY, appliances=True, mbus=("gas", "water"), mbus_interval=300
    )
    server = await serve(servers, meter, 60)
    entry = await setup_meter(hass, server)
    assert hass.states.get(GAS_FLOW) is None  # a sub-meter named by one telegram: none yet
    await send(entry, server, 10)
    assert_entities(hass, snapshot, GAS_FLOW, WATER_FLOW_ID)
    registry = er.async_get(hass)
    telegram = TelegramParser(meter.telegram_specification()).parse(meter.telegram())
    for channel, entity_id, reading in (
        (1, GAS_FLOW, "sensor.gas_meter_gas_consumption"),
        (2, WATER_FLOW_ID, "sensor.water_meter_water_consumption"),
    ):
        reading_id = registry.async_get(reading).unique_id
        assert registry.async_get(entity_id).unique_id == f"{reading_id}_flow"
        device = telegram.get_mbus_device_by_channel(channel)
        assert reading_id == device.MBUS_EQUIPMENT_IDENTIFIER.value
        state = hass.states.get(entity_id)
        assert state.attributes["interval"] == 300
        at = datetime.fromisoformat(state.attributes["reading_at"])
        assert at == device.MBUS_METER_READING.datetime
        # Shown, not recorded: it moves with every reading (a new attributes row each time).
        assert state.state_info is not None
        unrecorded = state.state_info["unrecorded_attributes"]
        assert "reading_at" in unrecorded
        assert "interval" not in unrecorded
    # What an unload (as a shutdown) stores for each flow: its state, as the window holds it.
    flows = entry.runtime_data.coordinator.data.flows
    assert await hass.config_entries.async_unload(entry.entry_id)
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]["flows"]
    for channel in (1, 2):
        ident = telegram.get_mbus_device_by_channel(channel).MBUS_EQUIPMENT_IDENTIFIER.value
        key = flow_key(channel, ident)
        assert FlowState.from_dict(stored[key]) == flows[key]


def arrival_after_a_capture(meter: Meter, step: float) -> tuple[int, Any]:
    """Telegrams (one per `step`) until one carries a new gas capture, the one before known.

    Returns how many telegrams came before that one, and the gas flow's state after them.
    """
    parser = TelegramParser(meter.telegram_specification())
    window, stamps = Window("5", ()), []
    while True:
        meter.step(step)
        telegram = parser.parse(meter.telegram(), throw_ex=True)
        stamp = telegram.get_mbus_device_by_channel(1).MBUS_METER_READING.datetime
        if len(set(stamps)) >= 2 and stamp != stamps[-1]:
            gas = telegram.get_mbus_device_by_channel(1).MBUS_EQUIPMENT_IDENTIFIER.value
            return len(stamps), window.flows[flow_key(1, gas)]
        stamps.append(stamp)
        window.add(telegram)


@pytest.mark.parametrize("restored", [True, False])
async def test_a_restart_keeps_the_last_reading_and_its_time(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    servers: list[BaseServer],
    restored: bool,
) -> None:
    def gas_meter() -> Meter:
        return Meter("5", seed=5, start=JANUARY, appliances=True, mbus=("gas",), mbus_interval=300)

    # Home Assistant stopped on the telegram before a new capture; it starts again on that one.
    before, saved = arrival_after_a_capture(gas_meter(), 10)
    assert saved.last is not None and saved.m3h is not None
    meter = gas_meter()
    for _ in range(before - 1):
        meter.step(10)  # validation sends telegram `before`, the entry's first is the next
    parser = TelegramParser(meter.telegram_specification())
    gas = parser.parse(meter.telegram()).get_mbus_device_by_channel(1)
    ident = gas.MBUS_EQUIPMENT_IDENTIFIER.value
    known = [{"channel": 1, "type": 3, "id": ident, "unit": "m3"}]
    server = await serve(servers, meter, 10)
    data = await validated(server, mbus_devices=known)
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=data,
        unique_id=data["serial_id"],
        options={"time_between_update": 0},
    )
    if restored:  # what the coordinator stored at the last shutdown
        key = f"{DOMAIN}.{entry.entry_id}"
        hass_storage[key] = {
            "version": 1,
            "minor_version": 1,
            "key": key,
            "data": {"flows": {flow_key(1, ident): saved.as_dict()}},
        }
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
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
