"""The benchmark's recorder section on a tiny run: one Home Assistant, six minutes of meter time.

Real parts throughout: a worker process (`python -m dsmr_bench.worker ours --meter-clock`) with
the recorder on a SQLite file, our integration set up through its config entry, the simulator
on TCP. No timing is asserted; what is checked is that the clocks, the database measurement and
the statistics comparison still work against the installed Home Assistant.
"""

from __future__ import annotations

import math

from dsmr_bench import report
from dsmr_bench.dbgrowth import HOUR, START, Recorded, compare, per_hour
from dsmr_bench.meterclock import MeterClock, MeterClockLoop, advance_to

PERIOD = 300


def test_advance_fires_each_timer_at_its_own_time() -> None:
    """Timers due before the new time fire in order, each at its own time, then the clock stops."""
    clock = MeterClock(wall=1_000_000.0)
    loop = MeterClockLoop(clock)
    fired: list[tuple[str, float, float]] = []

    async def run() -> float:
        start_loop, start_wall = loop.time(), clock.wall_time()
        for name, delay in (("late", 70.0), ("early", 30.0), ("after", 200.0)):
            loop.call_later(
                delay,
                lambda name=name: fired.append(
                    (name, loop.time() - start_loop, clock.wall_time() - start_wall)
                ),
            )
        assert await advance_to(clock, start_wall + 100) == 0.0
        assert await advance_to(clock, start_wall + 50) > 0  # never back: reports how far ahead
        return clock.wall_time() - start_wall

    try:
        moved = loop.run_until_complete(run())
    finally:
        loop.close()
    assert [name for name, _, _ in fired] == ["early", "late"]
    for (_, at_loop, at_wall), due in zip(fired, (30.0, 70.0), strict=True):
        assert due <= at_loop < due + 1 and due <= at_wall < due + 1
    assert 100 <= moved < 101


async def test_recorder_section_on_a_tiny_run() -> None:
    hour = START + 10 * 60  # 13:00 in Amsterdam
    keys = [("defaults", "ours")]
    async with Recorded(keys, start=hour - PERIOD - 30) as run:
        await run.stream(until=hour + 40, measured_from=hour - PERIOD)
        sizes = await run.sizes(hour - PERIOD, hour)
        hourly = await run.hourly(hour - HOUR, hour)
    measured = sizes[keys[0]]
    tables = measured["tables"]
    assert tables["states"]["in_span"] > 0
    assert tables["statistics_short_term"]["in_span"] > 0  # the period 12:55-13:00, compiled
    assert tables["statistics"]["in_span"] == 0  # the hour 12:00-13:00 starts before the span
    assert measured["span_bytes"]["states"] > 0
    assert 0 < measured["span_bytes"]["total"] < sum(t["bytes"] for t in tables.values())
    side = per_hour(measured, 1)
    assert side["states_per_hour"]  # by entity id
    assert run.telegrams[0][0] == hour - PERIOD - 29

    statistics = hourly[keys[0]]
    power = next(
        rows for uid, rows in statistics.items() if uid.endswith("_current_electricity_usage")
    )
    assert power[0]["start"] == hour - HOUR and power[0]["mean"] > 0
    compared = compare(statistics, statistics, run.telegrams, [hour - HOUR], 30.0)
    # The first hour of the database has no hour before it: its sum change is not compared.
    assert compared["energy"] and compared["missing"] == len(compared["energy"])
    assert compared["max_state_diff"] == 0.0 and not compared["energy_equal"]
    assert not math.isnan(compared["power"][0]["true"])

    sides = {"ours": side | {"statistic_ids": len(statistics)}}
    sides["core"] = sides["ours"]
    rows = report.recorder_rows(
        {
            "hours": 1,
            "ahead_s": run.ahead,
            "defaults": sides | {"statistics": compared},
            "0 s window": sides | {"statistics": compared},
        }
    )
    assert rows[0][3] == "1.00x"


def _rows(states: list[float], sums: list[float], mean: float) -> dict[str, list[dict[str, float]]]:
    return {
        "m_electricity_used_tariff_1": [
            {"start": n * HOUR, "state": state, "sum": total}
            for n, (state, total) in enumerate(zip(states, sums, strict=True))
        ],
        "m_current_electricity_usage": [{"start": n * HOUR, "mean": mean} for n in range(2)],
    }


def test_compare_allows_one_window_of_energy_and_two_percent_of_mean_power() -> None:
    telegrams = [(HOUR + second, 1.0, 0.0) for second in range(HOUR)]  # 1 kW all hour
    core = _rows([10.0, 11.0], [0.0, 1.0], 1.0)
    # One 30 s window at 1 kW is 0.008 kWh; with a telegram and the precision, 0.0099.
    close = compare(_rows([10.0, 10.992], [0.0, 0.992], 1.015), core, telegrams, [HOUR], 30.0)
    assert close["energy_equal"] and close["power_equal"]
    assert math.isclose(close["max_state_diff"], 0.008) and math.isclose(
        close["max_sum_diff"], 0.008
    )
    far = compare(_rows([10.0, 10.98], [0.0, 0.98], 1.03), core, telegrams, [HOUR], 30.0)
    assert not far["energy_equal"] and not far["power_equal"]
    every = compare(_rows([10.0, 10.992], [0.0, 0.992], 1.0), core, telegrams, [HOUR], 0.0)
    assert not every["energy_equal"]  # with a 0 s window both write the hour's last telegram
