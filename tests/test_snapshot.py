"""The pure snapshot builder: telegrams in, frozen snapshot out, without Home Assistant."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsmr_parser import telegram_specifications
import pytest

from custom_components.dsmr import snapshot_builder
from custom_components.dsmr.dsmr_library import caching_parser
from custom_components.dsmr.parser import CachingTelegramParser, changed_since
from custom_components.dsmr.snapshot import (
    MBUS_CHANGED,
    STATISTICS_PERIOD,
    Field,
    MbusReading,
    Reading,
    Snapshot,
    SnapshotBuilder,
    Spread,
    number,
)
from dsmr_sim.crc import with_crc
from dsmr_sim.meter import Meter

IDENT = "4530303435303031363238353137313135"
GAS = "4730303339303031363532303530323136"
FIELDS = (
    Field("used", "ELECTRICITY_USED_TARIFF_1"),
    Field("power", "CURRENT_ELECTRICITY_USAGE", average=True),
    Field("text", "TEXT_MESSAGE", convert=lambda obj: f"<{obj.value}>"),
    Field(
        "net",
        "CURRENT_ELECTRICITY_USAGE",
        derive=lambda t: t.CURRENT_ELECTRICITY_USAGE.value - t.CURRENT_ELECTRICITY_DELIVERY.value,
        average=True,
    ),
)


def telegram(
    used: str = "000123.456*kWh",
    power: str = "01.193*kW",
    stamp: str = "240115120000W",
    *extra: str,
) -> str:
    lines = [
        "/ISk5\\2MT382-1000",
        "",
        "1-3:0.2.8(50)",
        f"0-0:1.0.0({stamp})",
        f"0-0:96.1.1({IDENT})",
        f"1-0:1.8.1({used})",
        f"1-0:1.7.0({power})",
        "1-0:2.7.0(00.193*kW)",
        "0-0:96.13.0(48656C6C6F)",
        *extra,
    ]
    return with_crc("\r\n".join(lines) + "\r\n!")


@pytest.fixture
def parser() -> CachingTelegramParser:
    return caching_parser(telegram_specifications.V5)


def publish(
    builder: SnapshotBuilder,
    telegrams: list[Any],
    previous: Snapshot | None,
    received_at: float,
    *,
    fresh: bool = True,
) -> Snapshot:
    """A window of `telegrams` added one by one, then built, as the coordinator does."""
    for telegram in telegrams:
        builder.add(telegram)
    return builder.build(previous, received_at, fresh=fresh)


def build(
    builder: SnapshotBuilder, parsed: list[Any], previous: Snapshot | None = None
) -> Snapshot:
    return publish(builder, parsed, previous, 1_700_000_000.0)


def test_values_are_the_meters_numbers_in_the_lines_units(parser: CachingTelegramParser) -> None:
    builder = SnapshotBuilder(FIELDS, identify=lambda t: str(t.EQUIPMENT_IDENTIFIER.value))
    snap = build(builder, [parser.parse(telegram(used="000326641*Wh"))])
    assert snap.readings["used"].value == 326641.0
    assert snap.readings["used"].unit == "Wh"  # as the line says, not the specification's kWh
    assert snap.value("power") == 1.193
    assert snap.readings["power"].unit == "kW"
    assert snap.value("text") == "<48656C6C6F>"  # converted by the field's own function
    assert snap.readings["text"].unit is None
    assert snap.value("net") == 1.0
    assert snap.readings["net"].unit == "kW"  # the derived value's unit: its line's
    assert snap.equipment_id == IDENT
    assert snap.timestamp == datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
    assert snap.value("missing") is None
    assert snap.spreads == {}  # a window of one telegram has no spread
    assert snap.samples == 1


def test_a_zero_is_a_zero_and_precision_is_kept(parser: CachingTelegramParser) -> None:
    builder = SnapshotBuilder(FIELDS)
    snap = build(builder, [parser.parse(telegram(used="000000.000*kWh", power="00.000*kW"))])
    assert snap.value("used") == 0.0
    assert snap.value("power") == 0.0
    snap = build(builder, [parser.parse(telegram(used="000123.4567*kWh"))])
    assert snap.value("used") == 123.4567
    rounded = SnapshotBuilder(FIELDS, precision=1)
    assert build(rounded, [parser.parse(telegram(used="000123.4567*kWh"))]).value("used") == 123.5


def test_absent_lines_are_absent(parser: CachingTelegramParser) -> None:
    text = telegram().replace("1-0:1.8.1(000123.456*kWh)\r\n", "")
    snap = build(SnapshotBuilder(FIELDS), [parser.parse(with_crc(text.rsplit("!", 1)[0] + "!"))])
    assert "used" not in snap.readings
    assert "power" in snap.readings


@pytest.mark.parametrize("bad", ["Infinity", "NaN", "sNaN", "-Infinity"])
def test_non_finite_numbers_are_unreadable(bad: str) -> None:
    assert number(Decimal(bad)) is None

    class Obj:
        value = Decimal(bad)
        unit = "kWh"

    class Tg:
        ELECTRICITY_USED_TARIFF_1 = Obj()
        CURRENT_ELECTRICITY_USAGE = Obj()

    builder = SnapshotBuilder(FIELDS[:2])
    snap = publish(builder, [Tg(), Tg()], None, 0.0)
    assert snap.readings == {}
    assert snap.spreads == {}


def test_window_mean_min_max_at_the_meters_precision(parser: CachingTelegramParser) -> None:
    builder = SnapshotBuilder(FIELDS)
    window = [parser.parse(telegram(power=p)) for p in ("01.000*kW", "02.001*kW", "00.500*kW")]
    snap = build(builder, window)
    assert snap.spreads["power"] == Spread(mean=1.167, min=0.5, max=2.001, samples=3)
    assert snap.spreads["net"] == Spread(mean=0.974, min=0.307, max=1.808, samples=3)
    assert "used" not in snap.spreads  # not averaged
    assert snap.value("power") == 0.5  # the latest, for those who want it
    assert snap.samples == 3


def test_a_spreads_attributes_are_all_but_the_mean() -> None:
    spread = Spread(mean=1.167, min=0.5, max=2.001, samples=3)
    assert spread.attributes() == {"min": 0.5, "max": 2.001, "samples": 3}


def test_unchanged_lines_reuse_the_previous_reading(parser: CachingTelegramParser) -> None:
    builder = SnapshotBuilder(FIELDS)
    first = build(builder, [parser.parse(telegram(stamp="240115120000W"))])
    second = build(
        builder, [parser.parse(telegram(stamp="240115120001W", power="02.000*kW"))], first
    )
    assert second.readings["used"] is first.readings["used"]  # same line, same reading
    assert second.readings["power"] is not first.readings["power"]
    assert second.value("power") == 2.0


def test_statistics_period(parser: CachingTelegramParser) -> None:
    builder = SnapshotBuilder(FIELDS)
    # 11:59:50 and 11:59:55 (UTC 10:59:..): at 5 s steps the next publish is 12:00:00.
    a = build(builder, [parser.parse(telegram(stamp="240115115950W"))])
    b = build(builder, [parser.parse(telegram(stamp="240115115955W"))], a)
    stamp = datetime(2024, 1, 15, 10, 59, 55, tzinfo=UTC).timestamp()
    assert b.period == int(stamp // STATISTICS_PERIOD)
    assert not a.closes_period  # no step known yet
    assert b.closes_period  # 5 s later is the next period
    c = build(builder, [parser.parse(telegram(stamp="240115120000W"))], b)
    assert c.period == b.period + 1
    assert not c.closes_period


def test_without_a_meter_clock_the_receiving_time_places_the_period() -> None:
    class Tg:
        pass

    snap = publish(SnapshotBuilder(()), [Tg()], None, 1_000.0)
    assert snap.timestamp is None
    assert snap.at == 1_000.0
    assert snap.period == 3


def test_mbus_readings_per_channel(parser: CachingTelegramParser) -> None:
    text = telegram(
        "000123.456*kWh",
        "01.193*kW",
        "240115120000W",
        "0-1:24.1.0(003)",
        f"0-1:96.1.0({GAS})",
        "0-1:24.2.1(240115115500W)(00012.345*m3)",
        "0-2:24.1.0(007)",
    )
    snap = build(SnapshotBuilder(()), [parser.parse(text)])
    gas, water = sorted(snap.mbus, key=lambda m: m.channel)
    assert (gas.channel, gas.device_type, gas.identifier) == (1, 3, GAS)
    assert (gas.value, gas.unit, gas.has_reading) == (12.345, "m3", True)
    assert gas.at == datetime(2024, 1, 15, 10, 55, tzinfo=UTC)
    assert (water.channel, water.device_type, water.has_reading) == (2, 7, False)
    assert water.value is None
    assert snap.mbus_value(9, GAS) is gas.reading  # by identifier, on whatever channel
    assert snap.mbus_value(2, None) is water.reading is None  # type only: no reading


def test_mbus_values() -> None:
    """A sub-meter's reading as an entity reads it: none for a channel without one."""

    class Tg:
        pass

    gas = MbusReading(1, 3, GAS, 12.345, "m3", None, has_reading=True)
    water = MbusReading(2, 7, None, None, None, None, has_reading=False)  # type only
    unreadable = MbusReading(3, 3, None, None, "m3", None, has_reading=True)  # no number
    published = publish(SnapshotBuilder(()), [Tg()], None, 0.0)
    snap = dataclasses.replace(published, mbus=(gas, water, unreadable))
    assert snap.mbus_value(1, GAS) == Reading(12.345, "m3")
    assert snap.mbus_value(9, GAS) == Reading(12.345, "m3")  # by its identifier
    assert snap.mbus_value(1, None) == Reading(12.345, "m3")  # by its channel
    assert snap.mbus_value(2, None) is None
    assert snap.mbus_value(3, None) is None
    assert snap.mbus_value(4, None) is None  # no such channel


def test_unknown_obis_lines(parser: CachingTelegramParser) -> None:
    text = telegram("000123.456*kWh", "01.193*kW", "240115120000W", "1-0:3.8.0(000123.456*kvarh)")
    snap = build(SnapshotBuilder(()), [parser.parse(text)])
    assert dict(snap.unknown_lines) == {"1-0:3.8.0": "(000123.456*kvarh)"}


def test_snapshot_is_frozen(parser: CachingTelegramParser) -> None:
    snap = build(SnapshotBuilder(FIELDS), [parser.parse(telegram())])
    with pytest.raises(FrozenInstanceError):
        snap.period = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.readings["x"] = snap.readings["used"]  # type: ignore[index]


def test_snapshot_module_is_free_of_home_assistant() -> None:
    source = Path(__file__).parents[1] / "custom_components" / "dsmr" / "snapshot.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not any(name.startswith("homeassistant") for name in imported)
    # Its own imports are pure too (tests/test_import_graph.py follows them all).
    assert {name for name in imported if name.startswith(".")} <= {".parser", ".derived"}


def test_unchanged_mbus_lines_reuse_the_previous_readings(parser: CachingTelegramParser) -> None:
    def with_gas(reading: str, stamp: str) -> str:
        return telegram(
            "000123.456*kWh",
            "01.193*kW",
            stamp,
            "0-1:24.1.0(003)",
            f"0-1:96.1.0({GAS})",
            f"0-1:24.2.1(240115115500W)({reading}*m3)",
        )

    builder = SnapshotBuilder(())
    first = build(builder, [parser.parse(with_gas("00012.345", "240115120000W"))])
    same = build(builder, [parser.parse(with_gas("00012.345", "240115120001W"))], first)
    assert same.mbus is first.mbus
    # One reading object while unchanged: a sub-meter's entity skips such a push at a glance.
    assert same.mbus_value(1, GAS) is first.mbus_value(1, GAS)
    moved = build(builder, [parser.parse(with_gas("00012.346", "240115120002W"))], same)
    assert moved.mbus is not same.mbus
    assert moved.mbus[0].value == 12.346
    assert moved.mbus_value(1, GAS) == Reading(12.346, "m3")


def test_select_reads_only_the_fields_shown(parser: CachingTelegramParser) -> None:
    builder = SnapshotBuilder(FIELDS)
    builder.select({"used", "net"})
    snap = build(builder, [parser.parse(telegram())])
    assert set(snap.readings) == {"used", "net"}
    builder.select(None)
    assert set(build(builder, [parser.parse(telegram())], snap).readings) == {
        "used",
        "power",
        "text",
        "net",
    }


@pytest.mark.parametrize(
    ("version", "mbus"),
    [("5", ("gas", "water")), ("5B", ("gas",)), ("4", ()), ("5L", ("gas",))],
)
def test_a_snapshot_from_the_lines_that_moved_is_the_full_one(
    version: str, mbus: tuple[str, ...]
) -> None:
    """Built from the previous snapshot and the lines that moved, a snapshot is what reading
    every field gives: the same readings, M-Bus readings, derived values and changed keys."""
    meter = Meter(
        version,
        seed=7,
        start=datetime(2024, 1, 15, 11, 58, tzinfo=UTC),
        mbus=mbus,
        mbus_interval=60,
        appliances=True,
    )
    parser = caching_parser(meter.telegram_specification())
    quick, full = (
        snapshot_builder({"dsmr_version": version}),
        snapshot_builder({"dsmr_version": version}),
    )
    quick_snap = full_snap = None
    incremental = 0
    for second in range(400):
        meter.step(1.0)
        parsed = parser.parse(meter.telegram())
        if quick_snap is not None and changed_since(parsed, quick_snap.telegram) is not None:
            incremental += 1
        full.select(None)  # the next build reads every field
        quick_snap = publish(quick, [parsed], quick_snap, second, fresh=False)
        full_snap = publish(full, [parsed], full_snap, second, fresh=False)
        for name in ("readings", "mbus", "derived", "changed", "period", "equipment_id"):
            assert getattr(quick_snap, name) == getattr(full_snap, name), (second, name)
        assert quick_snap.number == full_snap.number == second + 1
    assert incremental > 350  # nearly every telegram took the short way


def test_changed_keys_name_what_is_not_the_previous_snapshots(
    parser: CachingTelegramParser,
) -> None:
    builder = SnapshotBuilder(FIELDS)
    first = build(builder, [parser.parse(telegram())])
    assert first.changed == {"used", "power", "text", "net", MBUS_CHANGED}
    second = build(builder, [parser.parse(telegram(power="01.200*kW"))], first)
    assert second.changed == {"power", "net"}
    assert second.readings["used"] is first.readings["used"]
    third = build(
        builder, [parser.parse(telegram(power="01.200*kW", used="000124.000*kWh"))], second
    )
    assert third.changed == {"used"}
    assert third.number == 3


def test_the_meter_is_identified_on_a_fresh_publish_only(parser: CachingTelegramParser) -> None:
    seen: list[Any] = []
    builder = SnapshotBuilder(FIELDS, identify=lambda t: seen.append(t) or "meter")
    first = publish(builder, [parser.parse(telegram())], None, 0.0, fresh=False)
    second = publish(builder, [parser.parse(telegram(power="00.001*kW"))], first, 1.0, fresh=False)
    assert second.equipment_id == "meter"
    assert seen == [first.telegram]
    publish(builder, [parser.parse(telegram())], second, 2.0, fresh=True)
    assert len(seen) == 2
