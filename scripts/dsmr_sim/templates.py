"""Telegram templates for the Dutch DSMR family (2.2, 4, 5, 4+) and the Luxembourg Smarty.

Each template writes the lines a real meter of that kind sends, in the order of the spec's
example telegrams, with fixed-width zero-padded values. While writing, the :class:`Builder`
records what ``dsmr_parser`` should read back for every line (value and unit, keyed by the
``value_name`` of ``dsmr_parser.telegram_specifications``; M-Bus lines as ``NAME@channel``), so
tests can compare a parsed telegram with what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from .crc import with_crc

if TYPE_CHECKING:
    from .house import House, MbusChannel

__all__ = ["Builder", "Rendered", "TemplateContext", "hex_id", "stamp"]

type Value = Decimal | int | str | datetime | None


def hex_id(text: str) -> str:
    """Hex-encode an ASCII identifier the way meters print equipment identifiers."""
    return text.encode("ascii").hex().upper()


def stamp(dt: datetime, *, dst_flag: bool = True) -> str:
    """Format a DSMR timestamp ``YYMMDDhhmmssX`` (X = S in summer time, W in winter time)."""
    flag = ("S" if dt.dst() else "W") if dst_flag else ""
    return f"{dt:%y%m%d%H%M%S}{flag}"


@dataclass(frozen=True)
class TemplateContext:
    """What a template needs besides the house: identity and configuration of the meter."""

    token: str
    header: str
    equipment_id: str
    text_message: str
    p1_version: str


@dataclass
class Rendered:
    """A rendered plain-text telegram and the values ``dsmr_parser`` should read from it."""

    text: str
    values: dict[str, Value] = field(default_factory=dict)
    units: dict[str, str | None] = field(default_factory=dict)
    #: Lines no specification names (``Meter(extra_lines=...)``): OBIS code -> rest of the line.
    extra: dict[str, str] = field(default_factory=dict)


class Builder:
    """Accumulates telegram lines and records the expected parsed values."""

    def __init__(self, header: str, *, blank_line: bool = True) -> None:
        """Start a telegram with its ``/`` identification line."""
        self.lines: list[str] = [header, ""] if blank_line else [header]
        self.values: dict[str, Value] = {}
        self.units: dict[str, str | None] = {}

    def raw(self, line: str) -> None:
        """Add a line as is."""
        self.lines.append(line)

    def record(self, name: str, value: Value, unit: str | None = None) -> None:
        """Record an expected parsed value without writing a line."""
        self.values[name] = value
        self.units[name] = unit

    def num(self, obis: str, name: str, value: float, fmt: str, unit: str | None = None) -> None:
        """Add ``obis(value*unit)`` with ``value`` formatted by ``fmt`` (a format spec)."""
        text = format(value, fmt)
        self.raw(f"{obis}({text}*{unit})" if unit else f"{obis}({text})")
        self.record(name, Decimal(text), unit)

    def integer(
        self, obis: str, name: str, value: int, width: int, *, as_str: bool = False
    ) -> None:
        """Add ``obis(000n)``; ``as_str`` when the spec parses the value as a string."""
        text = f"{value:0{width}d}"
        self.raw(f"{obis}({text})")
        self.record(name, text if as_str else value)

    def text(self, obis: str, name: str, value: str) -> None:
        """Add ``obis(value)``; an empty value parses as ``None``."""
        self.raw(f"{obis}({value})")
        self.record(name, value or None)

    def stamp(self, obis: str, name: str, dt: datetime) -> None:
        """Add a timestamp line such as ``0-0:1.0.0(240115120000W)``."""
        self.raw(f"{obis}({stamp(dt)})")
        self.record(name, dt)

    def reading(self, obis: str, name: str, ch: MbusChannel, fmt: str = "09.3f") -> None:
        """Add an M-Bus reading ``obis(timestamp)(value*unit)`` captured on the hour."""
        text = format(ch.reading, fmt)
        self.raw(f"{obis}({stamp(ch.reading_at)})({text}*{ch.unit})")
        self.record(name, Decimal(text), ch.unit)

    def finish(self, *, crc: bool) -> str:
        """Close the telegram with ``!`` and, when the version has one, the CRC."""
        body = "\r\n".join(self.lines) + "\r\n!"
        return with_crc(body) if crc else body + "\r\n"

    def rendered(self, *, crc: bool) -> Rendered:
        """Finish and return the telegram with the recorded values."""
        return Rendered(self.finish(crc=crc), dict(self.values), dict(self.units))


# --- shared blocks ------------------------------------------------------------------------


def tariffs(b: Builder, h: House, count: int = 2, fmt: str = "010.3f", unit: str = "kWh") -> None:
    """Tariff registers 1.8.n then 2.8.n (n = 1..count)."""
    for n in range(1, count + 1):
        b.num(f"1-0:1.8.{n}", f"ELECTRICITY_USED_TARIFF_{n}", h.import_kwh[n - 1], fmt, unit)
    for n in range(1, count + 1):
        b.num(f"1-0:2.8.{n}", f"ELECTRICITY_DELIVERED_TARIFF_{n}", h.export_kwh[n - 1], fmt, unit)


def failures(b: Builder, h: House) -> None:
    """Power failure counters and the long power failure log."""
    b.integer("0-0:96.7.21", "SHORT_POWER_FAILURE_COUNT", h.short_failures, 5)
    b.integer("0-0:96.7.9", "LONG_POWER_FAILURE_COUNT", h.long_failures, 5)
    log = "".join(f"({stamp(f.end)})({f.duration_s:010d}*s)" for f in h.failure_log)
    b.raw(f"1-0:99.97.0({len(h.failure_log)})(0-0:96.7.19){log}")
    b.record("POWER_EVENT_FAILURE_LOG", len(h.failure_log))


def sags_swells(b: Builder, h: House) -> None:
    """Voltage sag and swell counters per phase."""
    for p, code in enumerate((32, 52, 72)):
        b.integer(f"1-0:{code}.32.0", f"VOLTAGE_SAG_L{p + 1}_COUNT", h.sags[p], 5)
    for p, code in enumerate((32, 52, 72)):
        b.integer(f"1-0:{code}.36.0", f"VOLTAGE_SWELL_L{p + 1}_COUNT", h.swells[p], 5)


def voltages(b: Builder, h: House, fmt: str = "05.1f") -> None:
    """Instantaneous voltage per phase."""
    for p, code in enumerate((32, 52, 72)):
        b.num(f"1-0:{code}.7.0", f"INSTANTANEOUS_VOLTAGE_L{p + 1}", h.voltage[p], fmt, "V")


def currents(b: Builder, h: House, fmt: str | None = None) -> None:
    """Instantaneous current per phase; integer amps (``000*A``) unless ``fmt`` is given."""
    for p, code in enumerate((31, 51, 71)):
        name = f"INSTANTANEOUS_CURRENT_L{p + 1}"
        if fmt is None:
            amps = round(h.current[p])
            b.raw(f"1-0:{code}.7.0({amps:03d}*A)")
            b.record(name, Decimal(amps), "A")
        else:
            b.num(f"1-0:{code}.7.0", name, h.current[p], fmt, "A")


def phase_powers(b: Builder, h: House, fmt: str = "06.3f", *, interleaved: bool = False) -> None:
    """Per-phase active power import (21/41/61.7.0) and export (22/42/62.7.0)."""
    imp, exp = h.phase_import_kw, h.phase_export_kw
    pos = [
        (f"1-0:{c}.7.0", f"INSTANTANEOUS_ACTIVE_POWER_L{p + 1}_POSITIVE", imp[p])
        for p, c in enumerate((21, 41, 61))
    ]
    neg = [
        (f"1-0:{c}.7.0", f"INSTANTANEOUS_ACTIVE_POWER_L{p + 1}_NEGATIVE", exp[p])
        for p, c in enumerate((22, 42, 62))
    ]
    order = [x for pair in zip(pos, neg, strict=True) for x in pair] if interleaved else pos + neg
    for obis, name, value in order:
        b.num(obis, name, value, fmt, "kW")


def mbus_nl(b: Builder, h: House, *, valve: bool = False, breaker: bool = False) -> None:
    """M-Bus channels the Dutch way: type, ``96.1.0`` identifier, hourly ``24.2.1`` reading."""
    for ch in h.mbus:
        n = ch.channel
        b.integer(f"0-{n}:24.1.0", f"MBUS_DEVICE_TYPE@{n}", ch.device_type, 3)
        b.text(f"0-{n}:96.1.0", f"MBUS_EQUIPMENT_IDENTIFIER@{n}", hex_id(ch.identifier))
        if valve and ch.kind == "gas":
            b.integer(f"0-{n}:24.4.0", f"MBUS_VALVE_POSITION@{n}", 1, 1)
        if breaker:
            b.integer(f"0-{n}:96.3.10", f"MSN_MBUS_SWITCH_POSITION@{n}", 1, 1)
        b.reading(f"0-{n}:24.2.1", f"MBUS_METER_READING@{n}", ch)


# --- versions -------------------------------------------------------------------------------


def render_v2_2(h: House, ctx: TemplateContext) -> Rendered:
    """DSMR 2.2: no timestamp, no CRC; gas in the two-line ``24.3.0`` form."""
    b = Builder(ctx.header)
    b.text("0-0:96.1.1", "EQUIPMENT_IDENTIFIER", hex_id(ctx.equipment_id))
    tariffs(b, h, fmt="09.3f")
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "07.2f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "07.2f", "kW")
    b.num("0-0:17.0.0", "ACTUAL_TRESHOLD_ELECTRICITY", 999.0, "07.2f", "kW")
    b.text("0-0:96.3.10", "ACTUAL_SWITCH_POSITION", "1")
    b.text("0-0:96.13.1", "TEXT_MESSAGE_CODE", "")
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    for ch in h.mbus[:1]:
        b.text("0-1:24.1.0", "DEVICE_TYPE", str(ch.device_type))
        b.text("0-1:96.1.0", "EQUIPMENT_IDENTIFIER_GAS", hex_id(ch.identifier))
        value = f"{ch.reading:09.3f}"
        b.raw(f"0-1:24.3.0({stamp(ch.reading_at, dst_flag=False)})(00)(60)(1)(0-1:24.2.1)(m3)")
        b.raw(f"({value})")
        b.record("GAS_METER_READING", Decimal(value), "m3")
        b.text("0-1:24.4.0", "VALVE_POSITION_GAS", "1")
    return b.rendered(crc=False)


def render_v4(h: House, ctx: TemplateContext) -> Rendered:
    """DSMR 4.2: no voltages; integer currents; per-channel M-Bus with hourly readings."""
    b = Builder(ctx.header)
    b.text("1-3:0.2.8", "P1_MESSAGE_HEADER", ctx.p1_version)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    b.text("0-0:96.1.1", "EQUIPMENT_IDENTIFIER", hex_id(ctx.equipment_id))
    tariffs(b, h)
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "06.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "06.3f", "kW")
    failures(b, h)
    sags_swells(b, h)
    b.text("0-0:96.13.1", "TEXT_MESSAGE_CODE", "")
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    currents(b, h)
    phase_powers(b, h, interleaved=True)
    for ch in h.mbus:
        n = ch.channel
        b.integer(f"0-{n}:24.1.0", f"DEVICE_TYPE@{n}", ch.device_type, 3)
        b.text(f"0-{n}:96.1.0", f"EQUIPMENT_IDENTIFIER_GAS@{n}", hex_id(ch.identifier))
        b.reading(f"0-{n}:24.2.1", f"HOURLY_GAS_METER_READING@{n}", ch)
    return b.rendered(crc=True)


def render_v5(h: House, ctx: TemplateContext) -> Rendered:
    """DSMR 5.0 (also ``4+``: the same telegram on DSMR 4 serial settings)."""
    b = Builder(ctx.header)
    b.text("1-3:0.2.8", "P1_MESSAGE_HEADER", ctx.p1_version)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    b.text("0-0:96.1.1", "EQUIPMENT_IDENTIFIER", hex_id(ctx.equipment_id))
    tariffs(b, h)
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "06.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "06.3f", "kW")
    failures(b, h)
    sags_swells(b, h)
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    voltages(b, h)
    currents(b, h)
    phase_powers(b, h)
    mbus_nl(b, h)
    return b.rendered(crc=True)


def render_smarty(h: House, ctx: TemplateContext) -> Rendered:
    """Luxembourg Smarty (``5L`` plain, ``MSn`` the same telegram inside DLMS encryption)."""
    b = Builder(ctx.header)
    b.text("1-3:0.2.8", "P1_MESSAGE_HEADER", ctx.p1_version)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    b.text("0-0:42.0.0", "LUXEMBOURG_EQUIPMENT_IDENTIFIER", hex_id(ctx.equipment_id))
    b.text("0-0:96.1.1", "EQUIPMENT_IDENTIFIER", hex_id(ctx.equipment_id))
    b.num("1-0:1.8.0", "ELECTRICITY_IMPORTED_TOTAL", sum(h.import_kwh[:2]), "010.3f", "kWh")
    b.num("1-0:2.8.0", "ELECTRICITY_EXPORTED_TOTAL", sum(h.export_kwh[:2]), "010.3f", "kWh")
    tariffs(b, h)
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    q_imp, q_exp = sum(h.reactive_import_kvarh), sum(h.reactive_export_kvarh)
    b.num("1-0:3.8.0", "ELECTRICITY_REACTIVE_IMPORTED_TOTAL", q_imp, "010.3f", "kvarh")
    b.num("1-0:4.8.0", "ELECTRICITY_REACTIVE_EXPORTED_TOTAL", q_exp, "010.3f", "kvarh")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "06.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "06.3f", "kW")
    q = h.phase_reactive_kvar
    b.num("1-0:3.7.0", "CURRENT_REACTIVE_IMPORTED", sum(max(x, 0) for x in q), "06.3f", "kvar")
    b.num("1-0:4.7.0", "CURRENT_REACTIVE_EXPORTED", sum(max(-x, 0) for x in q), "06.3f", "kvar")
    apparent = [abs(p) / pf for p, pf in zip(h.phase_net_kw, h.power_factor, strict=True)]
    s_pos = sum(s for s, p in zip(apparent, h.phase_net_kw, strict=True) if p >= 0)
    b.num("1-0:9.7.0", "MSN_INSTANTANEOUS_APPARENT_POWER_POSITIVE", s_pos, "06.3f", "kVA")
    b.num(
        "1-0:10.7.0",
        "MSN_INSTANTANEOUS_APPARENT_POWER_NEGATIVE",
        sum(apparent) - s_pos,
        "06.3f",
        "kVA",
    )
    b.num("0-0:17.0.0", "ACTUAL_TRESHOLD_ELECTRICITY", 999.9, "05.1f", "kVA")
    b.raw("1-1:31.4.0(00200*A)(00200*A)")
    b.record("MSN_CT_RATIO", 200, "A")
    b.integer("0-0:96.3.10", "ACTUAL_SWITCH_POSITION", 1, 1)
    failures(b, h)
    sags_swells(b, h)
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    for n in range(2, 6):
        b.text(f"0-0:96.13.{n}", f"MSN_TEXT_MESSAGE_{n}", "")
    voltages(b, h)
    currents(b, h)
    phase_powers(b, h)
    for p, (pos, neg) in enumerate(((23, 24), (43, 44), (63, 64))):
        b.num(
            f"1-0:{pos}.7.0",
            f"INSTANTANEOUS_REACTIVE_POWER_L{p + 1}_POSITIVE",
            max(q[p], 0),
            "06.3f",
            "kvar",
        )
        b.num(
            f"1-0:{neg}.7.0",
            f"INSTANTANEOUS_REACTIVE_POWER_L{p + 1}_NEGATIVE",
            max(-q[p], 0),
            "06.3f",
            "kvar",
        )
    mbus_nl(b, h, breaker=True)
    return b.rendered(crc=True)
