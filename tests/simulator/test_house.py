"""The house model: deterministic, monotonic registers, hourly M-Bus, tariffs, DST, demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
import itertools
from zoneinfo import ZoneInfo

import pytest

from dsmr_sim import House, Meter

from .helpers import make_meter, parse

AMS = ZoneInfo("Europe/Amsterdam")


def test_same_seed_same_telegrams_other_seed_differs() -> None:
    def run(seed: int) -> list[str]:
        meter = make_meter("5B", seed=seed, mbus=("gas", "water"))
        out = []
        for _ in range(50):
            meter.step(37.5)
            out.append(meter.telegram())
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_registers_only_increase_and_values_stay_bounded() -> None:
    meter = make_meter("5EONHU", seed=11, start=datetime(2024, 6, 20, 4, 0))
    house = meter.house
    house.mbus = Meter("5", seed=11, mbus=("gas", "water", "heat", "cooling")).house.mbus
    before = snapshot(house)
    exported = False
    for _ in range(1500):  # ~1.5 simulated days in 90 s steps
        meter.step(90)
        now = snapshot(house)
        assert all(b <= a for b, a in zip(before, now, strict=True))
        before = now
        assert all(0 <= p <= 5.0 for p in house.phase_import_kw)
        assert all(207 <= v <= 253 for v in house.voltage)
        assert min(house.power_factor) >= 0.8 and max(house.power_factor) < 1
        assert 49.9 <= house.frequency <= 50.1
        for current, net, volt in zip(
            house.current, house.phase_net_kw, house.voltage, strict=True
        ):
            assert current == pytest.approx(abs(net) * 1000 / volt)
        exported |= house.export_kw > 0
        if house.now.hour in {0, 1, 2, 3}:
            assert house.solar_kw == 0
    assert exported, "a June day with solar panels should export"


def snapshot(house: House) -> list[float]:
    return [
        *house.import_kwh,
        *house.export_kwh,
        *house.quadrant_kvarh,
        *house.reactive_import_kvarh,
        *house.reactive_export_kvarh,
        *(ch.value for ch in house.mbus),
        *(ch.reading for ch in house.mbus),
    ]


def test_energy_is_the_integral_of_power() -> None:
    meter = make_meter("5", seed=2, start=datetime(2024, 1, 15, 20, 0))  # no sun, tariff 2
    house = meter.house
    total = sum(house.import_kwh)
    expected = 0.0
    for _ in range(600):
        meter.step(1)
        expected += house.import_kw / 3600
    assert sum(house.import_kwh) - total == pytest.approx(expected, rel=1e-9)


def test_mbus_readings_change_only_on_the_hour() -> None:
    meter = make_meter("5", seed=5, start=datetime(2024, 2, 1, 6, 10), mbus=("gas", "water"))
    gas = meter.house.mbus[0]
    assert gas.reading_at == datetime(2024, 2, 1, 6, 0, tzinfo=AMS)
    seen = {(gas.reading_at, gas.reading)}
    for _ in range(3 * 60):  # three hours in one-minute steps
        meter.step(60)
        telegram = parse(meter, meter.telegram())
        device = telegram.MBUS_DEVICES[0]
        assert device.MBUS_METER_READING.datetime == gas.reading_at.astimezone(UTC)
        if meter.now.minute != 0:
            assert (gas.reading_at, gas.reading) in seen
        seen.add((gas.reading_at, gas.reading))
        assert gas.reading_at.minute == 0 and gas.reading_at <= meter.now
        assert gas.value >= gas.reading
    assert [ts.hour for ts, _ in sorted(seen)] == [6, 7, 8, 9]
    readings = [r for _, r in sorted(seen)]
    assert readings == sorted(readings) and readings[0] < readings[-1]


@pytest.mark.parametrize(
    ("version", "local", "tariff"),
    [
        ("5", datetime(2024, 1, 15, 6, 59), 1),  # Monday night: low
        ("5", datetime(2024, 1, 15, 7, 0), 2),
        ("5", datetime(2024, 1, 15, 22, 59), 2),
        ("5", datetime(2024, 1, 15, 23, 0), 1),
        ("5", datetime(2024, 1, 13, 12, 0), 1),  # Saturday: low all day
        ("5B", datetime(2024, 1, 15, 12, 0), 1),  # Belgium: 1 = day
        ("5B", datetime(2024, 1, 15, 22, 0), 2),
    ],
)
def test_tariff_schedule(version: str, local: datetime, tariff: int) -> None:
    meter = make_meter(version, start=local)
    assert meter.house.tariff == tariff
    assert parse(meter, meter.telegram()).ELECTRICITY_ACTIVE_TARIFF.value == f"{tariff:04d}"


def test_tariff_switch_moves_the_register_that_grows() -> None:
    meter = make_meter("5", seed=3, start=datetime(2024, 1, 15, 6, 50))
    low, normal = meter.house.import_kwh[:2]
    meter.step(600)
    assert meter.house.import_kwh[0] > low and meter.house.import_kwh[1] == normal
    low = meter.house.import_kwh[0]
    meter.step(600)
    assert meter.house.import_kwh[0] == low and meter.house.import_kwh[1] > normal


def test_dst_flags_and_the_repeated_hour() -> None:
    meter = make_meter("5", start=datetime(2024, 3, 31, 1, 59))
    assert meter.telegram().count("240331015900W") == 1
    meter.step(120)  # 02:00 CET does not exist: 03:01 CEST
    assert "0-0:1.0.0(240331030100S)" in meter.telegram()
    autumn = make_meter("5", start=datetime(2024, 10, 27, 2, 30, fold=0))
    first = parse(autumn, autumn.telegram()).P1_MESSAGE_TIMESTAMP.value
    assert "0-0:1.0.0(241027023000S)" in autumn.telegram()
    autumn.step(3600)
    assert "0-0:1.0.0(241027023000W)" in autumn.telegram()
    second = parse(autumn, autumn.telegram()).P1_MESSAGE_TIMESTAMP.value
    assert second - first == timedelta(hours=1)


def test_start_accepts_aware_and_naive_times() -> None:
    aware = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    meter = make_meter("5B", start=aware)
    assert meter.now == aware and meter.now.tzinfo == ZoneInfo("Europe/Brussels")
    naive = make_meter("5", start=datetime(2024, 5, 1, 12, 0), timezone="Europe/Berlin")
    assert naive.now.utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError, match="forward"):
        meter.step(-1)
    with pytest.raises(ValueError, match="aware"):
        House(seed=0, start=datetime(2024, 1, 1), tz=AMS)


def test_belgian_quarter_demand_and_monthly_peak() -> None:
    meter = make_meter("5B", seed=9, start=datetime(2024, 1, 31, 17, 0))
    house = meter.house
    house.month_peak_kw = 0.0
    for _ in range(15):
        meter.step(60)
    assert house.month_peak_kw > 0  # the first quarter set this month's peak
    assert house.month_peak_at == datetime(2024, 1, 31, 17, 15, tzinfo=house.tz)
    meter.step(7 * 60)
    assert house.avg_demand_kw == pytest.approx(house._quarter_kwh * 4)  # energy / 0.25 h
    history = list(house.peak_history)
    peak = house.month_peak_kw
    meter.step(7 * 3600)  # past midnight: February starts
    assert house.peak_history[:-1] == history[1:]
    last = house.peak_history[-1]
    assert last.month == datetime(2024, 2, 1, tzinfo=house.tz)
    assert last.kw >= peak and last.at is not None and last.at.month == 1
    assert house.month_peak_at >= datetime(2024, 2, 1, tzinfo=house.tz)
    telegram = parse(meter, meter.telegram())
    assert telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS[-1].value == Decimal(f"{last.kw:.3f}")
    assert telegram.BELGIUM_MAXIMUM_DEMAND_MONTH.datetime == house.month_peak_at


def test_hungarian_last_month_line_follows_the_month() -> None:
    meter = make_meter("5EONHU", start=datetime(2024, 1, 31, 23, 0))
    meter.step(3600)
    assert meter.house.last_month_at == datetime(2024, 2, 1, tzinfo=meter.tz)
    assert "0-0:98.1.0(240201000000W)(" in meter.telegram()


def test_long_steps_are_fast_and_exact() -> None:
    meter = make_meter("5", start=datetime(2024, 1, 1, 0, 0))
    meter.step(86400 * 3 + 0.5)
    assert meter.now == datetime(2024, 1, 4, 0, 0, 0, 500000, tzinfo=AMS)


def test_belgian_demand_restarts_at_every_quarter_and_rises_to_its_average() -> None:
    """``1-0:1.4.0`` as a real e-MUCS meter sends it (a DLMS demand register's current value).

    Real telegrams agree: 16:21:26 with 9.258 kW drawn shows 4.065 kW (9.258 * 386 / 900 =
    3.97), 15:50:56 with 0.182 kW shows 0.078 (0.182 * 356 / 900 = 0.072): the energy so far
    divided by the whole quarter, not by the time elapsed.
    """
    meter = make_meter("5B", seed=4, start=datetime(2024, 1, 16, 18, 14, 50), appliances=True)
    house = meter.house
    shown = []
    for _ in range(30 * 60):  # two quarters and some, one telegram per second
        meter.step(1)
        shown.append((meter.now, parse(meter, meter.telegram()).BELGIUM_CURRENT_AVERAGE_DEMAND))
        if meter.now.minute % 15 == 14 and meter.now.second == 59:
            before_end = house.avg_demand_kw
        if meter.now.minute % 15 == 0 and meter.now.second == 0:
            assert house.last_quarter_kw == pytest.approx(before_end, abs=0.02)
            assert house.avg_demand_kw == 0
    for (t0, d0), (t1, d1) in itertools.pairwise(shown):
        if t1.minute % 15 or t1.second:  # within a quarter it only rises
            assert d1.value >= d0.value, (t0, t1)
    assert shown[9][1].value == 0  # 18:15:00
    assert {d.unit for _, d in shown} == {"kW"}
    peak_quarters = {t for t, d in shown if d.value > 1}
    assert peak_quarters, "an evening with appliances has quarters above 1 kW"


def test_belgian_demand_lag_shows_the_last_quarter_for_a_few_seconds() -> None:
    meter = make_meter("5B", seed=4, start=datetime(2024, 1, 16, 18, 14, 0), demand_lag=3)
    house = meter.house
    values = []
    for _ in range(70):
        meter.step(1)
        values.append((meter.now.second, house.avg_demand_kw))
    end = house.last_quarter_kw
    assert end is not None and end > 0
    by_second = dict(values[55:])  # 18:14:56 .. 18:15:05
    assert by_second[2] > 0.9 * end and by_second[2] <= end  # 18:15:02: still the old quarter
    assert by_second[3] == 0  # 18:15:03: restarted, three seconds late
    assert 0 < by_second[5] < 0.05 * end


def test_mbus_capture_interval_and_offset() -> None:
    meter = make_meter(
        "5", seed=5, start=datetime(2024, 2, 1, 6, 0), mbus=("gas",), mbus_interval=300
    )
    gas = meter.house.mbus[0]
    stamps = set()
    for _ in range(60):
        meter.step(30)
        stamps.add(gas.reading_at)
    assert sorted(s.minute for s in stamps) == list(range(0, 31, 5))
    belgian = make_meter(
        "5B", start=datetime(2024, 2, 1, 6, 0), mbus=("gas",), mbus_interval=300, mbus_offset=171
    )
    belgian.step(900)
    assert [ch.reading_at.time().isoformat() for ch in belgian.house.mbus] == ["06:12:51"]
    with pytest.raises(ValueError, match="mbus_offset"):
        make_meter("5", mbus_interval=300, mbus_offset=300)


def test_appliances_switch_in_steps_and_rest() -> None:
    """A household's load: steps of kilowatts as appliances switch, days of 8-25 kWh."""
    meter = make_meter(
        "5B", seed=8, start=datetime(2024, 1, 16), appliances=True, mbus=("gas", "water")
    )
    house = meter.house
    assert house.appliances is not None
    start_kwh = sum(house.import_kwh)
    power, jumps, names = house.import_kw, 0, set()
    gas_still = water_still = 0
    gas, water = house.mbus
    for _ in range(8640):  # a day in 10 s steps
        gas_before, water_before = gas.value, water.value
        meter.step(10)
        jumps += abs(house.import_kw - power) > 1.5
        power = house.import_kw
        names.update(house.appliances.runs)
        assert all(p <= 9.2 for p in house.phase_import_kw)
        gas_still += gas.value == gas_before
        water_still += water.value == water_before
    assert 8 < sum(house.import_kwh) - start_kwh < 25
    assert jumps >= 10  # kettles, hobs, ovens: switched, not drifting
    assert {"kettle", "dishwasher", "hob"} <= names
    assert 1000 < gas_still < 8000  # the boiler cycles: hours without gas
    assert 6000 < water_still < 8640  # water flows minutes a day
    same = make_meter("5B", seed=8, start=datetime(2024, 1, 16), appliances=True)
    same.step(3600 * 7)
    again = make_meter("5B", seed=8, start=datetime(2024, 1, 16), appliances=True)
    again.step(3600 * 7)
    assert same.telegram() == again.telegram()


def test_an_electric_car_charges_on_three_phases() -> None:
    meter = make_meter("5", seed=3, start=datetime(2024, 1, 16, 17, 0), appliances=True, ev_kw=11)
    house = meter.house
    charging = 0
    for _ in range(6 * 360):  # six evening hours
        meter.step(10)
        if house.appliances is not None and "ev" in house.appliances.runs:
            charging += 1
            assert min(house.phase_import_kw) > 11 / 3 - 0.1
    assert charging > 0
