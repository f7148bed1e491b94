"""What a register shows and when it is written: one small object per entity (no Home Assistant).

A register (energy, gas, water, a counter) only grows. A lower reading is a glitch (a restarting
meter can send zeros for minutes; statistics would count the return as consumption: a spike) or a
new cycle (a replaced meter or register), so it is held back until it is real: the meter reports
another equipment identifier (shown at once), or it lasted NEW_CYCLE_AFTER (shown, and the entity
raises a repair issue). Long-term statistics take a register's last state of each 5-minute
period, so a grown register is written once per period, in its last window: a tenth of the writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, auto
from typing import Any, Final

# Meters that restart send zeros for seconds to minutes; a genuine reset shows within the hour.
NEW_CYCLE_AFTER: Final = timedelta(hours=1)


class Verdict(Enum):
    """What to show for a register's new reading."""

    SHOW = auto()  # not lower, or the meter was replaced
    HOLD = auto()  # lower: the value shown before stays
    NEW_CYCLE = auto()  # lower for NEW_CYCLE_AFTER: shown, and said why


@dataclass(frozen=True, slots=True)
class Judgement:
    """A reading judged: what to show, why, and what it was compared with."""

    value: Any
    verdict: Verdict = Verdict.SHOW
    shown: float | None = None  # the value shown before (None: none)
    reading: Any = None
    hold_starts: bool = False  # held back, and the hold begins with this reading


class RegisterPolicy:
    """The rules of one value: the decrease hold, and one write per statistics period.

    `register`: the value only grows; `per_period`: a grown register may wait for its period's
    last window (not M-Bus readings, which move every 5 minutes anyway, nor with a 0 s window);
    `precision`: the decimals the user rounds to (a lowered precision is no decrease).
    """

    def __init__(self, *, register: bool, per_period: bool, precision: int | None = None) -> None:
        self.register = register
        self.per_period = per_period and register
        self.precision = precision
        self.since: datetime | None = None  # when the reading first read lower than shown
        self.written_period = 0

    @property
    def holding(self) -> bool:
        """Whether a lower reading is held back."""
        return self.since is not None

    def decide(
        self, state: object, reading: Any, *, replaced: bool = False, now: datetime | None = None
    ) -> Judgement:
        """What the value shows for `reading` while its entity shows `state` (any type)."""
        if not isinstance(reading, float) or not self.register:
            return Judgement(reading, reading=reading)
        shown = state if isinstance(state, float) else None
        if shown is not None and self.precision is not None:
            shown = round(shown, self.precision)
        starts = not self.holding
        if shown is None or reading >= shown or replaced:
            self.since = None
            return Judgement(reading, Verdict.SHOW, shown, reading)
        now = now or datetime.now(UTC)
        self.since = self.since or now
        if now - self.since < NEW_CYCLE_AFTER:
            return Judgement(shown, Verdict.HOLD, shown, reading, starts)
        self.since = None
        return Judgement(reading, Verdict.NEW_CYCLE, shown, reading)

    def hold_for_period(
        self, written: object, value: object, period: int, closes_period: bool
    ) -> bool:
        """Whether a grown register waits for its period's last publish (nothing else waits)."""
        if not self.per_period or not isinstance(value, float) or not isinstance(written, float):
            return False
        return value > written and period == self.written_period and not closes_period

    def write_now(self, written: object, value: object, period: int, closes_period: bool) -> bool:
        """Whether `value` is written now (`written`: the value last written, None if none)."""
        if self.hold_for_period(written, value, period, closes_period):
            return False
        self.written_period = period + closes_period  # the last window: the next one's too
        return True
