"""Fault modes: ways a real P1 line goes wrong, switchable at runtime.

Per-telegram faults (``bad_crc``, ``truncate``, ``garbage``, ``duplicate``) change the bytes of
each telegram while on; ``stall`` keeps the line open but silent; ``drip`` sends the bytes
slowly, a few at a time; ``drop_every`` drops the connection(s) (TCP) or unplugs and replugs the
device (pty) after every N telegrams. ``every`` applies the per-telegram faults to every Nth
telegram only (1 = all).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import random
import re

__all__ = ["FAULT_NAMES", "Faults", "corrupt_crc", "garbage_bytes"]

#: Names accepted by :meth:`Faults.set` and the CLI's ``--fault``.
FAULT_NAMES = ("bad_crc", "truncate", "garbage", "stall", "drip", "duplicate", "drop")

_CRC_RE = re.compile(r"!([0-9A-F]{4})\r\n$")
# Bytes that could be taken for telegram framing ('/', '!') or a DLMS frame start (0xDB).
_NOT_GARBAGE = {ord("/"), ord("!"), 0xDB}
_GARBAGE_ALPHABET = bytes(b for b in range(256) if b not in _NOT_GARBAGE)


@dataclass
class Faults:
    """The switchable fault modes of one server (all off by default)."""

    bad_crc: bool = False
    truncate: bool = False
    garbage: bool = False
    stall: bool = False
    drip: bool = False
    duplicate: bool = False
    drop_every: int = 0
    every: int = 1
    drip_size: int = 1
    drip_delay: float = 0.001
    drop_every_default: int = 5

    def set(self, name: str, on: bool = True) -> None:
        """Switch a fault by name (one of :data:`FAULT_NAMES`)."""
        if name == "drop":
            self.drop_every = self.drop_every_default if on else 0
        elif name in FAULT_NAMES:
            setattr(self, name, on)
        else:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")

    def clear(self) -> None:
        """Switch every fault off (timing parameters stay)."""
        for name in FAULT_NAMES:
            self.set(name, False)

    @property
    def active(self) -> list[str]:
        """Names of the faults that are on."""
        on = [f.name for f in fields(self) if f.type in {"bool", bool} and getattr(self, f.name)]
        return [*on, "drop"] if self.drop_every else on

    def applies_to(self, number: int) -> bool:
        """Whether per-telegram faults apply to telegram ``number`` (1-based)."""
        return self.every <= 1 or number % self.every == 0


def corrupt_crc(telegram: str) -> str:
    """Return ``telegram`` with a wrong CRC (one is added when the version prints none)."""
    match = _CRC_RE.search(telegram)
    if match is None:
        return telegram.removesuffix("\r\n") + "0000\r\n"
    wrong = int(match.group(1), 16) ^ 0xFFFF
    return f"{telegram[: match.start(1)]}{wrong:04X}\r\n"


def garbage_bytes(rng: random.Random, count: int = 24) -> bytes:
    """Random line noise that holds no telegram framing characters."""
    return bytes(rng.choice(_GARBAGE_ALPHABET) for _ in range(count))
