"""Plain records of the house model: M-Bus channels, peaks, power failures, tariff schedules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["MBUS_KINDS", "MbusChannel", "Peak", "PowerFailure", "tariff_for"]

#: M-Bus kinds: name -> (EN 13757-3 device type, unit of the reading).
MBUS_KINDS: dict[str, tuple[int, str]] = {
    "gas": (3, "m3"),
    "heat": (4, "GJ"),
    "warm_water": (6, "m3"),
    "water": (7, "m3"),
    "cooling": (10, "GJ"),
    "cooling_inlet": (11, "GJ"),
    "heat_inlet": (12, "GJ"),
}


@dataclass
class MbusChannel:
    """One M-Bus sub-meter (channel 1-4) with its live register and its last hourly capture."""

    channel: int
    kind: str
    device_type: int
    unit: str
    identifier: str
    value: float
    reading: float
    reading_at: datetime
    rate: float = 0.0


@dataclass
class Peak:
    """One month of the Belgian 13-month peak history (``0-0:98.1.0``).

    ``month`` is the local start of the month *after* the one the peak belongs to (as meters
    print it); ``at`` is when the peak quarter ended, or ``None`` for an unused slot, which is
    printed with an invalid timestamp as real meters do.
    """

    month: datetime
    at: datetime | None
    kw: float


@dataclass
class PowerFailure:
    """One entry of the long power failure log (``1-0:99.97.0``)."""

    end: datetime
    duration_s: int


def tariff_for(scheme: str, local: datetime) -> int:
    """Return the active tariff (1-based) for a local time under a regional scheme."""
    weekend = local.weekday() >= 5
    hour = local.hour
    if scheme == "nl":  # tariff 1 = low ("dal"): nights and weekends
        return 1 if weekend or hour < 7 or hour >= 23 else 2
    # be/hu/at: tariff 1 = day/peak on weekdays, tariff 2 otherwise
    return 1 if not weekend and 7 <= hour < 22 else 2
