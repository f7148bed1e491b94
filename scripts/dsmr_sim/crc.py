"""CRC-16/ARC as used by DSMR P1 telegrams (DSMR 4 and later).

Polynomial 0x8005 reflected (0xA001), initial value 0x0000, no final XOR, computed over every
byte from the leading ``/`` through the ``!`` inclusive and printed as four upper-case hex digits.
"""

from __future__ import annotations

__all__ = ["crc16", "format_crc", "with_crc"]


def _make_table() -> tuple[int, ...]:
    table: list[int] = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes | str) -> int:
    """Return the CRC-16/ARC of ``data`` (a ``str`` is encoded as latin-1)."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    crc = 0
    for byte in raw:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def format_crc(value: int) -> str:
    """Format a CRC the way meters print it: four upper-case hex digits."""
    return f"{value & 0xFFFF:04X}"


def with_crc(body: str) -> str:
    """Append the CRC and line end to ``body``, which runs from ``/`` up to and including ``!``."""
    if not body.startswith("/") or not body.endswith("!"):
        raise ValueError("a telegram body runs from '/' through '!'")
    return f"{body}{format_crc(crc16(body))}\r\n"
