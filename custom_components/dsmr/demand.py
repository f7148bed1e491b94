"""Capacity tariff: where the running quarter-hour ends, and whether it sets a new monthly peak.

Design note
===========
What the meter sends (Fluvius e-MUCS; checked on real telegrams):

* ``1-0:1.4.0`` *current average demand*, kW: a DLMS demand register's current value, the active
  energy **imported** since the quarter-hour began divided by the **whole** quarter (15 min). It
  restarts at 0 at :00, :15, :30 and :45 of the meter's clock and rises to the quarter's average
  demand at its end (telegrams at 16:21:26 with 9.258 kW drawn show 4.065 kW = 9.258 kW x
  ~386 s / 900 s; at 15:50:56 with 0.182 kW, 0.078 kW).
* ``1-0:1.6.0(ts)(kW)``: this month's highest quarter, stamped with the end of that quarter. It
  drops at the start of a month. Some firmware stamps it inside the running quarter (the spec's
  own example: ``200509134558S``): the running quarter is then already this month's highest.
* ``1-0:1.7.0``: power imported now (kW). Export is ``1-0:2.7.0``, a separate register: the
  meter never nets it against import within a quarter, and the capacity tariff bills offtake
  only, so the present power of the forecast is ``1-0:1.7.0`` as it is, not import minus export
  (subtracting export would forecast a solar house's evening quarter too low).

The forecast. With ``D`` the meter's running value, ``t`` the seconds since the quarter began by
the meter's timestamp, ``T`` = 900 s and ``P`` the present import power::

    forecast = D + P * (T - t) / T

the quarter's energy so far plus the present power held to its end. It equals the meter's own
figure when the quarter ends (``t`` -> ``T``), and its error is a third of how far the average
power of the last five minutes strays from the power at minute 10: at most
``(T - t) / T * max |P(s) - P(t)|`` for ``s`` in the rest of the quarter. On 16,128 simulated
quarters of a household whose appliances switch (tests/test_demand.py), at minute 10: median
0.01-0.04 kW, p90 0.09-0.11 kW, p99 0.5-0.6 kW; an appliance switching in the last five
minutes moves the end by a third of its power, which no forecast can know.

Quarters are placed by the meter's clock: a quarter starts when the meter's timestamp crosses
:00/:15/:30/:45. Timestamps arrive as aware datetimes (dsmr_parser reads the S/W flag), and
quarter boundaries of every zone whose offset is a whole number of quarters (all of Europe)
are quarter boundaries of UTC, so a day with a DST change has 92 or 100 quarters without a
special case. Months (for the peak) are the meter zone's local months.

Cases handled:

* **1.4.0 late at the boundary** (a meter that samples the register a few seconds before it
  stamps the telegram): in the first minute of a quarter, a value that implies more energy than
  the present power plus 1 kW could have delivered since the boundary is the last quarter's
  end value, not this quarter's; the forecast then counts this quarter's energy as the present
  power since the boundary (its error is a few seconds of power).
* **First quarter of a month / the month's reset**: a peak stamped in an earlier month (before
  the meter resets, or its reset value stamped at midnight) is not this month's: the month has
  no complete quarter yet, its peak is 0.
* **A meter without history** (no ``1-0:1.6.0``, or a new meter): the forecast needs only the
  running value, the timestamp and the power; the month's peak is then unknown, so headroom
  and the new-peak decision use the user's threshold alone.
* **Missing or garbled timestamp, value or power**: no forecast for that reading (``None``);
  the next good reading continues from the last result.
* **Clock steps**: a timestamp that jumps (back or ahead) just lands in another quarter.

The new-peak decision compares the forecast with a *limit*: the month's peak so far, but at
least the user's threshold. Flanders bills every month's peak as at least 2.5 kW, so a quarter
below that never costs more, and in a month's first hours (when the peak is still tiny) every
busy quarter would otherwise be "a new peak". It turns on as soon as the forecast passes the
limit and off only once the forecast has stayed below the limit minus a margin for a while
(hysteresis), so that a cycling hob or a fridge compressor does not flap it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_THRESHOLD_KW",
    "DemandReading",
    "PeakAlarm",
    "QuarterForecast",
    "forecast_quarter",
    "peak_ahead",
]

QUARTER_S = 900
#: Flanders bills a month's peak as at least 2.5 kW: below it, a new peak costs nothing.
DEFAULT_THRESHOLD_KW = 2.5
#: Hysteresis: off once the forecast has stayed this far below the limit ...
OFF_MARGIN_KW = 0.1
#: ... for this long (meter time), or the quarter it warned about has ended.
OFF_AFTER = timedelta(seconds=60)
# A running value the meter has not yet restarted is recognised within this many seconds.
_LATE_WINDOW_S = 60
# ... as more energy than the present power plus this much could have delivered (kW), allowing
# for a timestamp truncated to the second and a power sampled a moment before (s).
_LATE_MARGIN_KW = 1.0
_LATE_SLACK_S = 2
_BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True, slots=True)
class DemandReading:
    """What one telegram says about demand (the fields the snapshot must provide)."""

    at: datetime | None  # 0-0:1.0.0, the meter's timestamp (aware)
    average_kw: float | None  # 1-0:1.4.0, current average demand
    import_kw: float | None  # 1-0:1.7.0, power imported now
    peak_kw: float | None = None  # 1-0:1.6.0, this month's peak
    peak_at: datetime | None = None  # 1-0:1.6.0's timestamp (end of the peak quarter)


@dataclass(frozen=True, slots=True)
class QuarterForecast:
    """Where the running quarter will end; also what the next reading needs to continue."""

    quarter_start: datetime  # UTC
    at: datetime  # the reading's meter time (UTC)
    forecast_kw: float
    #: The quarter's demand so far (kW): the meter's value, or an estimate while it is late.
    average_kw: float
    #: The month's peak this quarter must beat (completed quarters only); None: unknown.
    month_peak_kw: float | None
    #: Whether the meter's running value has restarted for this quarter (it is not late).
    restarted: bool
    #: The quarter before's end value: the meter's value while late, else its last forecast.
    previous_quarter_kw: float | None = None

    @property
    def quarter_end(self) -> datetime:
        """When the quarter ends (UTC)."""
        return self.quarter_start + timedelta(seconds=QUARTER_S)

    def limit_kw(self, threshold_kw: float = 0.0) -> float | None:
        """The level above which the quarter sets a new billed peak, if known."""
        if self.month_peak_kw is None:
            return threshold_kw if threshold_kw > 0 else None
        return max(self.month_peak_kw, threshold_kw)

    def headroom_kw(self, threshold_kw: float = 0.0) -> float | None:
        """How much lower than the limit the quarter ends (negative: a new peak), if known."""
        limit = self.limit_kw(threshold_kw)
        return None if limit is None else limit - self.forecast_kw


def quarter_start(at: datetime) -> datetime:
    """The start (UTC) of the quarter-hour that ``at`` (aware) falls in."""
    seconds = int(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % QUARTER_S, UTC)


def _month(at: datetime, tz: tzinfo) -> tuple[int, int]:
    local = at.astimezone(tz)
    return local.year, local.month


def _month_peak(
    reading: DemandReading, start: datetime, carried: float | None, tz: tzinfo
) -> float | None:
    """The peak of ``start``'s month over the quarters completed before ``start``."""
    peak, peak_at = reading.peak_kw, reading.peak_at
    if peak is None:
        return carried
    if peak_at is None:
        return peak
    if peak_at > start:  # stamped in the running quarter: it counts this quarter already
        return carried if carried is not None else peak
    # Stamped with its quarter's end: a peak stamped at midnight on the 1st is last month's.
    if _month(peak_at - timedelta(seconds=1), tz) != _month(start, tz):
        return 0.0  # last month's, not yet reset: this month has no complete quarter yet
    return peak


def forecast_quarter(
    reading: DemandReading, previous: QuarterForecast | None = None, tz: tzinfo = _BRUSSELS
) -> QuarterForecast | None:
    """The forecast for ``reading``, continuing from the last result (``previous``).

    Returns None when the reading lacks its timestamp, running value or power; pass the last
    result that was not None as ``previous`` next time. ``tz`` is the meter's time zone (for
    months).
    """
    at, average, power = reading.at, reading.average_kw, reading.import_kw
    if at is None or average is None or power is None or average < 0:
        return None
    at = at.astimezone(UTC)
    start = quarter_start(at)
    elapsed = (at - start).total_seconds()
    power = max(power, 0.0)
    current = previous if previous is not None and previous.quarter_start == start else None
    restarted = current is not None and current.restarted
    possible_kws = (power + _LATE_MARGIN_KW) * (elapsed + _LATE_SLACK_S)
    previous_kw: float | None
    if not restarted and elapsed < _LATE_WINDOW_S and average * QUARTER_S > possible_kws:
        # Still the last quarter's value: count this one's energy as the power since the start.
        so_far, previous_kw = power * elapsed / QUARTER_S, average
    else:
        restarted, so_far = True, average
        if current is not None:
            previous_kw = current.previous_quarter_kw
        elif previous is not None and previous.quarter_end == start:
            previous_kw = previous.forecast_kw  # its last reading: within a second of its end
        else:
            previous_kw = None
    carried = current.month_peak_kw if current is not None else None
    return QuarterForecast(
        quarter_start=start,
        at=at,
        forecast_kw=so_far + power * (QUARTER_S - elapsed) / QUARTER_S,
        average_kw=so_far,
        month_peak_kw=_month_peak(reading, start, carried, tz),
        restarted=restarted,
        previous_quarter_kw=previous_kw,
    )


@dataclass(frozen=True, slots=True)
class PeakAlarm:
    """The *New monthly peak ahead* decision, with what its hysteresis needs."""

    on: bool
    limit_kw: float | None = None
    #: Meter time it turned on (None while off).
    since: datetime | None = None
    #: Last meter time the forecast was within the off margin of the limit (or above it).
    near: datetime | None = None
    #: The quarter it last warned about.
    quarter_start: datetime | None = None


OFF = PeakAlarm(on=False)


def peak_ahead(
    forecast: QuarterForecast | None,
    previous: PeakAlarm = OFF,
    threshold_kw: float = DEFAULT_THRESHOLD_KW,
    *,
    margin_kw: float = OFF_MARGIN_KW,
    off_after: timedelta = OFF_AFTER,
) -> PeakAlarm:
    """Whether the running quarter is heading for a new billed monthly peak.

    On when the forecast is above the limit (the month's peak, at least ``threshold_kw``); off
    again once the forecast has stayed below the limit minus ``margin_kw`` for ``off_after``.
    Without a forecast (a reading that could not be used), the last decision stands.
    """
    if forecast is None:
        return previous
    limit = forecast.limit_kw(threshold_kw)
    if limit is None:
        return OFF
    at, value = forecast.at, forecast.forecast_kw
    if value > limit:
        since = previous.since if previous.on and previous.since is not None else at
        return PeakAlarm(True, limit, since, at, forecast.quarter_start)
    if not previous.on:
        return _off(previous, limit)
    if value > limit - margin_kw:
        return replace(previous, limit_kw=limit, near=at)  # near the limit: stays on
    near = previous.near if previous.near is not None and previous.near <= at else at
    ended = forecast.quarter_start != previous.quarter_start
    if not ended and at - near < off_after:
        return replace(previous, limit_kw=limit, near=near)
    return _off(previous, limit)


def _off(previous: PeakAlarm, limit: float) -> PeakAlarm:
    """Off at `limit`: `previous` itself when it says just that (most telegrams)."""
    off = PeakAlarm(False, limit)
    return previous if previous == off else off
