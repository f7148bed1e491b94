"""Registers (energy, gas, water, counters) through the entities: zeros are values, a register
that goes down is held until it is a new cycle, and a growing register is written once per
statistics period (the rules themselves, without Home Assistant: tests/test_policy.py).

The statistics test records with Home Assistant's own recorder; time is HA's clock moved
ahead (ticking, so the sockets and the event loop keep going).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from itertools import pairwise
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.core import Event, EventStateChangedData, HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
import pytest

from custom_components.dsmr.const import DOMAIN
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for
from .recorder_statistics import OPTIONS, T0, compile_periods, statistics
from .telegrams import ReplayMeter, dsmr5

IMPORT_1 = "sensor.electricity_meter_energy_consumption_tarif_1"
IMPORT_2 = "sensor.electricity_meter_energy_consumption_tarif_2"
EXPORT_1 = "sensor.electricity_meter_energy_production_tarif_1"
POWER = "sensor.electricity_meter_power_consumption"


def registers(import_1: str, import_2: str = "000000.000") -> str:
    """A DSMR 5 telegram: tariff 1 as given, tariff 2 and production 0 (no solar)."""
    return dsmr5(
        f"1-0:1.8.1({import_1}*kWh)",
        f"1-0:1.8.2({import_2}*kWh)",
        "1-0:2.8.1(000000.000*kWh)",
        "1-0:1.7.0(00.123*kW)",
    )


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """Where a test records, the recorder is set up before Home Assistant (as in HA's tests)."""


@pytest.fixture
async def meter(hass: HomeAssistant) -> AsyncIterator[tuple[ReplayMeter, TcpServer]]:
    replay = ReplayMeter("5", registers("001234.567"))
    server = TcpServer(replay)
    await server.start()
    yield replay, server
    for entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_zero_registers_show_zero(
    hass: HomeAssistant, meter: tuple[ReplayMeter, TcpServer]
) -> None:
    """Tariff 2 on a single-tariff meter and production without solar read 0: shown as 0.

    Core shows such registers as unknown for ever (no statistics, not selectable in the
    Energy dashboard).
    """
    await setup_meter(hass, meter[1])
    assert hass.states.get(IMPORT_2).state == "0.0"
    assert hass.states.get(EXPORT_1).state == "0.0"
    assert hass.states.get(IMPORT_1).state == "1234.567"


@pytest.mark.freeze_time(T0, tick=True)  # a ticking clock: sockets and the loop keep going
async def test_glitch_to_zero_is_held(
    freezer: FrozenDateTimeFactory, hass: HomeAssistant, meter: tuple[ReplayMeter, TcpServer]
) -> None:
    """A meter that restarts sends zeros for minutes: never shown, whatever their number."""
    replay, server = meter
    freezer.move_to(T0)
    entry = await setup_meter(hass, server, OPTIONS)
    shown: list[str] = []

    def changed(event: Event[EventStateChangedData]) -> None:
        if (state := event.data["new_state"]) is not None:
            shown.append(state.state)

    hass.bus.async_listen("state_changed", changed)
    replay.text = registers("000000.000")
    for minute in range(0, 59, 3):
        freezer.move_to(T0 + timedelta(minutes=minute, seconds=1))
        await send(entry, server)
        assert hass.states.get(IMPORT_1).state == "1234.567"
    replay.text = registers("001234.568")
    await send(entry, server)
    await hass.async_block_till_done()
    assert hass.states.get(IMPORT_1).state == "1234.568"
    assert [s for s in shown if s.startswith("0")] == []
    assert not ir.async_get(hass).async_get_issue(DOMAIN, f"new_cycle_{IMPORT_1}")
    assert "went down" in str(entry.runtime_data.coordinator.counters.last_error)


@pytest.mark.freeze_time(T0, tick=True)
async def test_a_lower_reading_lasting_an_hour_is_a_new_cycle(
    freezer: FrozenDateTimeFactory, hass: HomeAssistant, meter: tuple[ReplayMeter, TcpServer]
) -> None:
    replay, server = meter
    freezer.move_to(T0)
    entry = await setup_meter(hass, server, OPTIONS)
    replay.text = registers("000000.000")
    await send(entry, server)
    freezer.move_to(T0 + timedelta(minutes=59))
    await send(entry, server)
    assert hass.states.get(IMPORT_1).state == "1234.567"
    replay.text = registers("000000.012")  # the new cycle counts on
    freezer.move_to(T0 + timedelta(hours=1, seconds=1))
    await send(entry, server)
    await hass.async_block_till_done()
    assert hass.states.get(IMPORT_1).state == "0.012"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"new_cycle_{IMPORT_1}")
    assert issue is not None
    assert issue.translation_key == "register_new_cycle"
    assert issue.translation_placeholders == {
        "title": entry.title,
        "entity": IMPORT_1,
        "before": "1234.567 kWh",
        "after": "0.012 kWh",
    }


@pytest.mark.freeze_time(T0, tick=True)
async def test_a_lower_reading_that_does_not_move_is_a_new_cycle_after_an_hour(
    freezer: FrozenDateTimeFactory, hass: HomeAssistant, meter: tuple[ReplayMeter, TcpServer]
) -> None:
    """The same line for an hour (no use on a new meter): still judged on every telegram."""
    replay, server = meter
    freezer.move_to(T0)
    entry = await setup_meter(hass, server, OPTIONS)
    replay.text = registers("000000.000")
    await send(entry, server)
    freezer.move_to(T0 + timedelta(minutes=59))
    await send(entry, server)
    assert hass.states.get(IMPORT_1).state == "1234.567"
    freezer.move_to(T0 + timedelta(hours=1, seconds=1))
    await send(entry, server)
    await hass.async_block_till_done()
    assert hass.states.get(IMPORT_1).state == "0.0"


async def test_a_replaced_meter_starts_its_registers_at_once(
    hass: HomeAssistant, meter: tuple[ReplayMeter, TcpServer]
) -> None:
    replay, server = meter
    entry = await setup_meter(hass, server, OPTIONS)
    await server.drop_clients()
    await server.wait_for_clients(1, timeout=10)
    replay.text = dsmr5("1-0:1.8.1(000001.000*kWh)", ident="4530303435303031363238353137313136")
    await send(entry, server)
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator.replaced
    assert hass.states.get(IMPORT_1).state == "1.0"
    assert not ir.async_get(hass).async_get_issue(DOMAIN, f"new_cycle_{IMPORT_1}")


@pytest.mark.freeze_time(T0, tick=True)
async def test_glitch_to_zero_leaves_the_sum_unchanged(
    freezer: FrozenDateTimeFactory,
    recorder_mock: Recorder,
    hass: HomeAssistant,
    meter: tuple[ReplayMeter, TcpServer],
) -> None:
    """Ten minutes of zeros from a restarting meter: the long-term sum only has real use.

    And a register that truly reads 0 (tariff 2 of a single-tariff meter) has statistics.
    """
    replay, server = meter
    entry = await setup_meter(hass, server, OPTIONS)
    readings = {2: "001234.567", **dict.fromkeys(range(4, 15), "000000.000")}
    readings |= {15: "001234.568", 17: "001234.570"}
    for minute, reading in sorted(readings.items()):
        freezer.move_to(T0 + timedelta(minutes=minute))
        replay.text = registers(reading)
        await send(entry, server)
    freezer.move_to(T0 + timedelta(hours=1, minutes=1))
    await compile_periods(hass, T0, T0 + timedelta(hours=1))
    assert await hass.config_entries.async_unload(entry.entry_id)

    stats = await statistics(hass, {IMPORT_1, IMPORT_2}, "5minute")
    sums = [row["sum"] for row in stats[IMPORT_1]]
    assert sums == sorted(sums)  # never down, and
    assert sums[-1] == pytest.approx(0.003)  # 1234.567 -> 1234.570, no 1234 kWh spike
    hourly = await statistics(hass, {IMPORT_1, IMPORT_2}, "hour")
    assert [row["sum"] for row in hourly[IMPORT_1]] == [pytest.approx(0.003)]
    assert [(row["state"], row["sum"]) for row in hourly[IMPORT_2]] == [(0.0, 0.0)]


async def test_registers_written_once_per_statistics_period(hass: HomeAssistant) -> None:
    """With an update window, a growing register is written in each 5-minute period's last
    window (by the meter's clock): the value long-term statistics take at every period's end is
    the meter's, with one write per period instead of one per window. Power: every window."""
    server = TcpServer(Meter("5", seed=6), step_seconds=10.0)  # a telegram per 10 meter seconds
    await server.start()
    try:
        entry = await setup_meter(hass, server, {"time_between_update": 0.001})
        tariffs = {
            name: f"sensor.electricity_meter_energy_consumption_tarif_{name[-1]}"
            for name in ("ELECTRICITY_USED_TARIFF_1", "ELECTRICITY_USED_TARIFF_2")
        }
        sent: list[tuple[int, dict[str, float], dict[str, float]]] = []
        power_written = 0
        for _ in range(95):  # meter time: about 16 minutes, 4 periods started
            await asyncio.sleep(0.005)  # past the (tiny) window: every telegram is published
            await send(entry, server)
            values = server.last_rendered.values
            period = int(server.meter.now.timestamp() // 300)
            sent.append(
                (
                    period,
                    {name: float(values[name]) for name in tariffs},
                    {
                        name: float(hass.states.get(entity).state)
                        for name, entity in tariffs.items()
                    },
                )
            )
            power_written += float(hass.states.get(POWER).state) == float(
                values["CURRENT_ELECTRICITY_USAGE"]
            )
        assert power_written == 95
        periods = sorted({period for period, _, _ in sent})
        for name in tariffs:
            changes = sum(a[1][name] != b[1][name] for a, b in pairwise(sent))
            writes = sum(a[2][name] != b[2][name] for a, b in pairwise(sent))
            if changes == 0:
                continue  # this tariff was not in use
            assert changes > 2 * len(periods)  # the register moved nearly every telegram ...
            assert writes <= len(periods)  # ... and was written once per period
            for period in periods[:-1]:  # every finished period ends on the meter's value
                _, meter, shown = [item for item in sent if item[0] == period][-1]
                assert shown[name] == meter[name], (name, period)
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_lowering_precision_is_not_a_decrease(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=10))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        tariff = "sensor.electricity_meter_energy_consumption_tarif_1"
        hass.config_entries.async_update_entry(entry, data={**entry.data, "precision": 1})
        assert await hass.config_entries.async_reload(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server)
        expected = round(float(server.last_rendered.values["ELECTRICITY_USED_TARIFF_1"]), 1)
        assert float(hass.states.get(tariff).state) == expected
        assert (
            entry.runtime_data.coordinator.counters.last_error is None
            or "went down" not in entry.runtime_data.coordinator.counters.last_error
        )
        device = dr.async_get(hass).async_get_device_by_identifier(
            ("dsmr", entry.data["serial_id"]), entry.entry_id
        )
        assert device.serial_number == server.meter.equipment_id  # readable, not hex
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()
