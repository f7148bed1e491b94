"""What a line says when it is more than a number: texts, the Belgian peaks, the failure log."""

from __future__ import annotations

from decimal import Decimal
import math
from statistics import fmean
from typing import Any

MAX_TEXT = 255  # Home Assistant's longest state


def text(obj: Any) -> str | None:
    """A text message: hex-encoded ASCII on most meters, shown as its text."""
    sent = getattr(obj, "value", None)
    if sent is None:
        return None
    try:
        decoded = bytes.fromhex(str(sent)).decode("ascii")
    except ValueError:
        decoded = str(sent)
    return "".join(ch for ch in decoded if ch.isprintable()).strip()[:MAX_TEXT]


def monthly_peaks(obj: Any) -> list[Any]:
    """The Belgian 13-month peak history's used slots (unused ones carry an invalid stamp)."""
    peaks = obj if isinstance(obj, list) else []
    return [p for p in peaks if p.value is not None and p.datetime and p.occurred]


def average_peak(obj: Any) -> float | None:
    """The average of the last 12 monthly peaks: what the Flemish capacity tariff bills."""
    peaks = [p.value for p in monthly_peaks(obj)[-12:]]
    if not peaks or not all(isinstance(v, Decimal) and v.is_finite() for v in peaks):
        return None  # none, or one unreadable
    mean = fmean(float(v) for v in peaks)
    return round(mean, 3) if math.isfinite(mean) else None


def peak_history(obj: Any) -> dict[str, Any]:
    """The 13-month peak history, as an attribute."""
    return {
        "history": [
            {
                "month": p.datetime.isoformat(),
                "occurred": p.occurred.isoformat(),
                "value": float(p.value),
            }
            for p in monthly_peaks(obj)
        ]
    }


def peak_time(obj: Any) -> dict[str, Any]:
    """When this month's peak occurred, as an attribute."""
    at = getattr(obj, "datetime", None)
    return {"occurred": at.isoformat()} if at else {}


def failures(obj: Any) -> dict[str, Any]:
    """The power failure log's events (end, seconds), as an attribute."""
    return {
        "events": [
            {
                "end": e.datetime.isoformat() if e.datetime else None,
                "duration": None if e.value is None else int(e.value),
            }
            for e in obj.buffer
        ]
    }
