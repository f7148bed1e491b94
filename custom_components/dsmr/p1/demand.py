"""Capacity tariff: where the running quarter-hour ends, and whether it sets a new monthly peak.

What Fluvius meters send (checked on real telegrams): `1-0:1.4.0`, the energy imported since the
quarter began over the whole 15 minutes (it restarts at 0 at :00, :15, :30 and :45 of the meter's
clock and rises to the quarter's average); `1-0:1.6.0(ts)(kW)`, this month's highest quarter,
stamped with that quarter's end; `1-0:1.7.0`, the power imported now. The tariff bills offtake
only, so export never lowers the forecast.

forecast = D + P * (T - t) / T: the quarter's energy so far (D) plus the present power (P) held
to its end (T = 900 s, t seconds in, by the meter's timestamp). It is the meter's own figure when
the quarter ends; its error is (T - t) / T times how far the power strays from P.

Quarters are placed by the meter's clock in UTC (every European offset is whole quarters, so a
DST day simply has 92 or 100); months by the meter zone's local months. A running value still the
last quarter's (sampled before the boundary, first minute only) is recognized by the energy it
implies; a peak stamped in an earlier month is not this month's (0); a reading without its
timestamp, value or power gives no forecast, and the next continues from the last good one.

The new-peak alarm is on at once when the forecast passes the month's peak (at least the user's
threshold), off once it has stayed below it minus a margin for a minute, or the quarter ended.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

QUARTER_S = 900
#: Flanders bills a month's peak as at least 2.5 kW: below it, a new peak costs nothing.
DEFAULT_THRESHOLD_KW = 2.5
#: Hysteresis: off once the forecast has stayed this far below the limit ...
OFF_MARGIN_KW = 0.1
#: ... for this long (meter time), or the quarter it warned about has ended.
OFF_AFTER = timedelta(seconds=60)
# A running value the meter has not yet restarted is recognized within this many seconds.
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
    ended, now = (peak_at - timedelta(seconds=1)).astimezone(tz), start.astimezone(tz)
    if (ended.year, ended.month) != (now.year, now.month):
        return 0.0  # last month's, not yet reset: this month has no complete quarter yet
    return peak


def forecast_quarter(
    reading: DemandReading, previous: QuarterForecast | None = None, tz: tzinfo = _BRUSSELS
) -> QuarterForecast | None:
    """The forecast for ``reading`` after the last one not None; ``tz``: the meter's months."""
    at, average, power = reading.at, reading.average_kw, reading.import_kw
    if at is None or average is None or power is None or average < 0:
        return None  # without its timestamp, running value or power
    at = at.astimezone(UTC)
    seconds = int(at.timestamp())
    start = datetime.fromtimestamp(seconds - seconds % QUARTER_S, UTC)
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
