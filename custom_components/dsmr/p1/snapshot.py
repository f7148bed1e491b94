"""The update window as running figures, and the frozen snapshot each publish makes of it.

`Window.add` keeps the latest telegram, adds the averaged values to their sum, min, max and count
(from the window's second telegram on: one has no spread) and moves the flows on: nothing grows
with the number of telegrams. A value is its line's number as a float, with every decimal the
meter sent (or the user's `precision`); one not finite as a float (`NaN`, `1E1000000`) or a line
that does not read is unknown, and costs no other value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
import math
from types import MappingProxyType
from typing import Any, Final, cast

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
from .telegram import identifier, unit, version_setup

# HA's short-term statistics period (s): long-term statistics take a register's last of each.
STATISTICS_PERIOD: Final = 300
NET_POWER: Final = "net_power"  # import minus export, averaged like a line (its key)
SWAPPED_TARIFF_VERSIONS: Final = frozenset({"5B", "5EONHU"})  # 1 = normal, 2 = low
FLOW_TYPES: Final = frozenset({3, 6, 7})  # gas, warm water, water: a flow when in m³
MAIN_GAS: Final = "gas"  # the flow key of DSMR 2.2/4's gas reading on the main telegram
MAIN_GAS_READINGS: Final = ("HOURLY_GAS_METER_READING", "GAS_METER_READING")
# A phase's current, negative while the phase exports (the meter's own is unsigned): by name.
SIGNED_CURRENTS: Final = {f"SIGNED_CURRENT_L{n}": n for n in (1, 2, 3)}
MAX_FLOWS: Final = 10  # channels 1-9 and the main gas reading
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def number(raw: Any, precision: int | None = None) -> float | None:
    """A Decimal as a float (rounded to `precision` if given); None unless finite."""
    value = float(raw) if isinstance(raw, Decimal) and raw.is_finite() else math.nan
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
    return cast(Decimal, usage.value - delivery.value)


def signed_current(telegram: Any, phase: int) -> Decimal | None:
    """The phase's current, negative while it exports more than it imports."""
    current = _raw(telegram, f"INSTANTANEOUS_CURRENT_L{phase}")
    taken = _raw(telegram, f"INSTANTANEOUS_ACTIVE_POWER_L{phase}_POSITIVE")
    given = _raw(telegram, f"INSTANTANEOUS_ACTIVE_POWER_L{phase}_NEGATIVE")
    if isinstance(current, Decimal) and isinstance(taken, Decimal) and isinstance(given, Decimal):
        return -current if given > taken and current else current
    return cast(Decimal | None, current)


def _raw(telegram: Any, name: str) -> Any:
    """A line's value, NET_POWER or a SIGNED_CURRENTS."""
    if name == NET_POWER:
        return net_power(telegram)
    if (phase := SIGNED_CURRENTS.get(name)) is not None:
        return signed_current(telegram, phase)
    return getattr(getattr(telegram, name, None), "value", None)


def _aware(obj: Any, attr: str = "value") -> datetime | None:
    at = getattr(obj, attr, None)
    return at if isinstance(at, datetime) and at.tzinfo is not None else None


def _kw(obj: Any) -> float | None:
    """A power line in kW (a meter sending W is divided); None if absent or odd."""
    value = number(getattr(obj, "value", None))
    return value / 1000 if value is not None and getattr(obj, "unit", None) == "W" else value


def demand_reading(telegram: Any) -> DemandReading:
    """What a telegram says about demand; a missing or garbled line is None."""
    peak = getattr(telegram, "BELGIUM_MAXIMUM_DEMAND_MONTH", None)
    return DemandReading(
        at=_aware(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None)),
        average_kw=_kw(getattr(telegram, "BELGIUM_CURRENT_AVERAGE_DEMAND", None)),
        import_kw=_kw(getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None)),
        peak_kw=_kw(peak),
        peak_at=_aware(peak, "datetime"),
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
    confirmed: bool = True  # the telegram before named it on this channel too


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one publish says about the meter."""

    version: str
    telegram: Telegram  # the window's latest
    unknown_lines: Mapping[str, str]  # OBIS lines no specification names: code -> the rest
    sure_codes: Collection[str]  # codes no line error made up (no CRC: also sent the time before)
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
        try:  # (not contextlib.suppress: this runs for most entities on every publish)
            return number(_raw(self.telegram, name), self.precision)
        except ArithmeticError:
            return None

    def total(self, name: str, parts: tuple[str, ...]) -> float | None:
        """The meter's total register if it sends one, else the sum of its tariff registers."""
        if self.line(name) is not None:
            return self.number(name)
        sent = [value for part in parts if isinstance(value := self.value(part), Decimal)]
        try:
            return number(sum(sent), self.precision) if sent else None
        except ArithmeticError:
            return None

    def available(self, phases: tuple[str, ...], fuse: float) -> float | None:
        """The main fuse less the largest signed current of the window, on the worst phase."""
        found = [
            spread.max if (spread := self.spreads.get(name)) else self.number(name)
            for name in phases
        ]
        currents = [current for current in found if current is not None]
        return round(fuse - max(currents), 3) if currents else None

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

    def reading(self, channel: int, ident: str | None) -> float | None:
        """A sub-meter's reading."""
        return None if (found := self.submeter(channel, ident)) is None else found.value

    def flow_rate(self, key: str, factor: float = 1.0) -> float | None:
        """The flow `key` (m³/h, times `factor`); None: unknown."""
        state = self.flows.get(key)  # (3 decimals: the readings' own; no float noise)
        return None if state is None or state.m3h is None else round(state.m3h * factor, 3)

    def flow_attributes(self, key: str) -> dict[str, Any]:
        """The interval the flow is the mean of, and the time of its last reading."""
        state = self.flows.get(key) or FlowState()
        return {"interval": state.interval_s, "reading_at": state.last and state.last.at}

    def stamps(self) -> tuple[Any, ...]:
        """When the sub-meters' readings were taken (and whether confirmed): another is new."""
        main_gas = (getattr(self.line(name), "datetime", None) for name in MAIN_GAS_READINGS)
        return (*((m.at, m.confirmed) for m in self.submeters), *main_gas)

    def total_line(self, name: str, parts: tuple[str, ...]) -> Any:
        """A total's line, else its first tariff line (the unit of their sum)."""
        return next((line for n in (name, *parts) if (line := self.line(n)) is not None), None)

    def shape(self) -> tuple[Any, ...]:
        """What entities are made of: the sub-meters, the unnamed lines (not their values)."""
        meters = tuple(replace(m, value=None, at=None) for m in self.submeters)
        return meters, tuple(sorted(self.sure_codes))


class _Sum:
    """Running sum, minimum, maximum, count and decimals of a value."""

    __slots__ = ("digits", "high", "low", "samples", "total")

    def __init__(self) -> None:
        self.total, self.low, self.high, self.samples, self.digits = 0.0, math.inf, -math.inf, 0, 0

    def add(self, raw: Any) -> None:
        if (value := number(raw)) is None:
            return
        self.total, self.samples = self.total + value, self.samples + 1
        self.low, self.high = min(self.low, value), max(self.high, value)
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
        self._sums: dict[str, _Sum] = {}
        # Sub-meters by channel that the latest telegram and the one before it named, and (on
        # versions without a CRC, where a line error can make up a code) the one before's codes.
        self._named: dict[int, str | None] = {}
        self._named_before: dict[int, str | None] = {}
        self._codes: Collection[str] = ()
        self._sure: Collection[str] = ()
        self.checked = bool(version_setup(version)[0]["checksum_support"])

    def add(self, telegram: Any, unknown_lines: Mapping[str, str] = _EMPTY) -> None:
        """Take one telegram; it is kept only while it is the latest."""
        self.pending += 1
        if self.pending == 2:  # the window's first telegram: kept as the latest until now
            self._accumulate(self._latest)
        if self.pending > 1:
            self._accumulate(telegram)
        codes, before, self._codes = unknown_lines.keys(), self._codes, unknown_lines.keys()
        self._sure = codes if self.checked else codes & set(before)
        self._latest, self._unknown = telegram, unknown_lines
        self.flows = self._flows_after(telegram)
        devices = getattr(telegram, "MBUS_DEVICES", None) or ()
        named = {d.channel_id: _identifier(d) for d in devices}
        self._named_before, self._named = self._named, named

    def identity(self) -> str | None:
        """The equipment identifier of the latest telegram."""
        return None if self._latest is None else identifier(self._latest, self.version)

    def discard(self) -> None:
        """Forget the window's telegrams (the connection was lost); the flows go on."""
        self.pending, self._latest, self._sums, self._codes = 0, None, {}, ()
        self._named = self._named_before = {}

    def publish(
        self, previous: Snapshot | None, received_at: float, *, fresh: bool, replaced: bool
    ) -> Snapshot:
        """The snapshot; a new window begins. `fresh`: a connection's first, identified anew."""
        telegram, samples, sums = self._latest, self.pending, self._sums
        self.pending, self._latest, self._sums = 0, None, {}
        spreads = {n: s for n, r in sums.items() if (s := r.spread(self.precision)) is not None}
        stamp = _aware(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None))
        at = stamp.timestamp() if stamp is not None else received_at
        step = at - previous.at if previous is not None and previous.at < at else 0.0
        period = int(at // STATISTICS_PERIOD)
        ident = previous.equipment_id if previous is not None and not fresh else None
        ident = ident or identifier(telegram, self.version)
        forecast, last = None, previous.last_forecast if previous is not None else None
        alarm = previous.alarm if previous is not None else OFF
        if self.demand:
            with suppress(ArithmeticError, ValueError):  # absurd numbers: none this time
                forecast = forecast_quarter(demand_reading(telegram), last)
            if forecast is not None and not math.isfinite(forecast.forecast_kw):
                forecast = None  # 1E308 kW and more: it overflows
            last = forecast or last
            alarm = peak_ahead(forecast, alarm, self.threshold_kw)
        return Snapshot(
            version=self.version,
            telegram=telegram,
            unknown_lines=self._unknown,
            sure_codes=self._sure,
            spreads=MappingProxyType(spreads) if spreads else _EMPTY,
            submeters=self._submeters(telegram, self._named_before),
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
            with suppress(ArithmeticError):  # 1E1000000 - 1: no sample
                self._sums.setdefault(name, _Sum()).add(_raw(telegram, name))

    def _submeters(self, telegram: Any, before: dict[int, str | None]) -> tuple[SubMeter, ...]:
        found = []
        for device in getattr(telegram, "MBUS_DEVICES", None) or ():
            reading = getattr(device, "MBUS_METER_READING", None)
            ident = _identifier(device)
            at = getattr(reading, "datetime", None)
            kind = getattr(getattr(device, "MBUS_DEVICE_TYPE", None), "value", None)
            found.append(
                SubMeter(
                    channel=device.channel_id,
                    device_type=device_type(kind),
                    identifier=ident,
                    value=None if reading is None else number(reading.value, self.precision),
                    unit=unit(reading),
                    at=at if isinstance(at, datetime) else None,
                    has_reading=reading is not None,
                    confirmed=before.get(device.channel_id, "") == ident,
                )
            )
        return tuple(found)

    def _flows_after(self, telegram: Any) -> Mapping[str, FlowState]:
        """The flows after one more telegram: each capture's arrival is the first that has it."""
        flows, now = self.flows, _aware(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None))
        changed, moved, seen = dict(flows), False, set()
        for key, capture in _captures(telegram):
            seen.add(key)
            value = capture.value if number(capture.value) is not None else None
            try:
                state = update_flow(flows.get(key), _aware(capture, "datetime"), value, now)
            except ArithmeticError:  # an absurd reading: this flow only is unknown
                state = FlowState()
            if state is not flows.get(key):
                changed[key], moved = state, True
        for key in flows.keys() - seen:  # not in the telegram: kept until it times out
            state = timed_out(flows[key], now)
            if state.m3h is None or len(flows) > MAX_FLOWS:  # none (made up once): forgotten
                del changed[key]
                moved = True
            elif state is not flows[key]:
                changed[key], moved = state, True
        return MappingProxyType(changed) if moved else flows


def _identifier(device: Any) -> str | None:
    ident = getattr(getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None), "value", None)
    return str(ident) if ident else None


def _captures(telegram: Any) -> Iterator[tuple[str, Any]]:
    """(flow key, reading) of every gas or water reading in m³."""
    for device in getattr(telegram, "MBUS_DEVICES", None) or ():
        kind = device_type(getattr(getattr(device, "MBUS_DEVICE_TYPE", None), "value", None))
        reading = getattr(device, "MBUS_METER_READING", None)
        if kind in FLOW_TYPES and getattr(reading, "unit", None) == "m3":
            yield flow_key(device.channel_id, _identifier(device)), reading
    for name in MAIN_GAS_READINGS:
        reading = getattr(telegram, name, None)
        if getattr(reading, "unit", None) == "m3":
            yield MAIN_GAS, reading
