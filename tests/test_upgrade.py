"""The upgrade from releases that labelled Wh as kWh, with Home Assistant's recorder.

The recorder here is HA's own (an SQLite database); statistics are compiled period by period
as the recorder does every five minutes. Time is HA's clock moved ahead (ticking, so the
sockets and the event loop keep going), telegrams go over real TCP.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.components.recorder.statistics import get_metadata
from homeassistant.core import HomeAssistant, State
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.dsmr import upgrade
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.upgrade import Recorded, UnitUpgrade, mislabelled
from dsmr_sim.crc import with_crc
from dsmr_sim.tcp import TcpServer

from .helpers import send, wait_for
from .statistics import OPTIONS, T0, compile_periods, statistics
from .telegrams import SAGEMCOM_T210_D_R, ReplayMeter, austrian_entry

TOTAL = "sensor.electricity_meter_energy_consumption_total"
KEY = "00112233445566778899AABBCCDDEEFF"


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder is set up before Home Assistant (as in HA's own recorder tests)."""


@pytest.mark.parametrize(
    ("recorded", "label", "line_unit", "value", "expected"),
    [
        (Recorded("kWh", True, 326641.0), "kWh", "Wh", 326650.0, True),  # Wh recorded as kWh
        (Recorded("kWh", True, 326.641), "kWh", "Wh", 326650.0, False),  # real kWh: convert
        (Recorded("kWh", True, 0.0), "kWh", "Wh", 0.0, False),  # zero is zero in any unit
        (Recorded("Wh", True, 326641.0), "kWh", "Wh", 326650.0, False),  # right already
        (Recorded("kWh", True, 1.0), "kWh", "MWh", 1.0, True),  # MWh recorded as kWh
        (Recorded("kWh", True, 1000.0), "kWh", "MWh", 1.0, False),
        (Recorded("kW", False, None), "kW", "W", 286.0, True),  # a power's means: our label
        (Recorded("kWh", True, 326641.0), "kWh", "kVAh", 326650.0, False),  # not convertible
    ],
)
def test_mislabelled(
    recorded: Recorded, label: str, line_unit: str, value: float, expected: bool
) -> None:
    assert mislabelled(recorded, label, line_unit, value) is expected


class _Shown:
    """An entity's side of a `UnitUpgrade`: what it was told to show, and when it was done."""

    def __init__(self, hass: HomeAssistant, label: str | None, has_statistics: bool) -> None:
        self.entry = MockConfigEntry(domain=DOMAIN)
        self.entry.add_to_hass(hass)
        self.calls: list[object] = []
        self.upgrade = UnitUpgrade(
            label,
            has_statistics,
            self.entry,
            show=lambda unit, relabel: self.calls.append((unit, relabel, self.upgrade.pending)),
            done=lambda: self.calls.append(("done", self.upgrade.pending)),
        )


async def test_no_upgrade_without_the_recorder(hass: HomeAssistant) -> None:
    shown = _Shown(hass, "kWh", True)
    assert not shown.upgrade.needed(hass, "Wh")
    assert not shown.upgrade.pending


async def test_the_upgrade_is_needed_once_and_runs_as_a_task_of_the_entry(
    recorder_mock: Recorder, hass: HomeAssistant
) -> None:
    """No statistics recorded: the unit is shown while values wait, nothing to relabel."""
    shown = _Shown(hass, "kWh", True)
    assert not shown.upgrade.needed(hass, "kWh")  # the label's unit: nothing to upgrade
    assert shown.upgrade.needed(hass, "Wh")
    assert shown.upgrade.pending  # values wait from now on
    shown.upgrade.start(hass, TOTAL, "Wh", 326650.0)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert shown.calls == [("Wh", False, True), ("done", False)]
    assert not shown.upgrade.needed(hass, "MWh")  # checked once per start


@pytest.mark.parametrize(("label", "has_statistics"), [(None, True), ("kWh", False)])
async def test_nothing_to_upgrade(
    recorder_mock: Recorder, hass: HomeAssistant, label: str | None, has_statistics: bool
) -> None:
    """A value without a specification's unit, or without statistics, shows any unit at once."""
    shown = _Shown(hass, label, has_statistics)
    assert not shown.upgrade.needed(hass, "Wh")


def austrian(total_wh: int) -> str:
    """dsmr_parser's Sagemcom T210-D-r frame with another import total (CRC recomputed)."""
    text = SAGEMCOM_T210_D_R.replace("1-0:1.8.0(006545766*Wh)", f"1-0:1.8.0({total_wh:09d}*Wh)")
    return with_crc(text[: text.index("!") + 1])


async def _earlier_release(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, server: TcpServer, values: list[float]
) -> MockConfigEntry:
    """The entry, the entity, and 30 minutes of the meter's Wh numbers recorded as kWh."""
    assert await async_setup_component(hass, "sensor", {})  # its statistics compiler
    entry = await austrian_entry(hass, server, OPTIONS)
    attributes = {
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "state_class": "total_increasing",
    }
    for n, value in enumerate(values):
        freezer.move_to(T0 + timedelta(minutes=10 * n + 1))
        hass.states.async_set(TOTAL, str(value), attributes)
    freezer.move_to(T0 + timedelta(minutes=30, seconds=30))
    await compile_periods(hass, T0, T0 + timedelta(minutes=30))
    # Home Assistant restarts: the states are gone, the restore cache and history stay.
    hass.states.async_remove(TOTAL)
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(TOTAL, str(values[-1]), attributes),
                {"native_value": values[-1], "native_unit_of_measurement": "kWh"},
            )
        ],
    )
    return entry


async def _upgrade(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    server: TcpServer,
    meter: ReplayMeter,
    entry: MockConfigEntry,
) -> None:
    """Start this release at 11:32 on what the earlier one left; the meter sends 326650 Wh."""
    freezer.move_to(T0 + timedelta(minutes=32))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    meter.text = austrian(326650)
    await send(entry, server)
    # The entity reads the recorder (in its executor) before it shows the meter's unit.
    await wait_for(lambda: hass.states.get(TOTAL).attributes["unit_of_measurement"] == "Wh")


async def _run_on(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    server: TcpServer,
    entry: MockConfigEntry,
    meter: ReplayMeter,
) -> None:
    """The recorder compiles 11:30 at 11:35:10; the meter counts on until 11:45."""
    freezer.move_to(T0 + timedelta(minutes=35, seconds=10))
    await compile_periods(hass, T0 + timedelta(minutes=30), T0 + timedelta(minutes=35))
    freezer.move_to(T0 + timedelta(minutes=35, seconds=31))
    async_fire_time_changed(hass, dt_util.utcnow())
    await async_wait_recording_done(hass)
    for minute, total in ((37, 326660), (42, 326700)):
        freezer.move_to(T0 + timedelta(minutes=minute))
        meter.text = austrian(total)
        await send(entry, server)
    freezer.move_to(T0 + timedelta(minutes=45, seconds=10))
    await compile_periods(hass, T0 + timedelta(minutes=35), T0 + timedelta(minutes=45))


def _upgrade_tasks() -> list[asyncio.Task[Any]]:
    """The unit upgrades still running (`UnitUpgrade.start` names their tasks)."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("dsmr unit of") and not task.done()
    ]


async def _austrian_meter(servers: list[TcpServer]) -> tuple[TcpServer, ReplayMeter]:
    meter = ReplayMeter("SAGEMCOM_T210_D_R", austrian(326641), key=KEY)
    server = TcpServer(meter)
    servers.append(server)
    await server.start()
    return server, meter


@pytest.mark.freeze_time(T0, tick=True)
async def test_upgrade_relabels_statistics_recorded_as_kwh(
    freezer: FrozenDateTimeFactory,
    recorder_mock: Recorder,
    hass: HomeAssistant,
    servers: list[TcpServer],
) -> None:
    """The earlier release recorded 326641 Wh as 326641 kWh: relabelled to Wh, no spike."""
    server, meter = await _austrian_meter(servers)
    entry = await _earlier_release(hass, freezer, server, [326600.0, 326620.0, 326641.0])
    await _upgrade(hass, freezer, server, meter, entry)
    # Until the recorder has compiled this period, the new unit shows no number.
    state = hass.states.get(TOTAL)
    assert (state.state, state.attributes["unit_of_measurement"]) == ("unknown", "Wh")
    await _run_on(hass, freezer, server, entry, meter)
    state = hass.states.get(TOTAL)
    assert (state.state, state.attributes["unit_of_measurement"]) == ("326700.0", "Wh")
    assert await hass.config_entries.async_unload(entry.entry_id)

    metadata = await hass.async_add_executor_job(get_metadata, hass)
    assert metadata[TOTAL][1]["unit_of_measurement"] == "Wh"
    stats = (await statistics(hass, {TOTAL}, "5minute"))[TOTAL]
    sums = [row["sum"] for row in stats]
    # 326600 -> 326700 Wh: the history's 41 and the new 59 are all Wh now, and no spike.
    assert sums == sorted(sums)
    assert sums[-1] == pytest.approx(100)
    assert stats[-1]["state"] == pytest.approx(326700)


@pytest.mark.freeze_time(T0, tick=True)
async def test_without_relabelling_home_assistant_sees_a_new_cycle(
    freezer: FrozenDateTimeFactory,
    recorder_mock: Recorder,
    hass: HomeAssistant,
    servers: list[TcpServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What Home Assistant does with the unit change alone: converts, and counts a new cycle.

    326650 Wh becomes 326.65 kWh, a drop from 326641 "kWh": a new meter cycle, so the whole
    326.65 kWh is added to the sum in one period. This is why the upgrade relabels.
    """

    async def never(*_args: Any) -> bool:
        return False

    monkeypatch.setattr(upgrade, "async_statistics_mislabelled", never)
    server, meter = await _austrian_meter(servers)
    entry = await _earlier_release(hass, freezer, server, [326600.0, 326620.0, 326641.0])
    await _upgrade(hass, freezer, server, meter, entry)
    await _run_on(hass, freezer, server, entry, meter)
    assert await hass.config_entries.async_unload(entry.entry_id)

    metadata = await hass.async_add_executor_job(get_metadata, hass)
    assert metadata[TOTAL][1]["unit_of_measurement"] == "kWh"
    sums = [row["sum"] for row in (await statistics(hass, {TOTAL}, "5minute"))[TOTAL]]
    # The spike (statistics are returned in the entity's unit, Wh).
    assert sums[-1] == pytest.approx((41 + 326.7) * 1000)


@pytest.mark.freeze_time(T0, tick=True)
async def test_statistics_really_in_kwh_are_converted(
    freezer: FrozenDateTimeFactory,
    recorder_mock: Recorder,
    hass: HomeAssistant,
    servers: list[TcpServer],
) -> None:
    """Statistics whose kWh are real (326.641 kWh for 326641 Wh) are not relabelled.

    Home Assistant converts the new Wh states to the statistics' kWh, continuously.
    """
    server, meter = await _austrian_meter(servers)
    entry = await _earlier_release(hass, freezer, server, [326.600, 326.620, 326.641])
    await _upgrade(hass, freezer, server, meter, entry)
    state = hass.states.get(TOTAL)
    assert (state.state, state.attributes["unit_of_measurement"]) == ("326650.0", "Wh")
    await _run_on(hass, freezer, server, entry, meter)
    assert await hass.config_entries.async_unload(entry.entry_id)

    metadata = await hass.async_add_executor_job(get_metadata, hass)
    assert metadata[TOTAL][1]["unit_of_measurement"] == "kWh"
    sums = [row["sum"] for row in (await statistics(hass, {TOTAL}, "5minute"))[TOTAL]]
    assert sums == sorted(sums)
    assert sums[-1] == pytest.approx(100)  # 0.1 kWh, in the entity's unit


@pytest.mark.freeze_time(T0, tick=True)
async def test_a_restart_during_the_upgrade_finishes_it(
    freezer: FrozenDateTimeFactory,
    recorder_mock: Recorder,
    hass: HomeAssistant,
    servers: list[TcpServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Restarted while waiting for the recorder: the next start relabels all the same."""
    caplog.set_level(logging.DEBUG, "custom_components.dsmr")
    server, meter = await _austrian_meter(servers)
    entry = await _earlier_release(hass, freezer, server, [326600.0, 326620.0, 326641.0])
    await _upgrade(hass, freezer, server, meter, entry)
    assert hass.states.get(TOTAL).state == "unknown"
    assert _upgrade_tasks()  # waiting for the recorder to compile the period
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not _upgrade_tasks()  # a task of the entry: cancelled with it
    freezer.move_to(T0 + timedelta(minutes=33))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    # Decided again (before the clock moves on): the statistics still need relabelling.
    decided = f"{TOTAL}: the meter sends Wh; statistics recorded as kWh to relabel: True"
    await wait_for(lambda: caplog.text.count(decided) == 2)
    await _run_on(hass, freezer, server, entry, meter)
    assert await hass.config_entries.async_unload(entry.entry_id)

    metadata = await hass.async_add_executor_job(get_metadata, hass)
    assert metadata[TOTAL][1]["unit_of_measurement"] == "Wh"
    sums = [row["sum"] for row in (await statistics(hass, {TOTAL}, "5minute"))[TOTAL]]
    assert sums == sorted(sums)
    assert sums[-1] == pytest.approx(100)
