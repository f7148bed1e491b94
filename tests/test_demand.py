"""The quarter-hour forecast and the new-peak decision: simulated days, no Home Assistant."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
import statistics
from zoneinfo import ZoneInfo

import pytest

from custom_components.dsmr.p1.demand import (
    DEFAULT_THRESHOLD_KW,
    OFF,
    DemandReading,
    PeakAlarm,
    QuarterForecast,
    forecast_quarter,
    peak_ahead,
)
from dsmr_sim import Meter

from .simulated import demand_reading, rendered_demand

BRUSSELS = ZoneInfo("Europe/Brussels")
P1 = Path(__file__).parent.parent / "custom_components" / "dsmr" / "p1"


def at(text: str) -> datetime:
    """A Brussels local time, e.g. "2024-01-15 18:10:00", as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=BRUSSELS)


def reading(when: str, average: float, power: float, **kw: object) -> DemandReading:
    return DemandReading(at(when), average, power, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("module", ["demand.py", "flow_rate.py"])
def test_pure_modules_import_only_the_standard_library(module: str) -> None:
    tree = ast.parse((P1 / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative import: standard library only"
            imported.add(str(node.module).split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    assert imported <= {"__future__", "collections", "dataclasses", "datetime", "decimal"} | {
        "typing",
        "zoneinfo",
    }


def test_forecast_is_the_energy_so_far_plus_the_present_power_to_the_end() -> None:
    # 10 minutes in, 1.2 kW so far (per quarter), 3 kW drawn now: 1.2 + 3 * 5/15 = 2.2 kW.
    forecast = forecast_quarter(reading("2024-01-15 18:10:00", 1.2, 3.0))
    assert forecast is not None
    assert forecast.forecast_kw == pytest.approx(2.2)
    assert forecast.quarter_start == at("2024-01-15 18:00:00")
    assert forecast.quarter_end == at("2024-01-15 18:15:00")
    # In the quarter's last second it is the meter's own figure, within a second of power.
    last = forecast_quarter(reading("2024-01-15 18:14:59", 2.2, 3.0), forecast)
    assert last is not None and last.forecast_kw - 2.2 == pytest.approx(3.0 / 900)
    # Export is another register: a house feeding in imports nothing more this quarter.
    feeding = forecast_quarter(reading("2024-01-15 12:05:00", 0.4, 0.0))
    assert feeding is not None and feeding.forecast_kw == 0.4


@pytest.mark.parametrize(
    "broken",
    [
        DemandReading(None, 1.0, 1.0),  # garbled timestamp
        DemandReading(at("2024-01-15 18:10:00"), None, 1.0),
        DemandReading(at("2024-01-15 18:10:00"), 1.0, None),
        DemandReading(at("2024-01-15 18:10:00"), -0.5, 1.0),
    ],
)
def test_an_unusable_reading_gives_no_forecast_and_changes_no_decision(
    broken: DemandReading,
) -> None:
    assert forecast_quarter(broken) is None
    warned = PeakAlarm(True, 2.5, at("2024-01-15 18:09:00"), at("2024-01-15 18:09:50"))
    assert peak_ahead(forecast_quarter(broken), warned) is warned


def test_month_peak_of_completed_quarters_only() -> None:
    def peak(when: str, peak_kw: float | None, peak_at: str | None) -> float | None:
        stamp = None if peak_at is None else at(peak_at)
        forecast = forecast_quarter(reading(when, 0.5, 1.0, peak_kw=peak_kw, peak_at=stamp))
        assert forecast is not None
        return forecast.month_peak_kw

    assert peak("2024-01-20 18:10:00", 3.5, "2024-01-12 19:15:00") == 3.5
    # The month's first quarter: last month's peak (or the reset, stamped at midnight) is not
    # this month's; January's last quarter, stamped 00:00 on 1 February, is January's.
    assert peak("2024-02-01 00:10:00", 3.5, "2024-01-12 19:15:00") == 0.0
    assert peak("2024-02-01 00:10:00", 0.0, "2024-02-01 00:00:00") == 0.0
    assert peak("2024-02-01 00:10:00", 4.1, "2024-02-01 00:00:00") == 0.0
    assert peak("2024-02-01 00:20:00", 0.3, "2024-02-01 00:15:00") == 0.3
    # A meter without the line, or with a garbled stamp.
    assert peak("2024-01-20 18:10:00", None, None) is None
    assert peak("2024-01-20 18:10:00", 3.5, None) == 3.5


def test_a_peak_stamped_inside_the_running_quarter_is_this_quarter() -> None:
    """Firmware that updates 1.6.0 during the quarter (the e-MUCS example: 13:45:58)."""
    before = forecast_quarter(
        reading("2024-05-09 13:52:00", 2.0, 3.0, peak_kw=2.2, peak_at=at("2024-05-03 09:15:00"))
    )
    assert before is not None and before.month_peak_kw == 2.2
    during = forecast_quarter(
        reading("2024-05-09 13:53:58", 2.35, 3.0, peak_kw=2.35, peak_at=at("2024-05-09 13:53:58")),
        before,
    )
    assert during is not None and during.month_peak_kw == 2.2  # the peak it had to beat
    assert during.headroom_kw() == pytest.approx(2.2 - during.forecast_kw)
    started_now = forecast_quarter(
        reading("2024-05-09 13:54:10", 2.38, 3.0, peak_kw=2.38, peak_at=at("2024-05-09 13:54:10"))
    )
    assert started_now is not None and started_now.month_peak_kw == 2.38  # nothing carried
    assert peak_ahead(started_now, threshold_kw=0).on  # it has beaten the old peak already


def test_limit_and_headroom() -> None:
    forecast = forecast_quarter(
        reading("2024-01-20 18:10:00", 1.0, 3.0, peak_kw=1.5, peak_at=at("2024-01-02 08:00:00"))
    )
    assert forecast is not None and forecast.forecast_kw == pytest.approx(2.0)
    assert forecast.limit_kw() == 1.5 and forecast.headroom_kw() == pytest.approx(-0.5)
    assert forecast.limit_kw(DEFAULT_THRESHOLD_KW) == 2.5
    assert forecast.headroom_kw(DEFAULT_THRESHOLD_KW) == pytest.approx(0.5)
    no_history = replace(forecast, month_peak_kw=None)
    assert no_history.limit_kw() is None and no_history.headroom_kw() is None
    assert no_history.headroom_kw(3.0) == pytest.approx(1.0)
    assert peak_ahead(no_history, threshold_kw=0) == OFF
    assert peak_ahead(no_history, threshold_kw=1.9).on


def test_a_late_running_value_is_the_last_quarter() -> None:
    last_of_quarter = forecast_quarter(reading("2024-01-15 18:14:59", 3.1, 2.0))
    # 18:15:01: the meter still shows 3.1 kW, impossible for one second of 2 kW.
    late = forecast_quarter(reading("2024-01-15 18:15:01", 3.1, 2.0), last_of_quarter)
    assert late is not None and not late.restarted
    assert late.forecast_kw == pytest.approx(2.0)  # the present power, from the boundary on
    assert late.average_kw == pytest.approx(2.0 / 900)
    assert late.previous_quarter_kw == 3.1
    fresh = forecast_quarter(reading("2024-01-15 18:15:04", 0.009, 2.0), late)
    assert fresh is not None and fresh.restarted and fresh.previous_quarter_kw == 3.1
    assert fresh.forecast_kw == pytest.approx(0.009 + 2.0 * 896 / 900)
    # Once restarted, a quarter stays restarted; without a late value, the last reading of
    # the quarter before is the best figure for it.
    assert forecast_quarter(reading("2024-01-15 18:15:05", 0.011, 2.0), fresh).restarted
    prompt = forecast_quarter(reading("2024-01-15 18:15:01", 0.0, 2.0), last_of_quarter)
    assert prompt is not None and prompt.restarted
    assert prompt.previous_quarter_kw == pytest.approx(3.1 + 2.0 / 900)
    # After a minute a value is trusted: 9 kW for 50 s then off gives 0.5 at 18:16:05.
    kettle = forecast_quarter(reading("2024-01-15 18:16:05", 0.5, 0.1))
    assert kettle is not None and kettle.restarted


def test_quarters_by_the_meter_clock_across_dst() -> None:
    # 27 October 2024: 02:00-03:00 happens twice; each of its quarters is its own.
    summer = forecast_quarter(DemandReading(at("2024-10-27 02:20:00").replace(fold=0), 0.2, 1.0))
    winter = forecast_quarter(DemandReading(at("2024-10-27 02:20:00").replace(fold=1), 0.2, 1.0))
    assert summer is not None and winter is not None
    assert winter.quarter_start - summer.quarter_start == timedelta(hours=1)
    # A clock stepped back lands in an earlier quarter and starts it afresh.
    stepped = forecast_quarter(DemandReading(summer.at - timedelta(minutes=20), 0.1, 1.0), winter)
    assert stepped is not None and stepped.quarter_start < summer.quarter_start


# --- simulated days ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def minute_10_errors(meter: Meter, quarters: int) -> dict[str, list[float]]:
    """Per quarter: forecast at minute 10 minus the quarter's end value, and the hard bound.

    Also the two obvious alternatives: the meter's running value as it stands, and that value
    extrapolated (energy so far per elapsed time, times the quarter).
    """
    house = meter.house
    while meter.now.minute % 15 or meter.now.second:
        meter.step(10)
    out: dict[str, list[float]] = {"ours": [], "bound": [], "as_is": [], "extrapolated": []}
    for _ in range(quarters):
        meter.step(600)
        minute_10 = rendered_demand(meter)
        forecast = forecast_quarter(minute_10)
        assert forecast is not None and forecast.at.minute % 15 == 10
        power = house.import_kw
        swing = 0.0
        for _ in range(30):  # the rest of the quarter, sub-step by sub-step
            meter.step(10)
            swing = max(swing, abs(house.import_kw - power))
        assert house.last_quarter_kw is not None
        end = round(house.last_quarter_kw, 3)
        out["ours"].append(forecast.forecast_kw - end)
        # |error| <= a third of the largest power change ahead, plus rounding (3 decimals)
        # and a second of power for the timestamp's resolution.
        out["bound"].append(swing / 3 + 0.0015 + power / 900)
        assert minute_10.average_kw is not None
        out["as_is"].append(minute_10.average_kw - end)
        out["extrapolated"].append(minute_10.average_kw * 1.5 - end)
    return out


@pytest.mark.parametrize(
    ("start", "ev_kw", "median", "p90", "p99"),
    [
        (datetime(2024, 1, 8), 0.0, 0.06, 0.15, 0.8),  # winter household
        (datetime(2024, 7, 8), 0.0, 0.04, 0.15, 0.8),  # summer, solar panels
        (datetime(2024, 1, 8), 11.0, 0.06, 0.15, 2.5),  # with an 11 kW car charger
    ],
)
def test_forecast_error_at_minute_10(
    start: datetime, ev_kw: float, median: float, p90: float, p99: float
) -> None:
    """Error at minute 10 against the quarter's end value, over 3 simulated days.

    The bound is exact: the forecast holds the power of minute 10 for the last 5 minutes, so
    its error is a third of how far the power strays from it. On a household whose kettle,
    hob, oven, washing machine, dishwasher and dryer switch, that is small in most quarters
    and up to a third of an appliance's power when one switches in the last 5 minutes.
    """
    meter = Meter("5B", seed=11, start=start, appliances=True, ev_kw=ev_kw)
    errors = minute_10_errors(meter, 3 * 96)
    ours = [abs(e) for e in errors["ours"]]
    assert all(e <= b for e, b in zip(ours, errors["bound"], strict=True))
    assert statistics.median(ours) <= median
    assert percentile(ours, 0.9) <= p90
    assert percentile(ours, 0.99) <= p99
    assert max(ours) <= max(errors["bound"])
    assert abs(statistics.mean(errors["ours"])) < 0.02  # no bias
    for other in ("as_is", "extrapolated"):
        theirs = [abs(e) for e in errors[other]]
        assert statistics.median(ours) < statistics.median(theirs)
        assert percentile(ours, 0.9) < percentile(theirs, 0.9)


@pytest.mark.parametrize("lag", [0, 3])
def test_quarter_boundaries_on_the_meter_and_a_late_register(lag: int) -> None:
    meter = Meter(
        "5B", seed=2, start=datetime(2024, 1, 16, 17, 14, 40), appliances=True, demand_lag=lag
    )
    previous: QuarterForecast | None = None
    ends = []
    for _ in range(4):
        for _ in range(30):  # 20 s before to 10 s after a boundary, a telegram a second
            meter.step(1)
            forecast = forecast_quarter(demand_reading(meter), previous)
            assert forecast is not None
            if meter.now.minute % 15 == 14 and meter.now.second == 59:
                last_second = forecast
                power = meter.house.import_kw
            if meter.now.minute % 15 == 0 and meter.now.second < 8:
                # Never the last quarter's demand on top of this one's.
                assert forecast.forecast_kw <= meter.house.import_kw + 0.002
            previous = forecast
        end = meter.house.last_quarter_kw
        assert end is not None
        ends.append(end)
        # The forecast in a quarter's last second is the meter's own end value.
        assert abs(last_second.forecast_kw - end) <= 0.0015 + (power + lag * power) / 900
        assert previous.previous_quarter_kw == pytest.approx(end, abs=0.0015 + 4 * power / 900)
        meter.step(900 - 30)
    assert max(ends) > 1  # busy evening quarters, not idle ones


def test_a_new_month() -> None:
    meter = Meter("5B", seed=6, start=datetime(2024, 1, 31, 23, 0), appliances=True)
    forecast: QuarterForecast | None = None
    alarm = strict = OFF
    month_peaks: dict[str, float | None] = {}
    for _ in range(6 * 90):  # 90 minutes, a telegram every 10 s
        meter.step(10)
        forecast = forecast_quarter(rendered_demand(meter), forecast) or forecast
        alarm = peak_ahead(forecast, alarm)
        strict = peak_ahead(forecast, strict, threshold_kw=0)
        quarter = forecast.quarter_start.astimezone(BRUSSELS).strftime("%d %H:%M")
        if quarter == "01 00:15" and quarter not in month_peaks:
            first_quarter = meter.house.last_quarter_kw
        month_peaks[quarter] = forecast.month_peak_kw
        if quarter == "01 00:00" and forecast.forecast_kw > 0:
            assert strict.on  # February has no peak yet: any demand is a new one
            assert alarm.on == (forecast.forecast_kw > DEFAULT_THRESHOLD_KW)
    january = month_peaks["31 23:45"]
    assert january is not None and january > 1  # January's peak, kept to its last quarter
    assert month_peaks["01 00:00"] == 0.0
    assert month_peaks["01 00:15"] == round(first_quarter, 3)  # February's first quarter


def test_new_peak_ahead_on_simulated_weeks() -> None:
    """Every quarter that set a new billed peak was announced before it ended; few flaps."""
    meter = Meter("5B", seed=5, start=datetime(2024, 1, 1), appliances=True)
    forecast: QuarterForecast | None = None
    alarm = bare = OFF
    turned_on = {"alarm": 0, "bare": 0}
    warned: set[datetime] = set()
    new_peaks = []
    for _ in range(3 * 2880):  # three days, a publish every 30 s (the default update window)
        meter.step(30)
        new = forecast_quarter(rendered_demand(meter), forecast)
        assert new is not None
        if forecast is not None and new.quarter_start != forecast.quarter_start:
            end = meter.house.last_quarter_kw
            limit = forecast.limit_kw(DEFAULT_THRESHOLD_KW)
            assert end is not None and limit is not None
            if round(end, 3) > limit:
                new_peaks.append(forecast.quarter_start)
        forecast = new
        was = alarm.on, bare.on
        alarm = peak_ahead(forecast, alarm)
        bare = peak_ahead(forecast, bare, margin_kw=0, off_after=timedelta(0))
        turned_on["alarm"] += alarm.on and not was[0]
        turned_on["bare"] += bare.on and not was[1]
        if alarm.on:
            warned.add(forecast.quarter_start)
    assert new_peaks, "a month's first week sets new peaks"
    assert set(new_peaks) <= warned
    assert turned_on["alarm"] < turned_on["bare"]  # hysteresis: fewer flaps


def test_hysteresis() -> None:
    def alarm_after(*steps: tuple[str, float]) -> PeakAlarm:
        """The decision after readings at (time, forecast wanted): power to give it."""
        alarm, forecast = OFF, None
        for when, wanted in steps:
            elapsed = at(when) - at(when).replace(minute=at(when).minute // 15 * 15, second=0)
            seconds = elapsed.total_seconds()
            average = 0.02 if seconds < 60 else 1.0
            power = (wanted - average) * 900 / (900 - seconds)
            peak = {"peak_kw": 3.0, "peak_at": at("2024-01-10 18:00:00")}
            forecast = forecast_quarter(reading(when, average, power, **peak), forecast)
            assert forecast is not None and forecast.forecast_kw == pytest.approx(wanted)
            alarm = peak_ahead(forecast, alarm)
        return alarm

    on = alarm_after(("2024-01-15 18:10:00", 3.1))
    assert on.on and on.since == at("2024-01-15 18:10:00") and on.limit_kw == 3.0
    hob_cycling = alarm_after(
        ("2024-01-15 18:10:00", 3.1), ("2024-01-15 18:10:20", 2.5), ("2024-01-15 18:10:50", 3.05)
    )
    assert hob_cycling.on and hob_cycling.since == at("2024-01-15 18:10:00")
    near = alarm_after(
        ("2024-01-15 18:10:00", 3.1), ("2024-01-15 18:10:30", 2.95), ("2024-01-15 18:12:00", 2.95)
    )
    assert near.on  # within 0.1 kW of the limit: stays on
    off = alarm_after(
        ("2024-01-15 18:10:00", 3.1), ("2024-01-15 18:10:20", 2.5), ("2024-01-15 18:11:20", 2.5)
    )
    assert not off.on and off.since is None and off.limit_kw == 3.0
    still = alarm_after(
        ("2024-01-15 18:10:00", 3.1), ("2024-01-15 18:10:20", 2.5), ("2024-01-15 18:10:55", 2.5)
    )
    assert still.on  # 55 s since it was last near the limit
    # The quarter it warned about ended: off at once unless the new one is near the limit.
    assert not alarm_after(("2024-01-15 18:14:50", 3.1), ("2024-01-15 18:15:10", 2.0)).on
    assert alarm_after(("2024-01-15 18:14:50", 3.1), ("2024-01-15 18:15:10", 2.95)).on
    # A meter clock stepping back does not switch it off.
    assert alarm_after(("2024-01-15 18:14:50", 3.1), ("2024-01-15 18:14:40", 2.0)).on
