"""What a reader has seen: counters for diagnostics and health sensors, and rate-limited logging.

`ReaderStats` counts good and bad telegrams and connection faults; a fault of a kind is logged at
warning once and then at most every ten minutes. (dsmr_parser's own per-line error records are
counted here too, while a reader parses: see `dsmr_library.PARSING`.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import time

from .const import LOGGER

# Repeats of the same fault are logged at most this often (seconds); the first one at once.
LOG_REPEAT_INTERVAL = 600.0


@dataclass(slots=True)
class ReaderStats:
    """What the reader has seen since the entry was set up (diagnostics, health sensors)."""

    telegrams: int = 0
    crc_errors: int = 0
    parse_errors: int = 0
    bad_lines: int = 0  # lines dsmr_parser could not read (the rest of the telegram is used)
    decryption_errors: int = 0
    discarded_bytes: int = 0
    connects: int = 0
    connection_errors: int = 0
    failures_in_a_row: int = 0  # connection attempts that failed since the last success
    watchdog_timeouts: int = 0
    update_errors: int = 0  # an entity (or the coordinator) failed to take a telegram
    last_telegram: float | None = None  # time.time() of the last good telegram
    last_raw: str | None = field(default=None, repr=False)  # its text (hex for encrypted frames)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=600), repr=False)
    last_error: str | None = None  # its message, as logged (it may name the port's host)
    last_error_kind: str | None = None  # what diagnostics show: "connect", "crc", "parse", ...
    _logged: dict[str, float] = field(default_factory=dict, repr=False)

    def fault(self, kind: str, message: str, *args: object) -> None:
        """Log a fault: the first of a kind at warning, repeats at most every 10 minutes."""
        self.last_error = message % args if args else message
        self.last_error_kind = kind
        now = time.monotonic()
        last = self._logged.get(kind)
        if last is None or now - last >= LOG_REPEAT_INTERVAL:
            self._logged[kind] = now
            LOGGER.warning(message + " (further such messages are rate-limited)", *args)
        else:
            LOGGER.debug(message, *args)

    def per_minute(self) -> int:
        """Good telegrams in the last 60 seconds."""
        since = time.time() - 60
        return sum(1 for t in reversed(self.recent) if t >= since) if self.recent else 0

    def recovered(self, kind: str) -> None:
        """Forget that a fault was logged, so the next occurrence is reported again."""
        self._logged.pop(kind, None)
