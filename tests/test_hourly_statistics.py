"""Sub-meter registers filed in the hours their own stamps give, with Home Assistant's recorder.

A DSMR 4 gas meter's hourly capture stamped 11:00 closes hour 10-11, though the telegram that
carries it comes minutes later; five-minute captures sum to their hour; a restart files nothing
twice; a gap is spread evenly over the hours it spans (the rules without Home Assistant:
tests/test_flow_rate.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy.validate import async_validate
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    statistics_during_period,
)

from dsmr_sim.server import BaseServer

from .helpers import send, serve, setup_meter, wait_for
from .recorder_statistics import OPTIONS
from .telegrams import GAS_ID, ReplayMeter, dsmr4, dsmr5

START = datetime(2024, 1, 15, 6, 0, tzinfo=UTC)


def gas4(stamp: str, gas_at: str, gas: str) -> str:
    """A DSMR 4 telegram at `stamp` with the gas meter's capture (`gas_at`, `gas` m³)."""
    return dsmr4(
        "1-0:1.8.1(001234.567*kWh)",
        "1-0:1.7.0(00.123*kW)",
        "0-1:24.1.0(003)",
        f"0-1:96.1.0({GAS_ID})",
        f"0-1:24.2.1({gas_at}W)({gas}*m3)",
        stamp=f"{stamp}W",
    )


def mbus5(stamp: str, gas_at: str, gas: str) -> str:
    """A DSMR 5 telegram at `stamp` with an M-Bus gas meter's five-minute capture."""
    lines = ("0-1:24.1.0(003)", f"0-1:96.1.0({GAS_ID})", f"0-1:24.2.1({gas_at}W)({gas}*m3)")
    return dsmr5("1-0:1.7.0(00.123*kW)", *lines, stamp=f"{stamp}W")


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder is set up before Home Assistant (as in Home Assistant's tests)."""


async def feed(hass: HomeAssistant, entry: MockConfigEntry, server: BaseServer) -> None:
    await send(entry, server)
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)


async def hours(hass: HomeAssistant, statistic_id: str) -> list[tuple[str, float, float]]:
    """(local start hh:mm, the hour's change, state) of each hourly row."""
    found = await hass.async_add_executor_job(
        statistics_during_period, hass, START, None, {statistic_id}, "hour"
    )
    rows, sums = found.get(statistic_id, []), [0.0]
    sums += [row["sum"] for row in rows]
    local = timedelta(hours=1)  # the meter's winter time
    return [
        (
            (datetime.fromtimestamp(row["start"], UTC) + local).strftime("%H:%M"),
            round(row["sum"] - before, 6),
            round(row["state"], 6),
        )
        for row, before in zip(rows, sums, strict=False)
    ]


async def test_an_hourly_gas_reading_is_filed_in_the_hour_it_closes(
    recorder_mock: Recorder, hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    meter = ReplayMeter("4", gas4("240115100300", "240115100000", "12785.000"))
    server = await serve(servers, meter)
    entry = await setup_meter(hass, server, OPTIONS)
    statistic = f"dsmr:{entry.entry_id.lower()}_gas"
    await feed(hass, entry, server)
    meter.text = gas4("240115110300", "240115110000", "12786.250")  # arrives minutes later
    await feed(hass, entry, server)
    assert await hours(hass, statistic) == [("09:00", 0.0, 12785.0), ("10:00", 1.25, 12786.25)]

    # A restart: the last capture comes again, then the next; nothing is filed twice.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await feed(hass, entry, server)
    meter.text = gas4("240115120300", "240115120000", "12787.000")
    await feed(hass, entry, server)
    # Home Assistant was off from 12:05 to 15:03: three hours' gas, spread over them.
    meter.text = gas4("240115150300", "240115150000", "12790.000")
    await feed(hass, entry, server)
    assert await hours(hass, statistic) == [
        ("09:00", 0.0, 12785.0),
        ("10:00", 1.25, 12786.25),
        ("11:00", 0.75, 12787.0),
        ("12:00", 1.0, 12788.0),
        ("13:00", 1.0, 12789.0),
        ("14:00", 1.0, 12790.0),
    ]
    # A glitch to zero is held back: no hour goes down, none spikes on the way back.
    meter.text = gas4("240115160300", "240115160000", "00000.000")
    await feed(hass, entry, server)
    meter.text = gas4("240115163300", "240115163000", "12790.500")
    await feed(hass, entry, server)
    assert (await hours(hass, statistic))[-2:] == [
        ("15:00", 0.333333, 12790.333333),  # 15:00 to 16:30 spread over its hours
        ("16:00", 0.166667, 12790.5),
    ]


async def test_five_minute_readings_sum_to_their_hour(
    recorder_mock: Recorder, hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    meter = ReplayMeter("5", mbus5("240115100010", "240115100000", "00100.000"))
    server = await serve(servers, meter)
    entry = await setup_meter(hass, server, OPTIONS)
    await feed(hass, entry, server)  # named twice in a row: the sub-meter is made
    for step in range(1, 13):
        at = datetime(2024, 1, 15, 10, 0) + timedelta(minutes=5 * step)
        stamp = at.strftime("%y%m%d%H%M%S")
        meter.text = mbus5(stamp[:-2] + "10", stamp, f"{100 + step / 10:09.3f}")
        await feed(hass, entry, server)
        if step == 6:  # a restart within the hour: the hour's readings go on where they were
            assert await hass.config_entries.async_reload(entry.entry_id)
            await wait_for(lambda: entry.runtime_data.connection.connected)
            await feed(hass, entry, server)
    statistic = f"dsmr:{entry.entry_id.lower()}_1_gas"
    assert await hours(hass, statistic) == [("09:00", 0.0, 100.0), ("10:00", 1.2, 101.2)]

    # The Energy dashboard takes it as the gas source, and its validation finds nothing wrong.
    assert await async_setup_component(hass, "energy", {})
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update(
        {"energy_sources": [{"type": "gas", "stat_energy_from": statistic}]}  # type: ignore[typeddict-item]
    )
    assert (await async_validate(hass)).as_dict()["energy_sources"] == [[]]
