"""Telegram templates for the non-Dutch meters: Belgium (Fluvius e-MUCS), Sweden, EasyMeter Q3D,
E.ON Hungary, the Belgian Iskra IE.5 / IE.7 and the Austrian Sagemcom T210-D-r (sent encrypted)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from .templates import (
    Builder,
    Rendered,
    TemplateContext,
    currents,
    hex_id,
    phase_powers,
    stamp,
    tariffs,
    voltages,
)

if TYPE_CHECKING:
    from .house import House

__all__ = [
    "render_austria",
    "render_belgium",
    "render_eon_hungary",
    "render_iskra_ie",
    "render_q3d",
    "render_sweden",
]

#: Printed in unused slots of the Belgian peak history, as real meters do.
INVALID_STAMP = "632525252525W"


def render_belgium(h: House, ctx: TemplateContext) -> Rendered:
    """Fluvius e-MUCS H 1.7: capacity tariff demand lines, BE-style M-Bus channels."""
    b = Builder(ctx.header)
    b.text("0-0:96.1.4", "BELGIUM_VERSION_INFORMATION", "50217")
    b.text("0-0:96.1.1", "BELGIUM_EQUIPMENT_IDENTIFIER", hex_id(ctx.equipment_id))
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    tariffs(b, h)
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    b.num("1-0:1.4.0", "BELGIUM_CURRENT_AVERAGE_DEMAND", h.avg_demand_kw, "06.3f", "kW")
    peak = f"{h.month_peak_kw:06.3f}"
    b.raw(f"1-0:1.6.0({stamp(h.month_peak_at)})({peak}*kW)")
    b.record("BELGIUM_MAXIMUM_DEMAND_MONTH", Decimal(peak), "kW")
    slots = "".join(
        f"({stamp(p.month)})({stamp(p.at) if p.at else INVALID_STAMP})({p.kw:06.3f}*kW)"
        for p in h.peak_history
    )
    b.raw(f"0-0:98.1.0({len(h.peak_history)})(1-0:1.6.0)(1-0:1.6.0){slots}")
    b.record("BELGIUM_MAXIMUM_DEMAND_13_MONTHS", len(h.peak_history), "kW")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "06.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "06.3f", "kW")
    phase_powers(b, h)
    voltages(b, h)
    currents(b, h, "06.2f")
    b.integer("0-0:96.3.10", "ACTUAL_SWITCH_POSITION", 1, 1)
    b.num("0-0:17.0.0", "ACTUAL_TRESHOLD_ELECTRICITY", 999.9, "05.1f", "kW")
    b.raw("1-0:31.4.0(999*A)")
    b.record("FUSE_THRESHOLD_L1", Decimal(999), "A")
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    for ch in h.mbus:
        n = ch.channel
        b.integer(f"0-{n}:24.1.0", f"MBUS_DEVICE_TYPE@{n}", ch.device_type, 3)
        b.text(f"0-{n}:96.1.1", f"MBUS_EQUIPMENT_IDENTIFIER@{n}", hex_id(ch.identifier))
        if ch.kind == "gas":  # BE gas: valve state, and the non-temperature-corrected volume
            b.integer(f"0-{n}:24.4.0", f"MBUS_VALVE_POSITION@{n}", 1, 1)
            b.reading(f"0-{n}:24.2.3", f"MBUS_METER_READING@{n}", ch)
        else:
            b.reading(f"0-{n}:24.2.1", f"MBUS_METER_READING@{n}", ch)
    return b.rendered(crc=True)


def render_sweden(h: House, ctx: TemplateContext) -> Rendered:
    """Swedish P1 (Energiforetagen): totals only, reactive power per phase, no identifier."""
    b = Builder(ctx.header)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    b.num("1-0:1.8.0", "ELECTRICITY_IMPORTED_TOTAL", sum(h.import_kwh[:2]), "012.3f", "kWh")
    b.num("1-0:2.8.0", "ELECTRICITY_EXPORTED_TOTAL", sum(h.export_kwh[:2]), "012.3f", "kWh")
    b.num(
        "1-0:3.8.0",
        "ELECTRICITY_REACTIVE_IMPORTED_TOTAL",
        sum(h.reactive_import_kvarh),
        "012.3f",
        "kvarh",
    )
    b.num(
        "1-0:4.8.0",
        "ELECTRICITY_REACTIVE_EXPORTED_TOTAL",
        sum(h.reactive_export_kvarh),
        "012.3f",
        "kvarh",
    )
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "08.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "08.3f", "kW")
    q = h.phase_reactive_kvar
    b.raw(f"1-0:3.7.0({sum(max(x, 0) for x in q):08.3f}*kvar)")
    b.raw(f"1-0:4.7.0({sum(max(-x, 0) for x in q):08.3f}*kvar)")
    phase_powers(b, h, "08.3f")
    for sign, codes in (("POSITIVE", (23, 43, 63)), ("NEGATIVE", (24, 44, 64))):
        for p, code in enumerate(codes):
            value = max(q[p], 0) if sign == "POSITIVE" else max(-q[p], 0)
            name = f"INSTANTANEOUS_REACTIVE_POWER_L{p + 1}_{sign}"
            b.num(f"1-0:{code}.7.0", name, value, "08.3f", "kvar")
    voltages(b, h)
    currents(b, h, "05.1f")
    return b.rendered(crc=True)


def render_q3d(h: House, ctx: TemplateContext) -> Rendered:
    """EasyMeter Q3D (D0 output through a gateway): ``*255`` suffixes, W, signed net power."""
    b = Builder(ctx.header)
    b.text("1-0:0.0.0*255", "Q3D_EQUIPMENT_IDENTIFIER", ctx.equipment_id)
    b.num("1-0:1.8.0*255", "ELECTRICITY_IMPORTED_TOTAL", sum(h.import_kwh[:2]), "016.7f", "kWh")
    b.num("1-0:2.8.0*255", "ELECTRICITY_EXPORTED_TOTAL", sum(h.export_kwh[:2]), "016.7f", "kWh")
    for p, code in enumerate((21, 41, 61)):
        b.num(
            f"1-0:{code}.7.0*255",
            f"INSTANTANEOUS_ACTIVE_POWER_L{p + 1}_POSITIVE",
            h.phase_net_kw[p] * 1000,
            "09.2f",
            "W",
        )
    net = sum(h.phase_net_kw) * 1000
    b.num("1-0:1.7.0*255", "CURRENT_ELECTRICITY_USAGE", net, "09.2f", "W")
    b.text("1-0:96.5.5*255", "Q3D_EQUIPMENT_STATE", "80")
    b.text("0-0:96.1.255*255", "Q3D_EQUIPMENT_SERIALNUMBER", ctx.equipment_id)
    return b.rendered(crc=False)


def render_eon_hungary(h: House, ctx: TemplateContext) -> Rendered:
    """E.ON Hungary (Sagemcom/Landis): four tariffs, quadrant reactive registers, power factors."""
    b = Builder(ctx.header)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    b.text("0-0:42.0.0", "COSEM_LOGICAL_DEVICE_NAME", hex_id(ctx.equipment_id))
    b.text("0-0:96.1.0", "EQUIPMENT_SERIAL_NUMBER", hex_id(ctx.equipment_id[-12:]))
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    b.text("0-0:96.3.10", "ACTUAL_SWITCH_POSITION", "1")
    b.num("0-0:17.0.0", "ACTUAL_TRESHOLD_ELECTRICITY", 90.0, "06.3f", "kW")
    b.num("1-0:1.8.0", "ELECTRICITY_IMPORTED_TOTAL", sum(h.import_kwh), "010.3f", "kWh")
    for n in range(1, 5):
        b.num(f"1-0:1.8.{n}", f"ELECTRICITY_USED_TARIFF_{n}", h.import_kwh[n - 1], "010.3f", "kWh")
    b.num("1-0:2.8.0", "ELECTRICITY_EXPORTED_TOTAL", sum(h.export_kwh), "010.3f", "kWh")
    for n in range(1, 5):
        b.num(
            f"1-0:2.8.{n}",
            f"ELECTRICITY_DELIVERED_TARIFF_{n}",
            h.export_kwh[n - 1],
            "010.3f",
            "kWh",
        )
    quad = h.quadrant_kvarh
    b.num("1-0:3.8.0", "ELECTRICITY_REACTIVE_IMPORTED_TOTAL", quad[0] + quad[1], "010.3f", "kvarh")
    b.num("1-0:4.8.0", "ELECTRICITY_REACTIVE_EXPORTED_TOTAL", quad[2] + quad[3], "010.3f", "kvarh")
    for n in range(4):
        b.num(
            f"1-0:{n + 5}.8.0", f"ELECTRICITY_REACTIVE_TOTAL_Q{n + 1}", quad[n], "010.3f", "kvarh"
        )
    combined = sum(h.import_kwh) + sum(h.export_kwh)
    b.num("1-0:15.8.0", "ELECTRICITY_COMBINED", combined, "010.3f", "kWh")
    voltages(b, h)
    currents(b, h)
    b.num("1-0:13.7.0", "INSTANTANEOUS_POWER_FACTOR_TOTAL", h.total_power_factor, "05.3f")
    for p, code in enumerate((33, 53, 73)):
        b.num(f"1-0:{code}.7.0", f"INSTANTANEOUS_POWER_FACTOR_L{p + 1}", h.power_factor[p], "05.3f")
    b.num("1-0:14.7.0", "FREQUENCY", h.frequency, "05.2f", "Hz")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "06.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "06.3f", "kW")
    total_q = sum(h.phase_reactive_kvar)
    by_quadrant = [
        total_q if total_q > 0 and h.import_kw > 0 else 0.0,
        total_q if total_q > 0 and h.import_kw == 0 else 0.0,
        -total_q if total_q < 0 and h.export_kw > 0 else 0.0,
        -total_q if total_q < 0 and h.export_kw == 0 else 0.0,
    ]
    for n in range(4):
        b.num(
            f"1-0:{n + 5}.7.0",
            f"INSTANTANEOUS_REACTIVE_POWER_Q{n + 1}",
            by_quadrant[n],
            "06.3f",
            "kvar",
        )
    for p, code in enumerate((31, 51, 71)):
        b.num(f"1-0:{code}.4.0", f"FUSE_THRESHOLD_L{p + 1}", 200.0, "06.2f", "A")
    month = "".join(
        f"({v:010.3f}*kWh)"
        for v in (
            sum(h.last_month_import),
            *h.last_month_import,
            sum(h.last_month_export),
            *h.last_month_export,
        )
    )
    b.raw(f"0-0:98.1.0({stamp(h.last_month_at)}){month}")
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    return b.rendered(crc=True)


def render_iskra_ie(h: House, ctx: TemplateContext) -> Rendered:
    """Iskra IE.5 / IE.7 (Belgium, dsmr_parser's ISKRA_IE): the meter number is in ``96.1.0``."""
    b = Builder(ctx.header)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)
    b.text("0-0:96.1.0", "EQUIPMENT_IDENTIFIER_GAS", hex_id(ctx.equipment_id))
    tariffs(b, h)
    b.text("0-0:96.14.0", "ELECTRICITY_ACTIVE_TARIFF", f"{h.tariff:04d}")
    b.num("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "06.3f", "kW")
    b.num("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "06.3f", "kW")
    phase_powers(b, h)
    voltages(b, h)
    currents(b, h)
    b.text("0-0:96.3.10", "ACTUAL_SWITCH_POSITION", "1")
    b.text("0-0:96.13.0", "TEXT_MESSAGE", hex_id(ctx.text_message))
    b.text("0-0:96.1.1", "EQUIPMENT_IDENTIFIER", "")
    return b.rendered(crc=True)


def render_austria(h: House, ctx: TemplateContext) -> Rendered:
    """Sagemcom T210-D-r (Austria): integer Wh/W/varh/var registers, no identifier."""
    b = Builder(ctx.header)
    b.text("1-3:0.2.8", "P1_MESSAGE_HEADER", ctx.p1_version)
    b.stamp("0-0:1.0.0", "P1_MESSAGE_TIMESTAMP", h.now)

    def wh(obis: str, name: str, value: float, unit: str) -> None:
        text = f"{round(value * 1000):09d}"
        b.raw(f"{obis}({text}*{unit})")
        b.record(name, Decimal(text), unit)

    wh("1-0:1.8.0", "ELECTRICITY_IMPORTED_TOTAL", sum(h.import_kwh[:2]), "Wh")
    wh("1-0:1.8.1", "ELECTRICITY_USED_TARIFF_1", h.import_kwh[0], "Wh")
    wh("1-0:1.8.2", "ELECTRICITY_USED_TARIFF_2", h.import_kwh[1], "Wh")
    wh("1-0:1.7.0", "CURRENT_ELECTRICITY_USAGE", h.import_kw, "W")
    wh("1-0:2.8.0", "ELECTRICITY_EXPORTED_TOTAL", sum(h.export_kwh[:2]), "Wh")
    wh("1-0:2.8.1", "ELECTRICITY_DELIVERED_TARIFF_1", h.export_kwh[0], "Wh")
    wh("1-0:2.8.2", "ELECTRICITY_DELIVERED_TARIFF_2", h.export_kwh[1], "Wh")
    wh("1-0:2.7.0", "CURRENT_ELECTRICITY_DELIVERY", h.export_kw, "W")
    q_imp, q_exp = h.reactive_import_kvarh, h.reactive_export_kvarh
    q = h.phase_reactive_kvar
    wh("1-0:3.8.0", "ELECTRICITY_REACTIVE_IMPORTED_TOTAL", q_imp[0] + q_imp[1], "varh")
    wh("1-0:3.8.1", "ELECTRICITY_REACTIVE_IMPORTED_TARIFF_1", q_imp[0], "varh")
    wh("1-0:3.8.2", "ELECTRICITY_REACTIVE_IMPORTED_TARIFF_2", q_imp[1], "varh")
    wh("1-0:3.7.0", "CURRENT_REACTIVE_IMPORTED", sum(max(x, 0) for x in q), "var")
    wh("1-0:4.8.0", "ELECTRICITY_REACTIVE_EXPORTED_TOTAL", q_exp[0] + q_exp[1], "varh")
    wh("1-0:4.8.1", "ELECTRICITY_REACTIVE_EXPORTED_TARIFF_1", q_exp[0], "varh")
    wh("1-0:4.8.2", "ELECTRICITY_REACTIVE_EXPORTED_TARIFF_2", q_exp[1], "varh")
    wh("1-0:4.7.0", "CURRENT_REACTIVE_EXPORTED", sum(max(-x, 0) for x in q), "var")
    return b.rendered(crc=True)
