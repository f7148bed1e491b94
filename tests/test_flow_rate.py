"""Gas and water flow from M-Bus captures: simulated days through real telegrams, no HA."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
import itertools
import json
from zoneinfo import ZoneInfo

import pytest

from custom_components.dsmr.p1.flow_rate import (
    Capture,
    Filed,
    FlowState,
    file_hourly,
    update_flow,
)
from dsmr_sim import Meter

from .simulated import MbusReading, mbus_capture, mbus_readings

BRUSSELS = ZoneInfo("Europe/Brussels")
T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def run(readings: list[MbusReading], state: FlowState | None = None) -> list[FlowState]:
    states = []
    for reading in readings:
        state = update_flow(state, reading.at, reading.value, reading.now)
        states.append(state)
    return states


def intervals(readings: list[MbusReading]) -> list[tuple[MbusReading, MbusReading]]:
    """Consecutive distinct captures (previous, next), from the telegrams that carried them."""
    firsts = [r for i, r in enumerate(readings) if i == 0 or r.at != readings[i - 1].at]
    return list(itertools.pairwise(firsts))


def at_new_captures(
    readings: list[MbusReading], states: list[FlowState]
) -> list[tuple[MbusReading, FlowState]]:
    return [
        (r, s)
        for i, (r, s) in enumerate(zip(readings, states, strict=True))
        if i and r.at != readings[i - 1].at
    ]


def expected_m3h(before: MbusReading, after: MbusReading) -> float:
    assert before.at is not None and after.at is not None
    assert before.value is not None and after.value is not None
    seconds = Decimal((after.at - before.at).total_seconds())
    return float((after.value - before.value) * 3600 / seconds)


@pytest.mark.parametrize(
    ("version", "kind", "interval", "offset", "day"),
    [
        ("5", "gas", 300, 0, datetime(2024, 1, 15)),  # DSMR 5: every 5 minutes, on the 5
        ("5B", "water", 300, 171, datetime(2024, 1, 15)),  # Belgian: 5 min at odd seconds
        ("4", "water", 3600, 0, datetime(2024, 7, 15)),  # DSMR 4: hourly
    ],
)
def test_flow_is_the_volume_between_captures_over_their_stamps(
    version: str, kind: str, interval: int, offset: int, day: datetime
) -> None:
    meter = Meter(
        version,
        seed=7,
        start=day,
        mbus=(kind,),
        appliances=True,
        mbus_interval=interval,
        mbus_offset=offset,
    )
    name = "HOURLY_GAS_METER_READING" if version == "4" else "MBUS_METER_READING"
    # A telegram every 13 s: captures reach Home Assistant some seconds after their stamps.
    readings = list(mbus_readings(meter, 86400 + 13, step=13, capture=mbus_capture(1, name)))
    states = run(readings)
    new = at_new_captures(readings, states)
    assert len(new) == 86400 // interval
    zeros = moving = 0
    for (before, after), (reading, state) in zip(intervals(readings), new, strict=True):
        assert reading is after
        assert state.m3h == pytest.approx(expected_m3h(before, after), rel=1e-12, abs=0)
        assert state.interval_s == interval
        zeros += state.m3h == 0
        moving += state.m3h > 0
    # The boiler (or the taps) rest for hours at night and run by day.
    assert zeros >= 3 and moving >= 3
    # Between captures the flow of the last interval stands.
    for previous, state in itertools.pairwise(states):
        if state.last == previous.last:
            assert state.m3h == previous.m3h


def test_a_shower() -> None:
    """40 L in 5 min: 0.48 m³/h (8 L/min, as the water flow entity shows it)."""
    state = FlowState()
    for minutes, value in ((0, "10.000"), (5, "10.040")):
        state = update_flow(
            state, T0 + timedelta(minutes=minutes), Decimal(value), T0 + timedelta(minutes=minutes)
        )
    assert state.m3h == pytest.approx(0.48)
    assert state.m3h * 1000 / 60 == pytest.approx(8.0)


def test_zero_one_capture_after_the_reading_stops_moving() -> None:
    state = None
    for minutes, value in ((0, "100.000"), (5, "100.050"), (10, "100.050")):
        at = T0 + timedelta(minutes=minutes)
        state = update_flow(state, at, Decimal(value), at + timedelta(seconds=20))
        if minutes == 5:
            assert state.m3h == pytest.approx(0.6)
    assert state is not None and state.m3h == 0 and state.interval_s == 300


@pytest.mark.parametrize(
    ("start", "stamps"),
    [
        (datetime(2024, 3, 31, 1, 30), {"W", "S"}),  # 02:00 CET becomes 03:00 CEST
        (datetime(2024, 10, 27, 1, 30), {"S", "W"}),  # 02:00-03:00 happens twice
    ],
)
def test_dst_days_keep_five_minute_intervals(start: datetime, stamps: set[str]) -> None:
    meter = Meter("5", seed=3, start=start, mbus=("gas",), appliances=True, mbus_interval=300)
    texts = set()
    readings = []
    for reading in mbus_readings(meter, 3 * 3600, step=30):
        readings.append(reading)
        texts.add(meter.telegram().split("0-1:24.2.1(")[1][12])
    assert texts == stamps
    states = run(readings)
    new = at_new_captures(readings, states)
    assert len(new) == 3 * 12
    for (before, after), (_, state) in zip(intervals(readings), new, strict=True):
        assert state.interval_s == 300  # never 300 - 3600 or 300 + 3600
        assert state.m3h == pytest.approx(expected_m3h(before, after), rel=1e-12)
    assert all(s.m3h is not None for s in states[12:])


def test_dsmr_2_2_stamps_without_flag_give_no_spike_on_the_repeated_hour() -> None:
    """DSMR 2.2's gas stamp has no S/W flag: 02:00 CET reads as 02:00 CEST, an hour early."""
    meter = Meter("2.2", seed=5, start=datetime(2024, 10, 27, 0, 30), appliances=True)
    readings = list(mbus_readings(meter, 5 * 3600, step=60, capture=lambda t: t.GAS_METER_READING))
    states = run(readings)
    hourly = [(r.at.hour, s.m3h, s.interval_s) for r, s in at_new_captures(readings, states)]
    repeated = next(i for i, r in enumerate(readings) if r.now.hour == 1)  # 02:00 CET
    assert readings[repeated].at == readings[repeated - 1].at  # the same stamp, read again
    assert readings[repeated].value != readings[repeated - 1].value
    assert states[repeated].m3h is None  # a new value under an old stamp: unknown
    # 03:00 CET is two hours after the stamp it follows, by the meter's own clock one: unknown.
    assert hourly[2] == (2, None, None)
    assert all(m3h is not None and interval == 3600 for _, m3h, interval in hourly[:2])
    assert all(m3h is not None and interval == 3600 for _, m3h, interval in hourly[3:])


def test_a_restart_restores_the_last_capture() -> None:
    meter = Meter(
        "5",
        seed=9,
        start=datetime(2024, 1, 16, 7, 0),
        mbus=("gas",),
        appliances=True,
        mbus_interval=300,
    )
    readings = list(mbus_readings(meter, 4 * 3600, step=10))
    states = run(readings)
    cut = next(i for i, r in enumerate(readings) if r.now.minute == 32)
    stored = json.loads(json.dumps(states[cut].as_dict()))
    restored = FlowState.from_dict(stored)
    assert restored == states[cut]
    # Home Assistant down for 2 minutes: the next capture still gives the flow of its interval.
    short = run(readings[cut + 12 :], restored)
    assert short[-1] == states[-1]
    first = next(s for s in short if s.last != restored.last)
    assert first.m3h is not None and first.interval_s == 300
    # Down for 40 minutes: the first capture after it gives no flow (unless nothing moved).
    long = run(readings[cut + 240 :], restored)
    first = next(s for s in long if s.last != restored.last)
    gap = (first.last.at - restored.last.at).total_seconds() if first.last else 0
    assert gap >= 2400
    moved = first.last is not None and first.last.value != restored.last.value
    assert first.m3h is None if moved else first.m3h == 0
    assert long[-1].m3h == states[-1].m3h  # and from the next capture on, as before


def test_flow_unknown_when_the_sub_meter_goes_silent() -> None:
    state = None
    for minutes, value in ((0, "5.000"), (5, "5.010")):
        at = T0 + timedelta(minutes=minutes)
        state = update_flow(state, at, Decimal(value), at + timedelta(seconds=3))
    assert state is not None and state.m3h == pytest.approx(0.12)
    last = T0 + timedelta(minutes=5)
    for seconds in range(10, 660, 10):  # the same capture, telegram after telegram
        state = update_flow(state, last, Decimal("5.010"), last + timedelta(seconds=seconds))
    assert state.m3h == pytest.approx(0.12)  # 2 intervals + 1 min after it arrived: not yet
    state = update_flow(state, last, Decimal("5.010"), last + timedelta(seconds=664))
    assert state.m3h is None and state.last is not None
    state = update_flow(state, None, None, last + timedelta(seconds=700))
    assert state.m3h is None
    state = update_flow(state, last + timedelta(minutes=5), Decimal("5.020"), None)
    assert state.m3h == pytest.approx(0.12)  # it speaks again: the flow of that interval


def stream(*captures: tuple[float, str, float]) -> FlowState:
    """Feed (capture minute, value, telegram minute) in order; the final state."""
    state = None
    for at_min, value, now_min in captures:
        state = update_flow(
            state,
            T0 + timedelta(minutes=at_min),
            Decimal(value),
            T0 + timedelta(minutes=now_min),
        )
    assert state is not None
    return state


def test_meter_clock_steps_give_unknown_not_spikes() -> None:
    # The gas meter's clock steps back 10 minutes, then runs on.
    back = stream((0, "1.000", 0.1), (5, "1.010", 5.1), (-5, "1.020", 10.1))
    assert back.m3h is None and back.last is not None and back.last.value == Decimal("1.020")
    again = update_flow(back, T0, Decimal("1.030"), T0 + timedelta(minutes=15.1))
    assert again.m3h == pytest.approx(0.12)
    # It jumps a day ahead: the electricity meter saw 5 minutes pass, not a day.
    ahead = stream((0, "1.000", 0.1), (5, "1.010", 5.1), (5 + 1440, "1.020", 10.1))
    assert ahead.m3h is None
    # A gas meter clock that is simply 4 minutes fast is no step: intervals agree.
    fast = stream((4, "1.000", 0.3), (9, "1.010", 5.2), (14, "1.022", 10.1))
    assert fast.m3h == pytest.approx(0.144)
    # A capture that arrives late (radio retry) is within the clocks' slack.
    late = stream((0, "1.000", 0.1), (5, "1.010", 5.9), (10, "1.020", 10.1))
    assert late.m3h == pytest.approx(0.12)
    # Two minutes back on a 5-minute meter would read 67 % too much: unknown instead.
    short = stream((0, "1.000", 0.1), (5, "1.010", 5.1), (8, "1.020", 10.1))
    assert short.m3h is None
    # Forty minutes ahead on an hourly meter (no gap yet) would read a third too little.
    hourly = stream((0, "1.000", 0.1), (60, "1.060", 60.1), (160, "1.120", 120.1))
    assert hourly.m3h is None
    assert update_flow(
        hourly, T0 + timedelta(minutes=220), Decimal("1.180"), T0 + timedelta(minutes=180.1)
    ).m3h == pytest.approx(0.06)


def test_bad_reads_restart_counting() -> None:
    down = stream((0, "1.000", 0.1), (5, "1.010", 5.1), (10, "0.990", 10.1))
    assert down.m3h is None  # a register that goes down: a bad read or a new meter
    restamped = update_flow(down, T0 + timedelta(minutes=10), Decimal("0.995"), None)
    assert restamped.m3h is None and restamped.last is not None
    assert restamped.last.value == Decimal("0.995")
    assert update_flow(restamped, T0 + timedelta(minutes=10), None, None) == restamped


def test_cadence_follows_a_meter_that_captures_less_often() -> None:
    every_5 = stream(*((m, f"{1 + m / 1000:.3f}", m + 0.1) for m in range(0, 30, 5)))
    assert every_5.cadence_s == 300
    first_hour = update_flow(
        every_5, T0 + timedelta(minutes=85), Decimal("1.100"), T0 + timedelta(minutes=85.1)
    )
    assert first_hour.m3h is None and first_hour.cadence_s == 3600  # a gap, then hourly
    second = update_flow(
        first_hour, T0 + timedelta(minutes=145), Decimal("1.160"), T0 + timedelta(minutes=145.1)
    )
    assert second.m3h == pytest.approx(0.06) and second.interval_s == 3600
    nothing_moved = update_flow(
        second, T0 + timedelta(hours=30), Decimal("1.160"), T0 + timedelta(hours=30)
    )
    assert nothing_moved.m3h == 0  # across a gap, an unmoved reading is an exact zero


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {},
        {"value": "1.5"},  # no stamp
        {"value": "1.5", "at": "2024-01-15T10:00:00"},  # naive stamp
        {"value": "x", "at": "2024-01-15T10:00:00+00:00"},
        {"value": "1.5", "at": "2024-01-15T10:00:00+00:00", "m3h": "fast"},
        {"value": "1.5", "at": "2024-01-15T10:00:00+00:00", "cadence_s": True},
    ],
)
def test_damaged_restore_data_starts_afresh(stored: dict[str, object] | None) -> None:
    assert FlowState.from_dict(stored) == FlowState()


def test_restore_round_trip_keeps_everything() -> None:
    state = FlowState(Capture(T0, Decimal("12.345"), T0 + timedelta(seconds=12)), 0.5, 300.0, 300.0)
    assert FlowState.from_dict(json.loads(json.dumps(state.as_dict()))) == state
    unseen = replace(state, last=Capture(T0, Decimal("1"), None), m3h=None)
    assert FlowState.from_dict(unseen.as_dict()) == unseen
    assert FlowState.from_dict(FlowState().as_dict()) == FlowState()


def filed(*captures: tuple[int, str, str | None]) -> list[tuple[str, str, str]]:
    """Rows written for captures (minutes after T0, reading, identifier): (hh:mm, state, sum)."""
    state: Filed | None = None
    rows = []
    for minutes, value, ident in captures:
        state, new = file_hourly(state, T0 + timedelta(minutes=minutes), Decimal(value), ident)
        rows += [(h.strftime("%H:%M"), f"{v:.3f}", f"{t:.3f}") for h, v, t in new]
    return rows


def test_a_capture_on_the_hour_closes_the_hour_before() -> None:
    assert filed((0, "10", "G"), (60, "11.25", "G")) == [
        ("09:00", "10.000", "0.000"),
        ("10:00", "11.250", "1.250"),
    ]


def test_an_interval_across_the_hour_is_shared_by_time() -> None:
    assert filed((55, "10", "G"), (65, "11", "G"))[1:] == [
        ("10:00", "10.500", "0.500"),
        ("11:00", "11.000", "1.000"),
    ]


def test_a_gap_over_a_week_goes_into_one_hour() -> None:
    week = 8 * 24 * 60
    assert filed((0, "10", "G"), (week, "50", "G"))[1:] == [("09:00", "50.000", "40.000")]


def test_a_lower_reading_is_held_for_an_hour_unless_the_meter_was_replaced() -> None:
    held = filed((0, "10", "G"), (5, "0", "G"), (10, "10.5", "G"))
    assert held[-1] == ("10:00", "10.500", "0.500")
    new_cycle = filed((0, "10", "G"), (5, "0", "G"), (65, "0.5", "G"))
    assert new_cycle[-1] == ("11:00", "0.500", "0.500")  # a new cycle, counted from its 0
    assert filed((0, "10", "G"), (5, "1", "H"))[-1] == ("10:00", "1.000", "0.000")
    assert filed((0, "10", "G"), (5, "500", "H"))[-1] == ("10:00", "500.000", "0.000")  # no jump


def test_a_capture_filed_already_or_stamped_earlier_writes_nothing() -> None:
    assert filed((60, "10", "G"), (60, "10", "G"), (0, "9", "G")) == [("10:00", "10.000", "0.000")]
