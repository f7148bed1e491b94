"""Gas and water flow from the sub-meter's own readings and the times it stamped them.

Design note
===========
An M-Bus sub-meter's line ``0-n:24.2.1(ts)(value*m3)`` is a *capture*: the register as the gas
or water meter read it at ``ts`` (its own clock, with the S/W flag). DSMR 4 captures once an
hour on the hour, DSMR 5 every 5 minutes, Belgian meters about every 5 minutes at odd seconds
(``241018091251S``); each capture reaches the telegram some seconds to minutes after ``ts``
and is then repeated in every telegram until the next one.

The flow is the volume between two consecutive captures divided by the time between their
stamps: the exact mean flow of that interval, by the meter's own clock. It is shown until the
next capture replaces it, so it is one interval behind by nature (5 min on DSMR 5, an hour on
DSMR 4); no shorter delay is possible without inventing. Consequences:

* **0 when the reading does not move**: the first capture with the same value as the one
  before gives exactly 0 (nothing flowed in that interval). No decay heuristic is needed: the
  flow is 0 one capture interval after the last movement (5 min, or 1 h on DSMR 4).
* **Unknown when captures stop**: when no new capture has come for twice the usual interval
  plus a minute (the sub-meter went silent: battery, radio), the flow is unknown, not the last
  value held forever and not a guess.
* **Nothing invented across a gap**: a pair more than twice the usual interval plus a minute
  apart (Home Assistant was down, or captures went missing) gives no flow, except an exact 0
  when the reading did not move at all. A restart restores the last capture (:meth:`as_dict`,
  :meth:`from_dict`), so the first capture after a short restart still gives a flow.
* **Meter clocks**: timestamps arrive as aware datetimes (dsmr_parser reads the S/W flag), so
  DST changes need nothing. A stamp that goes backwards, a register that goes down, or an
  interval that disagrees with the electricity meter's own clock (the time between the two
  telegrams that first carried the captures, off by more than a minute or a tenth) is a clock
  step or a bad read: the flow becomes unknown and counting restarts from that capture.
* The usual interval is learned from the last pair (1 min to 1 h); until a pair is seen it is
  taken as an hour, the longest a meter uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Capture", "FlowState", "liters_per_minute", "timed_out", "update_flow"]

_HOUR_S = 3600
_SLACK_S = 60  # beyond twice the usual interval: a gap (or a silent sub-meter)
_CLOCK_SLACK_S = 60  # two clocks may disagree by this much, or a tenth of the interval
_CADENCE_BOUNDS_S = (60.0, 3600.0)


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
            last = None
            if data.get("value") is not None:
                seen = data.get("seen")
                last = Capture(
                    _aware(data["at"]),
                    Decimal(data["value"]),
                    None if seen is None else _aware(seen),
                )
            return cls(
                last,
                _number(data.get("m3h")),
                _number(data.get("interval_s")),
                _number(data.get("cadence_s")),
            )
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


def liters_per_minute(m3h: float | None) -> float | None:
    """m³/h to L/min (Home Assistant's water flow unit, as HomeWizard's water meter)."""
    return None if m3h is None else m3h * 1000 / 60


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
    """The flow after a telegram with the capture (``at``, ``value``), at meter time ``now``.

    ``at``/``value`` None: the telegram has no reading for the sub-meter. ``now`` is the
    telegram's own timestamp (None when it has none).
    """
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
    low, high = _CADENCE_BOUNDS_S
    cadence = min(max(span, low), high)
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
