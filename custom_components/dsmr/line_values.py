"""What a telegram line's dsmr_parser object becomes when it is not just its number.

The tariff as low/normal, operator text messages as text, the Belgian monthly peaks (their
12-month average, the peak's time, the 13-month history), the power failure log (its count and
events), and the net power of a telegram. The description table (descriptions.py) names them
as a description's `convert_fn`, `telegram_fn` or `attributes_fn`.
"""

from __future__ import annotations

from decimal import Decimal
from statistics import fmean
from typing import Any

from .const import SWAPPED_TARIFF_VERSIONS


def tariff(obj: Any, version: str) -> str | None:
    """Tariff code 0001/0002 as low/normal; Belgium and E.ON Hungary swap the two."""
    code = {"0001": "low", "0002": "normal"}.get(str(obj.value))
    if code is not None and version in SWAPPED_TARIFF_VERSIONS:
        return "normal" if code == "low" else "low"
    return code


def text(obj: Any, version: str) -> str | None:
    """Text messages are hex-encoded ASCII on most meters; show the text."""
    raw = obj.value
    if raw is None:
        return None
    sent = str(raw)
    try:
        decoded = bytes.fromhex(sent).decode("ascii")
    except ValueError:
        decoded = sent
    decoded = "".join(ch for ch in decoded if ch.isprintable()).strip()
    return decoded[:255]


def monthly_peaks(obj: Any) -> list[Any]:
    """The valid entries of the Belgian 13-month peak history (unused slots are skipped)."""
    peaks = obj if isinstance(obj, list) else []
    # Unused slots carry an invalid timestamp (e.g. 632525252525W), parsed as None: skip them.
    return [p for p in peaks if p.value is not None and p.datetime and p.occurred]


def average_peak(obj: Any, version: str) -> Decimal | None:
    """Average of the last 12 monthly peaks: what the Flemish capacity tariff is billed on."""
    peaks = monthly_peaks(obj)[-12:]
    return Decimal(str(round(fmean(float(p.value) for p in peaks), 3))) if peaks else None


def event_count(obj: Any, version: str) -> int:
    """How many events a log line (the power failure log) holds."""
    return int(obj.buffer_length)


def net_power(telegram: Any) -> Decimal | None:
    """Import minus export (kW): positive while taking from the grid, negative while feeding in."""
    usage = getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None)
    delivery = getattr(telegram, "CURRENT_ELECTRICITY_DELIVERY", None)
    if usage is None or delivery is None:
        return None
    value: Decimal = usage.value - delivery.value
    return value


def peak_time(obj: Any) -> dict[str, Any] | None:
    """When the month's peak occurred (Belgium), as an attribute."""
    return {"occurred": obj.datetime.isoformat()} if obj.datetime else None


def peak_history(obj: Any) -> dict[str, Any] | None:
    """The 13-month peak history (Belgium), as an attribute."""
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


def failures(obj: Any) -> dict[str, Any] | None:
    """The power failure log's events (end, duration in s), as an attribute."""
    return {
        "events": [
            {"end": e.datetime.isoformat() if e.datetime else None, "duration": int(e.value)}
            for e in obj.buffer
        ]
    }
