"""A meter's registers kept across restarts, so that they never go backwards between runs.

``python -m dsmr_sim --state FILE`` writes the house's cumulative values (energy registers,
M-Bus readings, event counters, the Belgian peak history) after every telegram and when it
stops, and reads them back at the next start. The meter then resumes at the time they were
saved and catches up to the wall clock through the house model: the registers grow by what the
house used while the simulator was off, as a real meter's do while nothing reads it. Catching
up is bounded to :data:`MAX_CATCH_UP` (a day takes about half a second to simulate); a longer
pause adds only that much.

The file is JSON, written atomically (a temporary file renamed over it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
from typing import Any

from .house import House
from .records import Peak

__all__ = ["MAX_CATCH_UP", "MeterState", "StateError"]

FORMAT = 1
MAX_CATCH_UP = timedelta(days=1)
_LISTS = (
    "import_kwh",
    "export_kwh",
    "reactive_import_kvarh",
    "reactive_export_kvarh",
    "quadrant_kvarh",
    "sags",
    "swells",
    "last_month_import",
    "last_month_export",
)
_NUMBERS = ("short_failures", "long_failures", "month_peak_kw")


class StateError(ValueError):
    """A state file that cannot be read back (corrupt, or another format)."""


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class MeterState:
    """What :class:`~dsmr_sim.house.House` keeps between runs, as plain JSON-able data."""

    saved_at: datetime  # the meter's own (simulated) time when saved, aware
    data: dict[str, Any]

    @classmethod
    def of(cls, house: House) -> MeterState:
        """The house's cumulative values now."""
        data: dict[str, Any] = {"format": FORMAT}
        data |= {name: list(getattr(house, name)) for name in _LISTS}
        data |= {name: getattr(house, name) for name in _NUMBERS}
        data["month_peak_at"] = house.month_peak_at.isoformat()
        data["last_month_at"] = house.last_month_at.isoformat()
        data["peak_history"] = [
            [p.month.isoformat(), None if p.at is None else p.at.isoformat(), p.kw]
            for p in house.peak_history
        ]
        data["mbus"] = [
            {
                "channel": ch.channel,
                "kind": ch.kind,
                "value": ch.value,
                "reading": ch.reading,
                "reading_at": ch.reading_at.isoformat(),
            }
            for ch in house.mbus
        ]
        return cls(house.utc, data)

    def apply(self, house: House) -> None:
        """Give ``house`` these values (M-Bus channels only where channel and kind match)."""
        data = self.data
        try:
            for name in _LISTS:
                values = [type(v)(x) for v, x in zip(getattr(house, name), data[name], strict=True)]
                setattr(house, name, values)
            house.short_failures = int(data["short_failures"])
            house.long_failures = int(data["long_failures"])
            house.month_peak_kw = float(data["month_peak_kw"])
            house.month_peak_at = datetime.fromisoformat(data["month_peak_at"])
            house.last_month_at = datetime.fromisoformat(data["last_month_at"])
            house.peak_history = [
                Peak(datetime.fromisoformat(month), _time(at), float(kw))
                for month, at, kw in data["peak_history"]
            ]
            saved = {(m["channel"], m["kind"]): m for m in data["mbus"]}
            for ch in house.mbus:
                if (found := saved.get((ch.channel, ch.kind))) is not None:
                    ch.value = float(found["value"])
                    ch.reading = float(found["reading"])
                    ch.reading_at = datetime.fromisoformat(found["reading_at"])
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"state does not fit this meter: {err!r}") from err

    @staticmethod
    def resume_at(saved_at: datetime, now: datetime) -> datetime:
        """When the meter resumes: where it stopped, but at most :data:`MAX_CATCH_UP` ago."""
        return max(saved_at, now - MAX_CATCH_UP)

    # --- the file ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: a reader never sees a half-written file."""
        text = json.dumps({"saved_at": self.saved_at.isoformat(), **self.data}, indent=1)
        partial = path.with_name(f".{path.name}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text + "\n", encoding="utf-8")
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> MeterState | None:
        """The saved state, or None when there is no file yet."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise StateError(f"{path}: {err}") from err
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise StateError(f"{path}: not a dsmr_sim state file (format {FORMAT})")
        try:
            saved_at = datetime.fromisoformat(raw.pop("saved_at"))
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"{path}: no valid saved_at") from err
        if saved_at.tzinfo is None:
            saved_at = saved_at.replace(tzinfo=UTC)
        return cls(saved_at, raw)
