"""The update window as running figures, and the frozen snapshot each publish makes of it.

`Window.add` takes each telegram as it arrives: the latest is kept, the averaged values add to
their sum, minimum, maximum and count (from the window's second telegram on: one telegram has no
spread), and the flows move on, telegram by telegram. Nothing grows with the number of
telegrams. `Window.publish` makes the next `Snapshot` (the forecast from the latest telegram)
and starts a new window. Entities read a snapshot: a value is its line's number as a float, in
the unit its line carries, with every decimal the meter sent (or the user's `precision`); a
number not finite as a float (`NaN`, `inf`, `1E1000000`) or a line that does not read is
unknown, and costs no other value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
import math
from types import MappingProxyType
from typing import Any, Final

from dsmr_parser.objects import Telegram

from .demand import (
    DEFAULT_THRESHOLD_KW,
    OFF,
    DemandReading,
    PeakAlarm,
    QuarterForecast,
    forecast_quarter,
    peak_ahead,
)
from .flow_rate import FlowState, timed_out, update_flow
from .telegram import identifier, unit

# Home Assistant's short-term statistics period (s): long-term statistics take a register's
# last state of each.
STATISTICS_PERIOD: Final = 300
# Import minus export, averaged like a line (its key, among the value names).
NET_POWER: Final = "net_power"
SWAPPED_TARIFF_VERSIONS: Final = frozenset({"5B", "5EONHU"})  # 1 = normal, 2 = low
FLOW_TYPES: Final = frozenset({3, 6, 7})  # gas, warm water, water: a flow when in m³
MAIN_GAS: Final = "gas"  # the flow key of DSMR 2.2/4's gas reading on the main telegram
MAIN_GAS_READINGS: Final = ("HOURLY_GAS_METER_READING", "GAS_METER_READING")
MAX_FLOWS: Final = 10  # channels 1-9 and the main gas reading
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def number(raw: Any, precision: int | None = None) -> float | None:
    """A Decimal as a float (rounded to `precision` if given); None unless finite."""
    if not isinstance(raw, Decimal) or not raw.is_finite():
        return None
    value = float(raw)
    if not math.isfinite(value):
        return None
    return value if precision is None else round(value, precision)


def device_type(value: Any) -> int | None:
    """An M-Bus device type as a number: sent as one, or as text ("003") as core takes it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isdecimal() and len(text) <= 3 else None


def flow_key(channel: int, ident: str | None) -> str:
    """The key of an M-Bus channel's flow: its identifier, or the channel without one."""
    return f"mbus {ident}" if ident else f"channel {channel}"


def net_power(telegram: Any) -> Decimal | None:
    """Import minus export: positive while taking from the grid."""
    usage = getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None)
    delivery = getattr(telegram, "CURRENT_ELECTRICITY_DELIVERY", None)
    if usage is None or delivery is None:
        return None
    value: Decimal = usage.value - delivery.value
    return value


def _raw(telegram: Any, name: str) -> Any:
    """A line's value, or NET_POWER."""
    if name == NET_POWER:
        return net_power(telegram)
    return getattr(getattr(telegram, name, None), "value", None)


def _stamp(telegram: Any) -> datetime | None:
    at = getattr(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None), "value", None)
    return at if isinstance(at, datetime) and at.tzinfo is not None else None


def _kw(obj: Any) -> float | None:
    """A power line in kW (a meter sending W is divided); None if absent or odd."""
    value = number(getattr(obj, "value", None))
    if value is None:
        return None
    return value / 1000 if getattr(obj, "unit", None) == "W" else value


def demand_reading(telegram: Any) -> DemandReading:
    """What a telegram says about demand; a missing or garbled line is None."""
    peak = getattr(telegram, "BELGIUM_MAXIMUM_DEMAND_MONTH", None)
    at = getattr(peak, "datetime", None)
    return DemandReading(
        at=_stamp(telegram),
        average_kw=_kw(getattr(telegram, "BELGIUM_CURRENT_AVERAGE_DEMAND", None)),
        import_kw=_kw(getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None)),
        peak_kw=_kw(peak),
        peak_at=at if isinstance(at, datetime) and at.tzinfo is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Spread:
    """An averaged value over the window."""

    mean: float
    min: float
    max: float
    samples: int

    def attributes(self) -> dict[str, float | int]:
        """What an entity that shows the mean tells beside it."""
        return {"min": self.min, "max": self.max, "samples": self.samples}


@dataclass(frozen=True, slots=True)
class SubMeter:
    """One M-Bus channel of the latest telegram."""

    channel: int
    device_type: int | None
    identifier: str | None
    value: float | None  # the reading; None: none sent, or unreadable
    unit: str | None
    at: datetime | None  # the sub-meter's own time of the reading
    has_reading: bool  # whether the channel carries a reading line at all


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one publish says about the meter."""

    version: str
    telegram: Telegram  # the window's latest
    unknown_lines: Mapping[str, str]  # OBIS lines no specification names: code -> the rest
    spreads: Mapping[str, Spread]  # averaged values, for a window of more than one telegram
    submeters: tuple[SubMeter, ...]
    timestamp: datetime | None  # the meter's clock
    equipment_id: str | None
    replaced: bool  # the meter reports another equipment identifier than the entry's
    period: int  # the statistics period: seconds // STATISTICS_PERIOD
    closes_period: bool  # the next publish, as far apart as the last two, is in the next
    at: float  # the time the period is placed by (meter's clock, else reception)
    samples: int  # telegrams in the window
    published: int  # publishes so far, this one included
    precision: int | None = None
    forecast: QuarterForecast | None = None  # None: no demand lines, or a garbled reading
    last_forecast: QuarterForecast | None = None  # the last one not None: the next goes on
    alarm: PeakAlarm = OFF
    threshold_kw: float = DEFAULT_THRESHOLD_KW
    flows: Mapping[str, FlowState] = field(default_factory=lambda: _EMPTY)

    def line(self, name: str) -> Any:
        """The line's dsmr_parser object (None: not in the telegram)."""
        return getattr(self.telegram, name, None)

    def value(self, name: str) -> Any:
        """The line's value as dsmr_parser read it."""
        return getattr(self.line(name), "value", None)

    def number(self, name: str) -> float | None:
        """The value as a float: the window's mean if averaged; None when unreadable."""
        if (spread := self.spreads.get(name)) is not None:
            return spread.mean
        try:
            return number(_raw(self.telegram, name), self.precision)
        except ArithmeticError:
            return None

    def unit(self, name: str) -> str | None:
        """The unit on the line, as Home Assistant writes it."""
        return unit(self.line("CURRENT_ELECTRICITY_USAGE" if name == NET_POWER else name))

    def tariff(self) -> str | None:
        """The tariff in force, low or normal."""
        code = {"0001": "low", "0002": "normal"}.get(str(self.value("ELECTRICITY_ACTIVE_TARIFF")))
        if code and self.version in SWAPPED_TARIFF_VERSIONS:
            return "normal" if code == "low" else "low"
        return code

    def submeter(self, channel: int, ident: str | None) -> SubMeter | None:
        """The sub-meter with this identifier (without one: on this channel)."""
        for found in self.submeters:
            if found.identifier == ident if ident else found.channel == channel:
                return found
        return None


class _Sum:
    """Running sum, minimum, maximum, count and decimals of a value."""

    __slots__ = ("digits", "high", "low", "samples", "total")

    def __init__(self) -> None:
        self.total, self.low, self.high, self.samples, self.digits = 0.0, math.inf, -math.inf, 0, 0

    def add(self, raw: Any) -> None:
        if (value := number(raw)) is None:
            return
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)
        self.samples += 1
        if isinstance(exponent := raw.as_tuple().exponent, int):
            self.digits = max(self.digits, -exponent)

    def spread(self, precision: int | None) -> Spread | None:
        if not self.samples:
            return None
        digits = self.digits if precision is None else precision  # as precise as the meter
        mean = round(self.total / self.samples, digits)
        return Spread(mean, round(self.low, digits), round(self.high, digits), self.samples)


class Window:
    """One meter's telegrams since the last publish, as running figures."""

    def __init__(
        self,
        version: str,
        averaged: Collection[str],
        *,
        precision: int | None = None,
        demand: bool = False,
        threshold_kw: float = DEFAULT_THRESHOLD_KW,
        flows: Mapping[str, FlowState] = _EMPTY,
    ) -> None:
        """For a meter of `version`, averaging the values named `averaged` (or NET_POWER)."""
        self.version = version
        self.averaged = tuple(averaged)
        self.precision = precision
        self.demand = demand
        self.threshold_kw = threshold_kw
        self.flows = flows  # by `flow_key`, or MAIN_GAS
        self.pending = 0
        self._latest: Any = None
        self._unknown: Mapping[str, str] = _EMPTY
        self._first: Any = None
        self._sums: dict[str, _Sum] = {}

    def add(self, telegram: Any, unknown_lines: Mapping[str, str] = _EMPTY) -> None:
        """Take one telegram; it is kept only while it is the latest."""
        self.pending += 1
        if self.pending == 1:
            self._first = telegram
        else:
            if self.pending == 2:
                self._accumulate(self._first)
            self._accumulate(telegram)
        self._latest, self._unknown = telegram, unknown_lines
        self.flows = self._flows_after(telegram)

    def identity(self) -> str | None:
        """The equipment identifier of the latest telegram."""
        return None if self._latest is None else identifier(self._latest, self.version)

    def discard(self) -> None:
        """Forget the window's telegrams (the connection was lost); the flows go on."""
        self.pending = 0
        self._latest = self._first = None
        self._sums = {}

    def publish(
        self, previous: Snapshot | None, received_at: float, *, fresh: bool, replaced: bool
    ) -> Snapshot:
        """The snapshot of the window (at least one telegram added); a new window begins.

        `fresh`: the window starts a connection, so the meter is identified again.
        """
        telegram, samples, sums = self._latest, self.pending, self._sums
        unknown = self._unknown
        self.discard()
        spreads = {}
        for name, running in sums.items():
            if (spread := running.spread(self.precision)) is not None:
                spreads[name] = spread
        stamp = _stamp(telegram)
        at = stamp.timestamp() if stamp is not None else received_at
        step = at - previous.at if previous is not None and previous.at < at else 0.0
        period = int(at // STATISTICS_PERIOD)
        ident = previous.equipment_id if previous is not None and not fresh else None
        ident = ident or identifier(telegram, self.version)
        forecast, last = None, previous.last_forecast if previous is not None else None
        alarm = previous.alarm if previous is not None else OFF
        if self.demand:
            try:
                forecast = forecast_quarter(demand_reading(telegram), last)
            except ArithmeticError, ValueError:  # absurd numbers: none this time
                forecast = None
            if forecast is not None and not math.isfinite(forecast.forecast_kw):
                forecast = None  # 1E308 kW and more: it overflows
            last = forecast or last
            alarm = peak_ahead(forecast, alarm, self.threshold_kw)
        return Snapshot(
            version=self.version,
            telegram=telegram,
            unknown_lines=unknown,
            spreads=MappingProxyType(spreads) if spreads else _EMPTY,
            submeters=tuple(self._submeters(telegram)),
            timestamp=stamp,
            equipment_id=ident,
            replaced=replaced,
            period=period,
            closes_period=int((at + step) // STATISTICS_PERIOD) != period,
            at=at,
            samples=samples,
            published=previous.published + 1 if previous is not None else 1,
            precision=self.precision,
            forecast=forecast,
            last_forecast=last,
            alarm=alarm,
            threshold_kw=self.threshold_kw,
            flows=self.flows,
        )

    def _accumulate(self, telegram: Any) -> None:
        for name in self.averaged:
            try:
                raw = _raw(telegram, name)
            except ArithmeticError:  # 1E1000000 - 1: no sample
                continue
            if isinstance(raw, Decimal):
                self._sums.setdefault(name, _Sum()).add(raw)

    def _submeters(self, telegram: Any) -> Iterator[SubMeter]:
        for device in getattr(telegram, "MBUS_DEVICES", None) or ():
            reading = getattr(device, "MBUS_METER_READING", None)
            ident = getattr(getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None), "value", None)
            at = getattr(reading, "datetime", None)
            kind = getattr(getattr(device, "MBUS_DEVICE_TYPE", None), "value", None)
            yield SubMeter(
                channel=device.channel_id,
                device_type=device_type(kind),
                identifier=str(ident) if ident else None,
                value=None if reading is None else number(reading.value, self.precision),
                unit=unit(reading),
                at=at if isinstance(at, datetime) else None,
                has_reading=reading is not None,
            )

    def _flows_after(self, telegram: Any) -> Mapping[str, FlowState]:
        """The flows after one more telegram: each capture's arrival is the first that has it.

        A flow not in the telegram keeps its value until it times out, unless it has none (an
        identifier made up once leaves nothing behind); at most MAX_FLOWS are kept.
        """
        flows, now = self.flows, _stamp(telegram)
        changed: dict[str, FlowState] | None = None  # a copy, once a flow moved
        seen = set()
        for key, capture in _captures(telegram):
            seen.add(key)
            at = getattr(capture, "datetime", None)
            try:
                state = update_flow(
                    flows.get(key),
                    at if isinstance(at, datetime) and at.tzinfo is not None else None,
                    capture.value if number(capture.value) is not None else None,
                    now,
                )
            except ArithmeticError:  # an absurd reading: this flow only is unknown
                state = FlowState()
            if state is not flows.get(key):
                changed = changed if changed is not None else dict(flows)
                changed[key] = state
        for key in flows.keys() - seen:
            state = timed_out(flows[key], now)
            if state.m3h is None or len(flows) > MAX_FLOWS:  # nothing to show: forgotten
                changed = changed if changed is not None else dict(flows)
                del changed[key]
            elif state is not flows[key]:
                changed = changed if changed is not None else dict(flows)
                changed[key] = state
        return flows if changed is None else MappingProxyType(changed)


def _captures(telegram: Any) -> Iterator[tuple[str, Any]]:
    """(flow key, reading) of every gas or water reading in m³."""
    for device in getattr(telegram, "MBUS_DEVICES", None) or ():
        kind = device_type(getattr(getattr(device, "MBUS_DEVICE_TYPE", None), "value", None))
        reading = getattr(device, "MBUS_METER_READING", None)
        if kind in FLOW_TYPES and getattr(reading, "unit", None) == "m3":
            ident = getattr(getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None), "value", None)
            yield flow_key(device.channel_id, str(ident) if ident else None), reading
    for name in MAIN_GAS_READINGS:
        reading = getattr(telegram, name, None)
        if getattr(reading, "unit", None) == "m3":
            yield MAIN_GAS, reading
