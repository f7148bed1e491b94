"""Zeros are values; a register that goes down is held until it is a new cycle (cycles.py).

The statistics test records with Home Assistant's own recorder; time is HA's clock moved
ahead (ticking, so the sockets and the event loop keep going).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.core import Event, EventStateChangedData, HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.policy import NEW_CYCLE_AFTER, DecreaseHold, Verdict
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter
from .statistics import OPTIONS, T0, compile_periods, statistics
from .telegrams import ReplayMeter, dsmr5

IMPORT_1 = "sensor.electricity_meter_energy_consumption_tarif_1"
IMPORT_2 = "sensor.electricity_meter_energy_consumption_tarif_2"
EXPORT_1 = "sensor.electricity_meter_energy_production_tarif_1"


def registers(import_1: str, import_2: str = "000000.000") -> str:
    """A DSMR 5 telegram: tariff 1 as given, tariff 2 and production 0 (no solar)."""
    return dsmr5(
        f"1-0:1.8.1({import_1}*kWh)",
        f"1-0:1.8.2({import_2}*kWh)",
        "1-0:2.8.1(000000.000*kWh)",
        "1-0:1.7.0(00.123*kW)",
    )


def test_hold_verdicts() -> None:
    hold = DecreaseHold()
    assert hold.verdict(None, 0.0, T0) is Verdict.SHOW  # a first value, zero or not
    assert hold.verdict(0.0, 0.0, T0) is Verdict.SHOW  # a register that only ever read 0
    assert hold.verdict(10.0, 10.5, T0) is Verdict.SHOW
    assert hold.verdict(10.0, 0.0, T0) is Verdict.HOLD
    assert hold.verdict(10.0, 0.0, T0 + NEW_CYCLE_AFTER - timedelta(seconds=1)) is Verdict.HOLD
    assert hold.verdict(10.0, 0.0, T0 + NEW_CYCLE_AFTER) is Verdict.NEW_CYCLE
    assert hold.since is None
    # A lower reading that comes back is forgotten; the next one is held afresh.
    assert hold.verdict(10.0, 9.0, T0) is Verdict.HOLD
    assert hold.verdict(10.0, 10.0, T0 + timedelta(minutes=30)) is Verdict.SHOW
    assert hold.verdict(10.0, 9.0, T0 + NEW_CYCLE_AFTER) is Verdict.HOLD
    # A replaced meter starts its own registers: shown at once.
    assert hold.verdict(10.0, 1.0, T0, replaced=True) is Verdict.SHOW


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
    assert entry.runtime_data.coordinator.meter_replaced
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
