"""The rules for what one value shows and when it is written: one small object per entity.

A meter's registers (energy, gas, water, counters) only grow. A lower reading is either a glitch
(a meter that restarts can send zeros for minutes) or a new cycle (the meter, or its register,
was replaced or reset). Home Assistant's statistics treat any drop as a new cycle, and the return
to the old value as consumption: one glitch, one spike. So a lower reading is held back (the
register keeps showing its last value, nothing reaches the statistics) until it is shown to be
real: the meter reports another equipment identifier (shown at once), or the lower reading has
lasted `NEW_CYCLE_AFTER` (shown then, with a repair issue saying why). A register that reads 0
from its first value on, or has only ever read 0, simply shows 0.

Long-term statistics take a register's last state of each 5-minute period, so a grown register
is written once per period, in the period's last update window (`hold_for_period`): the same
statistics as a write every window, with a tenth of the writes.

A value the meter has never sent in `ABSENT_TELEGRAMS_BEFORE_DISABLE` telegrams in a row is one
to disable (`absent`); the coordinator does it.

Pure: no Home Assistant here; the entity supplies what it shows and the snapshot's period, and
the coordinator tells the user of a held-back reading and of a new cycle (`Judgement`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, auto
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .snapshot import Snapshot

# A lower reading that lasts this long is a new cycle, not a glitch. Meters that restart send
# zeros for seconds to minutes; an hour is far beyond that, and short enough that a genuine
# reset (a replaced meter that keeps its identifier) shows within the hour.
NEW_CYCLE_AFTER: Final = timedelta(hours=1)
# A value the meter has not sent in this many telegrams in a row (and never sent) is disabled.
ABSENT_TELEGRAMS_BEFORE_DISABLE: Final = 3


class Verdict(Enum):
    """What to show for a register's new reading."""

    SHOW = auto()  # not lower, or the meter was replaced: show it
    HOLD = auto()  # lower: keep showing the last value
    NEW_CYCLE = auto()  # lower for NEW_CYCLE_AFTER: show it, and say why


@dataclass(frozen=True, slots=True)
class Judgement:
    """A reading judged: what the value shows, why, and what the reading was compared with."""

    value: Any  # what to show: the reading, or (held back) the value shown before
    verdict: Verdict = Verdict.SHOW
    shown: float | None = None  # the value shown before, as compared (None: none)
    reading: Any = None  # the reading judged
    hold_starts: bool = False  # held back, and the hold begins with this reading


class DecreaseHold:
    """Follows one register's lower readings: since when it has read lower than it showed."""

    def __init__(self) -> None:
        """Start with nothing held."""
        self.since: datetime | None = None

    def verdict(
        self,
        shown: float | None,
        reading: float,
        now: datetime | None = None,
        *,
        replaced: bool = False,
    ) -> Verdict:
        """Judge `reading` against the value `shown` (None: nothing shown yet) at `now`."""
        now = now or datetime.now(UTC)
        if shown is None or reading >= shown or replaced:
            self.since = None
            return Verdict.SHOW
        if self.since is None:
            self.since = now
        if now - self.since < NEW_CYCLE_AFTER:
            return Verdict.HOLD
        self.since = None
        return Verdict.NEW_CYCLE


class RegisterPolicy:
    """The rules of one value: decrease hold, one write per statistics period, absence.

    `register`: the value only grows (a total_increasing register); `per_period`: a grown
    register may wait for its period's last window (not M-Bus readings, which change every
    5 minutes anyway, and not when every telegram is published); `precision`: the decimals
    the user has numbers rounded to (None: the meter's own).
    """

    def __init__(self, *, register: bool, per_period: bool, precision: int | None = None) -> None:
        """Rules for a value of that kind."""
        self.register = register
        self.per_period = per_period and register
        self.precision = precision
        self.decrease = DecreaseHold()
        self.written_period = 0
        self.seen = False
        self._absent = 0

    @property
    def holding(self) -> bool:
        """Whether a lower reading is being held back (each telegram counts then)."""
        return self.decrease.since is not None

    def judge(
        self,
        shown: float | None,
        reading: float,
        *,
        replaced: bool = False,
        now: datetime | None = None,
    ) -> tuple[float | None, Verdict]:
        """The value to show for a register's `reading`, and why."""
        if not self.register:
            return reading, Verdict.SHOW
        verdict = self.decrease.verdict(shown, reading, now, replaced=replaced)
        return (shown if verdict is Verdict.HOLD else reading), verdict

    def decide(
        self,
        state: object,
        reading: Any,
        *,
        replaced: bool = False,
        now: datetime | None = None,
    ) -> Judgement:
        """What the value shows for `reading` while its entity's state is `state` (any type).

        Only a register's number is judged, against the state if that is a number (rounded to
        the user's `precision` if one is set: a lowered precision is no decrease).
        """
        if not isinstance(reading, float) or not self.register:
            return Judgement(reading, reading=reading)
        shown = state if isinstance(state, float) else None
        if shown is not None and self.precision is not None:
            shown = round(shown, self.precision)
        starts = not self.holding
        value, verdict = self.judge(shown, reading, replaced=replaced, now=now)
        return Judgement(value, verdict, shown, reading, starts and verdict is Verdict.HOLD)

    def hold_for_period(
        self, written: object, value: object, period: int, closes_period: bool
    ) -> bool:
        """Whether a grown register waits for the last publish of its statistics period.

        Anything else (a first value, a decrease, unavailability) is written at once;
        `written` is the value last written (None: none, or unavailable).
        """
        if (
            not self.per_period
            or not isinstance(value, float)
            or not isinstance(written, float)
            or value <= written
        ):
            return False
        return period == self.written_period and not closes_period

    def wrote(self, period: int, closes_period: bool) -> None:
        """A value was written in `period` (in its last window: also for the next one's start)."""
        self.written_period = period + closes_period

    def write_now(self, written: object, value: object, snapshot: Snapshot | None) -> bool:
        """Whether `value` is written now (noted for the snapshot's period), or waits.

        `written` is the value last written (None: none, or unavailable); without a snapshot
        (no telegram yet) nothing waits.
        """
        if snapshot is None:
            return True
        if self.hold_for_period(written, value, snapshot.period, snapshot.closes_period):
            return False
        self.wrote(snapshot.period, snapshot.closes_period)
        return True

    def present(self) -> None:
        """The meter sent the value."""
        self.seen = True

    def absent(self) -> bool:
        """The meter did not send it: whether now is the time to disable it (once)."""
        if self.seen:
            return False
        self._absent += 1
        return self._absent == ABSENT_TELEGRAMS_BEFORE_DISABLE
