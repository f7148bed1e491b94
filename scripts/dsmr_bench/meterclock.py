"""A worker's Home Assistant living in meter time: clocks that the parent moves forward.

The recorder section needs hours of meter time in a minute or two, with Home Assistant
recording them as a real installation would: states stamped at their telegram's time, update
windows of 30 s, a commit every 5 s and the statistics compiled at ten seconds past every fifth
minute. So both of Home Assistant's clocks run in meter time:

- the event loop's clock (`loop.time()`): update windows, timers, the recorder's commit
  interval (`async_call_later`, `async_track_time_interval`, HA's `Debouncer`);
- the wall clock (`time.time()`, `dt_util.utcnow()`): the timestamps of states and events,
  core's `Throttle`, and the time trackers that start the statistics compilation.

`MeterClock` is real time plus an offset that only grows (the wall clock starts at the
meter's clock, given by the parent when it starts the worker). Between two telegrams the clocks
run at real speed (so whatever the integrations do within a telegram, e.g. a reader's short
wait, takes its real time); `advance_to` moves both forward to the next telegram's meter time,
stopping at each timer due on the way so that it fires at its own time. It is a discrete-event
simulation of the time between telegrams, not a faster clock: a slow or busy machine makes the
run slower, never different. `MeterClockLoop` is an asyncio event loop on that clock; `install`
points Home Assistant's wall-clock functions at it. The integrations, the recorder and its
statistics run unchanged, at default settings.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import functools
import sys
import time
from typing import Any

_REAL_TIME = time.time
PREFIXES = ("homeassistant", "custom_components")
# Loop iterations given to what a timer or a telegram sets off (a task it creates, a queue it
# fills) before the clock moves on.
SETTLE_ITERATIONS = 5


class MeterClock:
    """Home Assistant's loop and wall clocks: real time moved forward, never back."""

    def __init__(self, wall: float | None = None) -> None:
        """Start the wall clock at `wall` (Unix seconds; real time by default), the loop's at
        the monotonic clock."""
        self.wall_offset = 0.0 if wall is None else wall - _REAL_TIME()
        self.loop_offset = 0.0

    def loop_time(self) -> float:
        """The event loop's clock."""
        return time.monotonic() + self.loop_offset

    def wall_time(self) -> float:
        """The wall clock (Unix seconds)."""
        return _REAL_TIME() + self.wall_offset

    def utcnow(self) -> datetime:
        """The wall clock as Home Assistant's `dt_util.utcnow()` gives it."""
        return datetime.fromtimestamp(self.wall_time(), UTC)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward (never back)."""
        seconds = max(0.0, seconds)
        self.loop_offset += seconds
        self.wall_offset += seconds


class MeterClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is a `MeterClock`'s loop clock."""

    def __init__(self, clock: MeterClock) -> None:
        """Create the loop."""
        super().__init__()
        self.meter_clock = clock

    def time(self) -> float:
        """The loop's clock: real time moved forward to meter time."""
        return self.meter_clock.loop_time()


async def settle() -> None:
    """Let the loop run what is ready now, and what that sets off, before going on."""
    for _ in range(SETTLE_ITERATIONS):
        await asyncio.sleep(0)


async def advance_to(clock: MeterClock, wall: float) -> float:
    """Move the clocks forward until the wall clock reads `wall`, firing timers on the way.

    Each timer due before then fires at its own time, in order, with what it sets off. Returns
    how far the wall clock already was past `wall` (0.0 when it was not).
    """
    from homeassistant.util.async_ import get_scheduled_timer_handles

    loop = asyncio.get_running_loop()
    ahead = clock.wall_time() - wall
    if ahead >= 0:
        return ahead
    target = loop.time() - ahead
    while due := [
        handle.when()
        for handle in get_scheduled_timer_handles(loop)
        if not handle.cancelled() and handle.when() <= target
    ]:
        clock.advance(min(due) - loop.time())
        await settle()
    clock.advance(target - loop.time())
    await settle()
    return 0.0


def _is_utcnow(value: Any, current: Any) -> bool:
    return value is current or (
        isinstance(value, functools.partial)
        and value.func == datetime.now
        and value.args == (UTC,)
        and not value.keywords
    )


def install(clock: MeterClock, prefixes: tuple[str, ...] = PREFIXES) -> int:
    """Point the wall clock of Home Assistant (and of our integration) at `clock`.

    `time.time` is replaced for the whole process; `dt_util.utcnow` in its module; and every
    module-level name bound to either (`from time import time`, `utcnow = dt_util.utcnow`)
    in the modules loaded so far under `prefixes`, as freezegun does. Modules imported later
    pick up the replacements by themselves. Returns how many names were replaced.
    """
    from homeassistant.util import dt as dt_util

    current_utcnow: Any = dt_util.utcnow
    replaced = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefixes):
            continue
        for attr, value in list(vars(module).items()):
            if value is _REAL_TIME:
                setattr(module, attr, clock.wall_time)
                replaced += 1
            elif _is_utcnow(value, current_utcnow):
                setattr(module, attr, clock.utcnow)
                replaced += 1
    time.time = clock.wall_time  # the whole process: Home Assistant's core calls time.time()
    return replaced
