"""When a register that went down is a new cycle, and when it is a glitch to hold back.

A meter's registers (energy, gas, water, counters) only grow. A lower reading is either a glitch
(a meter that restarts can send zeros for minutes) or a new cycle (the meter, or its register,
was replaced or reset). Home Assistant's statistics treat any drop as a new cycle, and the return
to the old value as consumption: one glitch, one spike. So a lower reading is held back (the
register keeps showing its last value, nothing reaches the statistics) until it is shown to be
real: the meter reports another equipment identifier (published at once), or the lower reading
has lasted `NEW_CYCLE_AFTER` (published then, with a repair issue saying why). A register that
reads 0 from its first value on, or has only ever read 0, simply shows 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum, auto
from typing import Final

from homeassistant.util import dt as dt_util

# A lower reading that lasts this long is a new cycle, not a glitch. Meters that restart send
# zeros for seconds to minutes; an hour is far beyond that, and short enough that a genuine
# reset (a replaced meter that keeps its identifier) shows within the hour.
NEW_CYCLE_AFTER: Final = timedelta(hours=1)


class Verdict(Enum):
    """What to show for a register's new reading."""

    SHOW = auto()  # not lower, or the meter was replaced: show it
    HOLD = auto()  # lower: keep showing the last value
    NEW_CYCLE = auto()  # lower for NEW_CYCLE_AFTER: show it, and say why


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
        now = now or dt_util.utcnow()
        if shown is None or reading >= shown or replaced:
            self.since = None
            return Verdict.SHOW
        if self.since is None:
            self.since = now
        if now - self.since < NEW_CYCLE_AFTER:
            return Verdict.HOLD
        self.since = None
        return Verdict.NEW_CYCLE
