"""Gas and water flow, and hourly statistics, from a sub-meter's readings and their own stamps.

An M-Bus line `0-n:24.2.1(ts)(value*m3)` is a capture: the register as read at `ts` (hourly on
DSMR 4, every 5 minutes on DSMR 5 and Belgian meters), repeated until the next. The flow is the
volume between two captures over the time between their stamps: exact by the meter's clock, one
interval behind. Nothing is made up: across a gap (over twice the usual interval, learned from
the last pair, plus a minute) or once captures stop it is unknown (0 if nothing moved); a stamp
going back, a register going down or an interval the electricity meter's clock disagrees with
restarts from that capture.

Hourly statistics file each capture's increase in the hours its interval spans by those stamps
(a capture stamped 11:00:00 closes hour 10-11), spread evenly over the time; a gap of more than
MAX_SPREAD is filed in the capture's own hour (nothing to spread over, and the rows stay few).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

_HOUR_S = 3600
_SLACK_S = 60  # beyond twice the usual interval: a gap (or a silent sub-meter)
_CLOCK_SLACK_S = 60  # two clocks may disagree by this much, or a tenth of the interval
_CADENCE_BOUNDS_S = (60.0, 3600.0)
HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)
MAX_SPREAD = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Capture:
    """A sub-meter reading as captured, and when the telegram that first carried it came."""

    at: datetime  # the sub-meter's stamp
    value: Decimal
    seen: datetime | None = None  # the electricity meter's time it first appeared (if watched)


@dataclass(frozen=True, slots=True)
class FlowState:
    """The flow shown and what the next telegram needs (small enough to store on restart)."""

    last: Capture | None = None
    m3h: float | None = None  # mean flow of the last interval; None: unknown
    interval_s: float | None = None  # length of that interval (the attribute)
    cadence_s: float | None = None  # the sub-meter's usual interval, learned

    def expected_s(self) -> float:
        """The sub-meter's usual interval (an hour until one was seen)."""
        return self.cadence_s if self.cadence_s is not None else _HOUR_S

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form, for Home Assistant's restore store."""
        last = self.last
        return {
            "value": None if last is None else str(last.value),
            "at": None if last is None else last.at.isoformat(),
            "seen": None if last is None or last.seen is None else last.seen.isoformat(),
            "m3h": self.m3h,
            "interval_s": self.interval_s,
            "cadence_s": self.cadence_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FlowState:
        """The state :meth:`as_dict` stored; an empty state when it is missing or damaged."""
        if not data:
            return cls()
        try:
            last, seen = None, data.get("seen")
            if data.get("value") is not None:
                at, value = _aware(data["at"]), Decimal(data["value"])
                last = Capture(at, value, None if seen is None else _aware(seen))
            return cls(last, *(_number(data.get(k)) for k in ("m3h", "interval_s", "cadence_s")))
        except KeyError, TypeError, ValueError, InvalidOperation:
            return cls()


def _aware(text: Any) -> datetime:
    """An ISO time with its offset; TypeError/ValueError for anything else."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(text)
    return at


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    return float(value)


def _clocks_agree(last: Capture, at: datetime, now: datetime | None, span: float) -> bool:
    """Whether the electricity meter saw about as much time pass as the sub-meter stamped."""
    if now is None or last.seen is None:
        return True
    watched = (now - last.seen).total_seconds()
    return abs(watched - span) <= max(_CLOCK_SLACK_S, span / 10)


def update_flow(
    state: FlowState | None,
    at: datetime | None,
    value: Decimal | None,
    now: datetime | None,
) -> FlowState:
    """The flow after a telegram with the capture (`at`, `value`; None: none) at its time `now`."""
    state = state or FlowState()
    last = state.last
    if at is None or value is None or (last is not None and at == last.at):
        if last is not None and at == last.at and value is not None and value != last.value:
            return FlowState(Capture(at, value, now), cadence_s=state.cadence_s)  # re-stamped
        return timed_out(state, now)
    if last is None:  # the first capture: watched from its arrival only if it is fresh
        return FlowState(Capture(at, value, None), cadence_s=state.cadence_s)
    capture = Capture(at, value, now)
    span = (at - last.at).total_seconds()
    moved = value - last.value
    if span <= 0 or moved < 0 or not _clocks_agree(last, at, now, span):
        return FlowState(capture, cadence_s=state.cadence_s)  # clock step or bad read
    cadence = min(max(span, _CADENCE_BOUNDS_S[0]), _CADENCE_BOUNDS_S[1])
    if span > 2 * state.expected_s() + _SLACK_S:  # a gap: nothing invented across it
        if moved:
            return FlowState(capture, cadence_s=cadence)
        return FlowState(capture, 0.0, span, cadence)
    return FlowState(capture, float(moved * _HOUR_S / Decimal(span)), span, cadence)


def timed_out(state: FlowState, now: datetime | None) -> FlowState:
    """The state, with the flow unknown once the next capture is long overdue."""
    last = state.last
    if last is None or now is None or state.m3h is None:
        return state
    since = last.seen or last.at
    if now - since > timedelta(seconds=2 * state.expected_s() + _SLACK_S):
        return FlowState(last, None, None, state.cadence_s)
    return state


@dataclass(frozen=True, slots=True)
class Filed:
    """How far a register's hourly statistic goes: its last capture and the sum up to it."""

    at: datetime  # the capture's stamp (restored: the end of the last hour filed)
    value: Decimal
    total: Decimal = Decimal(0)  # the increase filed since the statistic began
    ident: str | None = None
    lower_since: datetime | None = None  # the stamp of a first lower reading, held back
    lowest: Decimal | None = None  # the lowest reading held back: a new cycle counts from it


def hour_of(at: datetime) -> datetime:
    """The hour a stamp belongs to: one on the hour closes the hour before."""
    return (at - _TICK).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def file_hourly(
    filed: Filed | None, at: datetime, value: Decimal, ident: str | None = None
) -> tuple[Filed, list[tuple[datetime, Decimal, Decimal]]]:
    """The statistic after a capture, and its hourly rows to write: (start, state, sum).

    A lower reading is held (a glitch) until it lasted an hour by its stamps; another identifier
    (a replaced sub-meter) starts a new cycle at once. A new cycle's rows go on from the sum.
    """
    if filed is None:
        return Filed(at, value, ident=ident), [(hour_of(at), value, Decimal(0))]
    if at <= filed.at:  # filed already (a restart), or a stamp going back
        return filed, []
    if ident != filed.ident and None not in (ident, filed.ident):
        filed = Filed(filed.at, value, filed.total)  # its first reading: no jump
    elif value < filed.value:
        since = filed.lower_since or at
        lowest = value if filed.lowest is None else min(value, filed.lowest)
        if at - since < HOUR:
            return replace(filed, lower_since=since, lowest=lowest), []
        filed = Filed(filed.at, lowest, filed.total)
    moved, total = value - filed.value, filed.total + value - filed.value
    if at - filed.at > MAX_SPREAD:
        return Filed(at, value, total, ident), [(hour_of(at), value, total)]
    span, rows, hour = _us(at - filed.at), [], hour_of(filed.at + _TICK)
    while hour < at:  # every hour the interval (filed.at, at] reaches into
        part = moved * _us(min(hour + HOUR, at) - filed.at) / span
        rows.append((hour, filed.value + part, filed.total + part))
        hour += HOUR
    return Filed(at, value, total, ident), rows


def _us(delta: timedelta) -> Decimal:
    return Decimal(delta // _TICK)
