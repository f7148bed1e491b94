"""The update window and its snapshots (p1/snapshot.py): telegrams in, frozen snapshot out.

No Home Assistant: telegrams as the reader reads them (hand-made, or the simulator's), added to
a `Window` one by one and published as the coordinator does. What a snapshot says: the meter's
numbers in their lines' units, the window's mean, minimum and maximum, the sub-meters, the
statistics period, the quarter-hour forecast (at publish) and the flows (per telegram).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime
from decimal import Decimal
import itertools
from types import SimpleNamespace
from typing import Any

from dsmr_parser import telegram_specifications
from dsmr_parser.objects import Telegram
import pytest

from custom_components.dsmr.p1.demand import OFF, forecast_quarter
from custom_components.dsmr.p1.flow_rate import FlowState
from custom_components.dsmr.p1.snapshot import (
    MAIN_GAS,
    NET_POWER,
    STATISTICS_PERIOD,
    Snapshot,
    Spread,
    SubMeter,
    Window,
    demand_reading,
    device_type,
    flow_key,
    net_power,
    number,
)
from custom_components.dsmr.p1.telegram import TelegramReader
from dsmr_sim import Meter
from dsmr_sim.crc import with_crc

IDENT = "4530303435303031363238353137313135"
OTHER = "4530303435303031363238353137313136"
GAS = "4730303339303031363532303530323136"
POWER = "CURRENT_ELECTRICITY_USAGE"
USED = "ELECTRICITY_USED_TARIFF_1"
AVERAGED = (POWER, NET_POWER)
JANUARY = datetime(2024, 1, 15, 17, 0)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance here: these are plain snapshot tests."""


def text(
    used: str = "000123.456*kWh",
    power: str = "01.193*kW",
    stamp: str = "240115120000W",
    *extra: str,
    ident: str = IDENT,
) -> str:
    lines = [
        "/ISk5\\2MT382-1000",
        "",
        "1-3:0.2.8(50)",
        f"0-0:1.0.0({stamp})",
        f"0-0:96.1.1({ident})",
        f"1-0:1.8.1({used})",
        f"1-0:1.7.0({power})",
        "1-0:2.7.0(00.193*kW)",
        "0-0:96.14.0(0002)",
        "0-0:96.13.0(48656C6C6F)",
        *extra,
    ]
    return with_crc("\r\n".join(lines) + "\r\n!")


def read(*args: str, **kwargs: str) -> Any:
    """The telegram of `text(*args, **kwargs)`, as the reader reads it."""
    return TelegramReader(telegram_specifications.V5).read(text(*args, **kwargs)).telegram


def fake(**lines: Any) -> Telegram:
    """A telegram of just these lines (objects with a value and a unit, as dsmr_parser's)."""
    telegram = Telegram()
    for name, line in lines.items():
        setattr(telegram, name, line)
    return telegram


def publish(
    window: Window,
    telegrams: list[Any],
    previous: Snapshot | None = None,
    received_at: float = 1_700_000_000.0,
    *,
    fresh: bool = True,
    replaced: bool = False,
) -> Snapshot:
    """A window of `telegrams` added one by one, then published, as the coordinator does."""
    for telegram in telegrams:
        window.add(telegram)
    return window.publish(previous, received_at, fresh=fresh, replaced=replaced)


# --- values ---------------------------------------------------------------------------------


def test_values_are_the_meters_numbers_in_the_lines_units() -> None:
    snap = publish(Window("5", AVERAGED), [read(used="000326641*Wh")])
    assert snap.number(USED) == 326641.0
    assert snap.unit(USED) == "Wh"  # as the line says, not the specification's kWh
    assert snap.value(USED) == Decimal("326641")
    assert snap.number(POWER) == 1.193
    assert snap.unit(POWER) == "kW"
    assert snap.number(NET_POWER) == 1.0
    assert snap.unit(NET_POWER) == "kW"  # import minus export: its lines' unit
    assert snap.value("TEXT_MESSAGE") == "48656C6C6F"
    assert snap.unit("TEXT_MESSAGE") is None
    assert snap.equipment_id == IDENT
    assert snap.timestamp == datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
    assert snap.line("ELECTRICITY_USED_TARIFF_2") is None
    assert snap.number("ELECTRICITY_USED_TARIFF_2") is None
    assert snap.spreads == {}  # a window of one telegram has no spread
    assert (snap.samples, snap.published, snap.version) == (1, 1, "5")


def test_a_zero_is_a_zero_and_precision_is_kept() -> None:
    window = Window("5", AVERAGED)
    snap = publish(window, [read(used="000000.000*kWh", power="00.000*kW")])
    assert snap.number(USED) == 0.0
    assert snap.number(POWER) == 0.0
    assert publish(window, [read(used="000123.4567*kWh")], snap).number(USED) == 123.4567
    rounded = Window("5", AVERAGED, precision=1)
    assert publish(rounded, [read(used="000123.4567*kWh")]).number(USED) == 123.5


def test_absent_lines_are_absent() -> None:
    without = text().replace("1-0:1.8.1(000123.456*kWh)\r\n", "")
    telegram = TelegramReader(telegram_specifications.V5).read(
        with_crc(without.rsplit("!", 1)[0] + "!")
    )
    snap = publish(Window("5", AVERAGED), [telegram.telegram])
    assert snap.line(USED) is None
    assert snap.number(USED) is None
    assert snap.unit(USED) is None
    assert snap.number(POWER) == 1.193


@pytest.mark.parametrize("bad", ["Infinity", "NaN", "sNaN", "-Infinity", "1E1000000"])
def test_numbers_not_finite_as_a_float_are_unreadable(bad: str) -> None:
    """NaN, inf and a float overflow: unknown, and no sample of the window (nor net power)."""
    assert number(Decimal(bad)) is None

    line = SimpleNamespace(value=Decimal(bad), unit="kW")
    telegram = fake(
        ELECTRICITY_USED_TARIFF_1=line,
        CURRENT_ELECTRICITY_USAGE=line,
        CURRENT_ELECTRICITY_DELIVERY=SimpleNamespace(value=Decimal(1), unit="kW"),
    )
    snap = publish(Window("5", AVERAGED), [telegram, telegram])
    assert snap.number(USED) is None
    assert snap.number(POWER) is None
    assert snap.number(NET_POWER) is None
    assert snap.spreads == {}
    assert snap.unit(USED) == "kW"


def test_a_value_that_is_no_number() -> None:
    assert number("1.5") is None
    assert number(None) is None
    assert number(Decimal("1.25"), 1) == 1.2  # (round half to even, as round() does)


def test_window_mean_min_max_at_the_meters_precision() -> None:
    window = Window("5", AVERAGED)
    telegrams = [read(power=p) for p in ("01.000*kW", "02.001*kW", "00.500*kW")]
    snap = publish(window, telegrams)
    assert snap.spreads[POWER] == Spread(mean=1.167, min=0.5, max=2.001, samples=3)
    assert snap.spreads[NET_POWER] == Spread(mean=0.974, min=0.307, max=1.808, samples=3)
    assert USED not in snap.spreads  # not averaged
    assert snap.number(POWER) == 1.167  # the mean, for an averaged value
    assert snap.value(POWER) == Decimal("0.500")  # the latest line, as read
    assert snap.samples == 3
    precise = publish(Window("5", AVERAGED, precision=1), telegrams)
    assert precise.spreads[POWER] == Spread(mean=1.2, min=0.5, max=2.0, samples=3)


def test_a_spreads_attributes_are_all_but_the_mean() -> None:
    spread = Spread(mean=1.167, min=0.5, max=2.001, samples=3)
    assert spread.attributes() == {"min": 0.5, "max": 2.001, "samples": 3}


def test_an_unreadable_sample_is_left_out_of_the_mean() -> None:
    window = Window("5", AVERAGED)
    telegrams = [read(power="01.000*kW"), read(power="xx*kW"), read(power="03.000*kW")]
    snap = publish(window, telegrams)
    assert snap.spreads[POWER] == Spread(mean=2.0, min=1.0, max=3.0, samples=2)
    assert snap.samples == 3


def test_each_publish_starts_a_new_window() -> None:
    window = Window("5", AVERAGED)
    first = publish(window, [read(power="01.000*kW"), read(power="03.000*kW")])
    assert window.pending == 0
    second = publish(window, [read(power="05.000*kW")], first)
    assert second.spreads == {}
    assert second.number(POWER) == 5.0
    assert (first.published, second.published) == (1, 2)


def test_a_discarded_window_is_forgotten() -> None:
    window = Window("5", AVERAGED)
    window.add(read(power="09.000*kW"))
    window.add(read(power="08.000*kW"))
    assert window.identity() == IDENT
    window.discard()
    assert (window.pending, window.identity()) == (0, None)
    snap = publish(window, [read(power="01.000*kW")])
    assert (snap.samples, snap.spreads, snap.number(POWER)) == (1, {}, 1.0)


def test_net_power_is_import_minus_export() -> None:
    telegram = read()
    assert net_power(telegram) == Decimal("1.000")
    usage = telegram.CURRENT_ELECTRICITY_USAGE
    assert net_power(SimpleNamespace(CURRENT_ELECTRICITY_USAGE=usage)) is None
    assert net_power(SimpleNamespace()) is None


@pytest.mark.parametrize(
    ("version", "code", "tariff"),
    [
        ("5", "0001", "low"),
        ("5", "0002", "normal"),
        ("5B", "0001", "normal"),
        ("5B", "0002", "low"),
    ],
)
def test_tariff_is_low_or_normal_and_swapped_in_belgium(
    version: str, code: str, tariff: str
) -> None:
    """The same code means the other tariff on a Belgian meter."""
    telegram = fake(ELECTRICITY_ACTIVE_TARIFF=SimpleNamespace(value=code))
    assert publish(Window(version, ()), [telegram]).tariff() == tariff


@pytest.mark.parametrize("version", ["5", "5B"])
@pytest.mark.parametrize(("hour", "tariff"), [(12, "normal"), (2, "low")])
def test_the_simulators_tariff(version: str, hour: int, tariff: str) -> None:
    """A Monday's noon is the normal tariff, its night the low one, in either country."""
    meter = Meter(version, seed=7, start=datetime(2024, 1, 15, hour, 0))
    meter.step(1.0)
    telegram = TelegramReader(meter.telegram_specification()).read(meter.telegram()).telegram
    assert publish(Window(version, ()), [telegram]).tariff() == tariff


def test_no_tariff_line_is_no_tariff() -> None:
    assert publish(Window("5", ()), [fake()]).tariff() is None


# --- the statistics period ------------------------------------------------------------------


def test_statistics_period() -> None:
    window = Window("5", AVERAGED)
    # 11:59:50 and 11:59:55 (UTC 10:59:..): at 5 s steps the next publish is 12:00:00.
    a = publish(window, [read(stamp="240115115950W")])
    b = publish(window, [read(stamp="240115115955W")], a)
    stamp = datetime(2024, 1, 15, 10, 59, 55, tzinfo=UTC).timestamp()
    assert b.period == int(stamp // STATISTICS_PERIOD)
    assert b.at == stamp
    assert not a.closes_period  # no step known yet
    assert b.closes_period  # 5 s later is the next period
    c = publish(window, [read(stamp="240115120000W")], b)
    assert c.period == b.period + 1
    assert not c.closes_period


def test_without_a_meter_clock_the_receiving_time_places_the_period() -> None:
    snap = publish(Window("5", ()), [fake()], None, 1_000.0)
    assert snap.timestamp is None
    assert snap.at == 1_000.0
    assert snap.period == 3


# --- sub-meters ------------------------------------------------------------------------------


def test_submeters_per_channel() -> None:
    telegram = read(
        "000123.456*kWh",
        "01.193*kW",
        "240115120000W",
        "0-1:24.1.0(003)",
        f"0-1:96.1.0({GAS})",
        "0-1:24.2.1(240115115500W)(00012.345*m3)",
        "0-2:24.1.0(007)",
    )
    snap = publish(Window("5", ()), [telegram])
    gas, water = sorted(snap.submeters, key=lambda m: m.channel)
    assert (gas.channel, gas.device_type, gas.identifier) == (1, 3, GAS)
    assert (gas.value, gas.unit, gas.has_reading) == (12.345, "m³", True)
    assert gas.at == datetime(2024, 1, 15, 10, 55, tzinfo=UTC)
    assert (water.channel, water.device_type, water.identifier) == (2, 7, None)
    assert (water.value, water.unit, water.has_reading, water.at) == (None, None, False, None)
    assert snap.submeter(9, GAS) is gas  # by identifier, on whatever channel
    assert snap.submeter(2, None) is water  # without one: by its channel
    assert snap.submeter(3, None) is None


def test_submeter_lookups() -> None:
    gas = SubMeter(1, 3, GAS, 12.345, "m³", None, has_reading=True)
    unreadable = SubMeter(3, 3, None, None, "m³", None, has_reading=True)
    snap = publish(Window("5", ()), [fake()])
    assert snap.submeters == ()
    snap = replace(snap, submeters=(gas, unreadable))
    assert snap.submeter(1, GAS) is gas
    assert snap.submeter(9, GAS) is gas
    assert snap.submeter(1, None) is gas
    assert snap.submeter(3, None) is unreadable
    assert snap.submeter(3, "another") is None


def test_a_submeters_reading_at_the_users_precision() -> None:
    telegram = read(
        "000123.456*kWh",
        "01.193*kW",
        "240115120000W",
        "0-1:24.1.0(003)",
        "0-1:24.2.1(240115115500W)(00012.345*m3)",
    )
    (gas,) = publish(Window("5", (), precision=1), [telegram]).submeters
    assert gas.value == 12.3


@pytest.mark.parametrize(
    ("sent", "kind"),
    [(3, 3), ("003", 3), (" 7 ", 7), ("", None), ("x", None), ("1234", None), (True, None)],
)
def test_device_types(sent: Any, kind: int | None) -> None:
    assert device_type(sent) == kind


def test_unknown_obis_lines() -> None:
    raw = text("000123.456*kWh", "01.193*kW", "240115120000W", "1-0:3.8.0(000123.456*kvarh)")
    got = TelegramReader(telegram_specifications.V5).read(raw)
    window = Window("5", ())
    window.add(got.telegram, got.unknown_lines)
    snap = window.publish(None, 0.0, fresh=True, replaced=False)
    assert dict(snap.unknown_lines) == {"1-0:3.8.0": "(000123.456*kvarh)"}


def test_snapshot_is_frozen() -> None:
    snap = publish(Window("5", AVERAGED), [read(), read(power="02.000*kW")])
    with pytest.raises(FrozenInstanceError):
        snap.period = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.spreads["x"] = snap.spreads[POWER]  # type: ignore[index]


# --- identity ---------------------------------------------------------------------------------


def test_the_meter_is_identified_on_a_fresh_publish_only() -> None:
    window = Window("5", AVERAGED)
    first = publish(window, [read()], fresh=False)
    assert first.equipment_id == IDENT  # nothing before: identified
    second = publish(window, [read(ident=OTHER)], first, fresh=False)
    assert second.equipment_id == IDENT  # the connection's meter, as it was
    window.add(read(ident=OTHER))
    assert window.identity() == OTHER  # (what the coordinator compares)
    third = window.publish(second, 0.0, fresh=True, replaced=True)
    assert third.equipment_id == OTHER
    assert third.replaced


# --- the forecast, at publish -----------------------------------------------------------------


def telegrams(meter: Meter, count: int, step: float = 10) -> Iterator[Any]:
    """`count` telegrams `step` simulated seconds apart, read as the reader reads them."""
    reader = TelegramReader(meter.telegram_specification())
    for _ in range(count):
        meter.step(step)
        yield reader.read(meter.telegram()).telegram


def windows(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run(window: Window, stream: list[Any], size: int = 1) -> list[Snapshot]:
    """Publish `stream` in windows of `size` telegrams; every publish's snapshot."""
    results: list[Snapshot] = []
    previous: Snapshot | None = None
    for part in windows(stream, size):
        previous = publish(window, part, previous, fresh=previous is None)
        results.append(previous)
    return results


def test_the_forecast_is_the_latest_telegrams_continuing_from_the_last() -> None:
    meter = Meter("5B", seed=4, start=JANUARY, appliances=True)
    stream = list(telegrams(meter, 180))  # half an hour, a telegram every 10 s
    results = run(Window("5B", (), demand=True), stream, size=3)
    quarter = None
    for part, result in zip(windows(stream, 3), results, strict=True):
        quarter = forecast_quarter(demand_reading(part[-1]), quarter)
        assert result.forecast == result.last_forecast == quarter
    # The quarters changed on the meter's clock, and each knew the one before.
    starts = {r.forecast.quarter_start for r in results if r.forecast is not None}
    assert len(starts) >= 2
    assert results[-1].forecast is not None
    assert results[-1].forecast.previous_quarter_kw is not None


def test_a_reading_it_cannot_place_keeps_the_last_forecast_and_decision() -> None:
    meter = Meter("5B", seed=4, start=JANUARY, appliances=True)
    good = list(telegrams(meter, 3))
    window = Window("5B", (), demand=True, threshold_kw=0.0)
    before = publish(window, good)
    assert before.forecast is not None
    garbled = fake(
        P1_MESSAGE_TIMESTAMP=good[-1].P1_MESSAGE_TIMESTAMP,
        CURRENT_ELECTRICITY_USAGE=good[-1].CURRENT_ELECTRICITY_USAGE,
        BELGIUM_CURRENT_AVERAGE_DEMAND=SimpleNamespace(value=Decimal("NaN"), unit="kW"),
    )
    after = publish(window, [garbled], before)
    assert after.forecast is None  # unknown now ...
    assert after.last_forecast == before.forecast  # ... and the next reading continues from it
    assert after.alarm == before.alarm
    absurd = fake(
        P1_MESSAGE_TIMESTAMP=good[-1].P1_MESSAGE_TIMESTAMP,
        CURRENT_ELECTRICITY_USAGE=SimpleNamespace(value=Decimal("1E308"), unit="kW"),
        BELGIUM_CURRENT_AVERAGE_DEMAND=SimpleNamespace(value=Decimal("1E308"), unit="kW"),
    )
    overflown = publish(window, [absurd], after)  # the forecast would be inf kW
    assert overflown.forecast is None
    assert overflown.last_forecast == before.forecast


def test_a_power_line_in_w_is_read_in_kw() -> None:
    stamp = SimpleNamespace(value=datetime(2024, 1, 15, 17, 10, tzinfo=UTC))
    telegram = SimpleNamespace(
        P1_MESSAGE_TIMESTAMP=stamp,
        CURRENT_ELECTRICITY_USAGE=SimpleNamespace(value=Decimal(3000), unit="W"),
        BELGIUM_CURRENT_AVERAGE_DEMAND=SimpleNamespace(value=Decimal("1.2"), unit="kW"),
    )
    reading = demand_reading(telegram)
    assert (reading.import_kw, reading.average_kw) == (3.0, 1.2)
    assert (reading.peak_kw, reading.peak_at) == (None, None)  # no 1-0:1.6.0: unknown


def test_a_new_peak_turns_the_decision_on_above_the_threshold() -> None:
    # An 11 kW car charging on a January evening sets a new monthly peak.
    meter = Meter("5B", seed=5, start=datetime(2024, 1, 15, 17, 30), appliances=True, ev_kw=11)
    stream = list(telegrams(meter, 720))  # two hours
    results = run(Window("5B", (), demand=True, threshold_kw=2.5), stream)
    turned_on = [b for a, b in itertools.pairwise(results) if b.alarm.on and not a.alarm.on]
    assert turned_on, "no new peak announced while the car charged"
    for result in turned_on:
        assert result.forecast is not None and result.alarm.limit_kw is not None
        assert result.forecast.forecast_kw > result.alarm.limit_kw >= 2.5
        assert result.threshold_kw == 2.5
    assert not results[0].alarm.on
    # Far above any demand: never on.
    assert not any(r.alarm.on for r in run(Window("5B", (), demand=True, threshold_kw=99), stream))


def test_meters_without_the_demand_lines_get_no_forecast() -> None:
    meter = Meter("5", seed=1, start=JANUARY)
    results = run(Window("5", (), demand=False), list(telegrams(meter, 3)))
    assert all(r.forecast is None and r.alarm == OFF for r in results)


# --- the flows, per telegram ----------------------------------------------------------------


def _captures(stream: list[Any], channel: int) -> list[tuple[datetime, Decimal]]:
    """The distinct captures of an M-Bus channel, in the order the telegrams carried them."""
    found: list[tuple[datetime, Decimal]] = []
    for telegram in stream:
        reading = telegram.get_mbus_device_by_channel(channel).MBUS_METER_READING
        if not found or found[-1][0] != reading.datetime:
            found.append((reading.datetime, reading.value))
    return found


@pytest.mark.parametrize("size", [1, 30])
def test_flow_is_the_volume_between_captures_over_their_time(size: int) -> None:
    """Per telegram: a window of 30 ends with the flows a window of 1 ends with."""
    meter = Meter(
        "5",
        seed=5,
        start=JANUARY,
        appliances=True,
        mbus=("gas", "water", "heat"),
        mbus_interval=300,
    )
    stream = list(telegrams(meter, 360))  # an hour: 12 captures
    results = run(Window("5", ()), stream, size)
    gas_id = stream[0].get_mbus_device_by_channel(1).MBUS_EQUIPMENT_IDENTIFIER.value
    water_id = stream[0].get_mbus_device_by_channel(2).MBUS_EQUIPMENT_IDENTIFIER.value
    assert set(results[-1].flows) == {flow_key(1, gas_id), flow_key(2, water_id)}  # no heat
    for channel, ident in ((1, gas_id), (2, water_id)):
        (at0, v0), (at1, v1) = _captures(stream, channel)[-2:]
        flow = results[-1].flows[flow_key(channel, ident)]
        span = (at1 - at0).total_seconds()
        assert span == 300
        assert flow.interval_s == span
        assert flow.m3h == pytest.approx(float((v1 - v0) * 3600 / Decimal(span)))
    moving = [r.flows[flow_key(1, gas_id)].m3h for r in results[-2 * size :]]
    assert any(m for m in moving), "the boiler burned no gas in a January hour"
    assert run(Window("5", ()), stream, 1)[-1].flows == results[-1].flows


def test_a_replaced_sub_meter_starts_afresh() -> None:
    meter = Meter("5", seed=5, start=JANUARY, appliances=True, mbus_interval=300)
    stream = list(telegrams(meter, 90))
    window = Window("5", ())
    first = run(window, stream)[-1]
    gas_id = stream[0].get_mbus_device_by_channel(1).MBUS_EQUIPMENT_IDENTIFIER.value
    assert first.flows[flow_key(1, gas_id)].m3h is not None
    other = Meter("5", seed=6, start=meter.now, appliances=True, mbus_interval=300)
    after = publish(window, list(telegrams(other, 1)), first)
    new_id = next(k for k in after.flows if k != flow_key(1, gas_id))
    assert after.flows[new_id].m3h is None and after.flows[new_id].last is not None


def test_a_restored_state_gives_the_first_flow_after_a_restart() -> None:
    meter = Meter("5", seed=5, start=JANUARY, appliances=True, mbus_interval=300)
    stream = list(telegrams(meter, 120))
    gas = [t.get_mbus_device_by_channel(1) for t in stream]
    key = flow_key(1, gas[0].MBUS_EQUIPMENT_IDENTIFIER.value)
    arrivals = [
        i
        for i in range(1, len(stream))
        if gas[i].MBUS_METER_READING.datetime != gas[i - 1].MBUS_METER_READING.datetime
    ]
    arrival = arrivals[-2]
    # Home Assistant stops just before a capture arrives and starts 30 s after it did.
    saved = run(Window("5", ()), stream[:arrival])[-1].flows[key]
    later = stream[arrival + 3 :]
    fresh = run(Window("5", ()), later)
    restored = Window("5", (), flows={key: FlowState.from_dict(saved.as_dict())})
    resumed = run(restored, later)
    assert fresh[0].flows[key].m3h is None  # nothing before it to divide by
    (at0, v0), (at1, v1) = _captures(stream[: arrival + 1], 1)[-2:]
    assert resumed[0].flows[key].interval_s == (at1 - at0).total_seconds() == 300
    assert resumed[0].flows[key].m3h == pytest.approx(float((v1 - v0) * 12))


def test_the_dsmr4_gas_reading_on_the_main_telegram_has_a_flow() -> None:
    meter = Meter("4", seed=3, start=JANUARY, appliances=True)
    stream = list(telegrams(meter, 3 * 360 + 6))  # three hours and a minute: hourly captures
    results = run(Window("4", ()), stream, size=6)
    flow = results[-1].flows[MAIN_GAS]
    assert flow.interval_s == 3600
    assert flow.m3h is not None and flow.m3h > 0


def test_an_unchanged_telegram_keeps_the_same_flows_object() -> None:
    meter = Meter("5", seed=5, start=JANUARY, mbus_interval=300)
    (telegram,) = telegrams(meter, 1)
    window = Window("5", ())
    first = publish(window, [telegram])
    window.add(telegram)
    assert window.flows is first.flows
    assert publish(window, [telegram], first).flows is first.flows


def test_the_flows_go_on_across_a_discarded_window() -> None:
    meter = Meter("5", seed=5, start=JANUARY, appliances=True, mbus_interval=300)
    stream = list(telegrams(meter, 90))
    window = Window("5", ())
    for telegram in stream:
        window.add(telegram)
    flows = window.flows
    window.discard()  # the connection was lost
    assert window.flows is flows
