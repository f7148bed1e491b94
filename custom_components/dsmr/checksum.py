"""dsmr_parser's telegram CRC check (CRC-16/ARC), with the same expressions, errors and messages.

dsmr_parser computes the CRC per character with `c_ushort` and `int(hex)` (about 145 us per DSMR 5
telegram); this computes the same CRC with tables two bytes per step (13-20 us).

`ChecksumCheck` is quicker still for a meter's stream: CRC-16/ARC starts from zero and adds
nothing at the end, so it is linear: for texts of one length, crc(a) ^ crc(b) = crc(a ^ b).
A telegram as long as the last one differs from it in a few values; the CRC of the difference
costs those bytes, and each run of zero bytes between them a few table steps (`_skip`). A text
longer than any meter's telegram (MAX_REMEMBERED) is checked but not remembered.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
import re
import sys
from typing import Final

from dsmr_parser.exceptions import InvalidChecksumError, ParseError
from dsmr_parser.parsers import TelegramParser

__all__ = ["ChecksumCheck", "crc16", "validate_checksum"]

# dsmr_parser's `TelegramParser.validate_checksum`, with the same expressions and messages.
_CHECKSUM_CONTENTS: Final = re.compile(r"\/.+\!", re.DOTALL)
# dsmr_parser looks for its checksum with r"((?<=\!)[0-9A-Z]{1,4})+", a look-behind tried at every
# position; the first "!" followed by 1-4 of [0-9A-Z] is the same match, found much faster.
_CHECKSUM_HEX: Final = re.compile(r"!([0-9A-Z]{1,4})")
# Longer texts are checked but not kept for the next one (a meter's: under 3 KB).
MAX_REMEMBERED: Final = 16 * 1024


def _crc_tables() -> tuple[list[int], list[int], list[int]]:
    """CRC-16/ARC steps: one byte, and two bytes split into their low and high byte.

    Two bytes at a time from state `crc`: `x = crc ^ word; crc = low[x & 0xFF] ^ high[x >> 8]`
    (the CRC is linear, so the 16-bit step splits into two 256-entry tables; they stay in the
    CPU's L1 cache, where a 65536-entry table would not).
    """
    byte = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        byte.append(crc)

    def two_bytes(x: int) -> int:
        first = (x >> 8) ^ byte[x & 0xFF]
        return (first >> 8) ^ byte[first & 0xFF]

    return byte, [two_bytes(v) for v in range(256)], [two_bytes(v << 8) for v in range(256)]


_CRC_BYTE, _CRC_LOW, _CRC_HIGH = _crc_tables()
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


def _zero_tables(levels: int) -> list[tuple[Sequence[int], Sequence[int]]]:
    """Per level j: the state after 2**j zero bytes, as tables for its low and high byte.

    A zero byte moves the state `crc` to `(crc >> 8) ^ byte[crc & 0xFF]`, a linear map; so
    does any number of them, and a linear map of 16 bits is the XOR of what it makes of the
    low byte and of the high byte.
    """
    low = [(v >> 8) ^ _CRC_BYTE[v & 0xFF] for v in range(256)]
    high = [((v << 8) >> 8) ^ _CRC_BYTE[0] for v in range(256)]
    tables = [(low, high)]
    for _ in range(levels - 1):
        low, high = tables[-1]

        def twice(v: int, low: list[int] = low, high: list[int] = high) -> int:
            once = low[v & 0xFF] ^ high[v >> 8]
            return low[once & 0xFF] ^ high[once >> 8]

        tables.append(([twice(v) for v in range(256)], [twice(v << 8) for v in range(256)]))
    return [(array("H", low), array("H", high)) for low, high in tables]


_ZERO_TABLES: Final = _zero_tables(12)  # up to 4095 zero bytes a step; more: several


def _skip(crc: int, zeros: int) -> int:
    """The state after `zeros` zero bytes."""
    level, top = 0, len(_ZERO_TABLES) - 1
    while zeros and crc:
        low, high = _ZERO_TABLES[level]
        if level == top:  # `zeros` steps of the largest table
            crc = low[crc & 0xFF] ^ high[crc >> 8]
            zeros -= 1
            continue
        if zeros & 1:
            crc = low[crc & 0xFF] ^ high[crc >> 8]
        zeros >>= 1
        level += 1
    return crc


def crc16(text: str) -> int:
    """dsmr_parser's `TelegramParser.crc16` (CRC-16/ARC), computed two bytes per step."""
    if not text.isascii() or not _LITTLE_ENDIAN:
        result: int = TelegramParser.crc16(text)
        return result
    data = text.encode("ascii")
    low, high = _CRC_LOW, _CRC_HIGH
    crc = 0
    even = len(data) & ~1
    for word in memoryview(data)[:even].cast("H"):
        x = crc ^ word
        crc = low[x & 0xFF] ^ high[x >> 8]
    if even != len(data):
        crc = (crc >> 8) ^ _CRC_BYTE[(crc ^ data[-1]) & 0xFF]
    return crc


def validate_checksum(telegram: str) -> None:
    """dsmr_parser's `TelegramParser.validate_checksum`: the same checks, errors and messages."""
    contents = _CHECKSUM_CONTENTS.search(telegram)
    checksum_hex = _CHECKSUM_HEX.search(telegram)
    if not contents or not checksum_hex:
        raise ParseError(
            "Failed to perform CRC validation because the telegram is "
            "incomplete. The checksum and/or content values are missing."
        )
    _check(crc16(contents.group(0)), checksum_hex.group(1))


def _check(calculated_crc: int, checksum_hex: str) -> None:
    expected_crc = int(checksum_hex, base=16)
    if calculated_crc != expected_crc:
        raise InvalidChecksumError(
            f"Invalid telegram. The CRC checksum '{calculated_crc}' does not match the "
            f"expected '{expected_crc}'"
        )


class ChecksumCheck:
    """`validate_checksum` for one meter's telegrams, from the last telegram's CRC when it can."""

    def __init__(self) -> None:
        """Start without a last telegram."""
        self._last: tuple[int, int, int] | None = None  # (length, contents as int, its CRC)

    def validate(self, telegram: str) -> None:
        """`validate_checksum(telegram)`: the same checks, errors and messages."""
        contents = _CHECKSUM_CONTENTS.search(telegram)
        checksum_hex = _CHECKSUM_HEX.search(telegram)
        if not contents or not checksum_hex:
            validate_checksum(telegram)  # raises its error
            return
        _check(self._crc(contents.group(0)), checksum_hex.group(1))

    def _crc(self, text: str) -> int:
        if len(text) > MAX_REMEMBERED or not text.isascii():
            self._last = None
            return crc16(text)
        data = text.encode("ascii")
        whole = int.from_bytes(data)
        last = self._last
        if last is None or last[0] != len(data):
            crc = crc16(text)
        else:  # the last CRC, XOR the CRC of what changed since
            crc, at = 0, 0
            size = len(data)
            difference = (whole ^ last[1]).to_bytes(size)
            table = _CRC_BYTE
            while rest := difference[at:].lstrip(b"\x00"):  # the next run of changed bytes
                start = size - len(rest)
                if (length := rest.find(0)) < 0:
                    length = len(rest)
                crc = _skip(crc, start - at)
                for value in rest[:length]:
                    crc = (crc >> 8) ^ table[(crc ^ value) & 0xFF]
                at = start + length
            crc = _skip(crc, size - at) ^ last[2]
        self._last = (len(data), whole, crc)
        return crc
