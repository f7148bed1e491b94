"""Frames out of a byte stream: plain telegrams, encrypted (DLMS) frames, RFXtrx packets.

Whatever the pieces the bytes come in, each is looked at a bounded number of times; a frame over
MAX_FRAME is dropped as it comes, never held. What is dropped is counted (`take_dropped`).
"""

from __future__ import annotations

import re
from typing import Final

MAX_FRAME: Final = 16 * 1024  # no meter sends more (real ones are under 3 KB, encrypted too)
# A telegram ends at the first such end at least two bytes after its '/', the last '/' before
# that end: what comes before the last '/' is never part of one.
FRAME_END: Final = re.compile(rb"![A-F0-9]{0,4}\x00?\r\n")
END_SIZE: Final = 8  # an end's most bytes: a '!' this far from the data's end is decided
# An encrypted frame: tag, system title length, system title, 0x82 and the length of the rest.
DLMS_TAG: Final = 0xDB
DLMS_LONG_LENGTH: Final = 0x82
# RFXtrx: a packet is its length byte (of what follows), type, subtype, sequence, data.
RFXTRX_P1: Final = (0x62, 0x01)


class Framer:
    """Cuts plain telegrams out of a byte stream."""

    def __init__(self) -> None:
        self.buffer = bytearray()  # the telegram that may be coming: from its '/' on
        self._scanned = 0  # where the search for its end goes on
        self._dropped = self._oversized = 0  # bytes, oversized frames, since `take_dropped`

    def take_dropped(self) -> tuple[int, int]:
        """Bytes and oversized frames dropped since the last call."""
        dropped, self._dropped, self._oversized = (self._dropped, self._oversized), 0, 0
        return dropped

    def feed(self, data: bytes) -> list[bytes]:
        """The telegrams `data` completes, as TelegramBuffer finds them in the whole stream."""
        buffer = self.buffer
        start = 0 if buffer else -1  # the last '/', where a telegram would begin
        buffer += data
        at, kept = self._scanned, 0  # bytes before `kept` are accounted for
        frames: list[bytes] = []
        while True:
            end = FRAME_END.search(buffer, at)
            stop = end.start() if end else len(buffer)
            if (slash := buffer.rfind(b"/", at, stop)) >= 0:
                start = slash
            if end is None:
                break
            at = end.end()
            if 0 <= start < stop - 1:
                self._dropped += start - kept
                if at - start > MAX_FRAME:
                    self._drop(at - start)
                else:
                    frames.append(bytes(buffer[start:at]))
                kept, start = at, -1
        cut = start if start >= 0 else len(buffer)
        self._dropped += cut - kept
        del buffer[:cut]
        self._scanned = max(at - cut, len(buffer) - END_SIZE + 1, 0)
        if len(buffer) > MAX_FRAME:
            self._drop(len(buffer))
            buffer.clear()
            self._scanned = 0
        return frames

    def _drop(self, size: int) -> None:
        self._dropped += size
        self._oversized += 1


class EncryptedFramer(Framer):
    """Cuts encrypted (DLMS general-global-cipher) frames out of a byte stream, by length."""

    _skip = 0  # bytes of an oversized frame still to come

    def feed(self, data: bytes) -> list[bytes]:
        """The frames `data` completes; one announcing more than MAX_FRAME is dropped."""
        skipped = min(self._skip, len(data))
        self._skip -= skipped
        self._dropped += skipped
        buffer = self.buffer
        buffer += data[skipped:]
        frames: list[bytes] = []
        while (start := buffer.find(DLMS_TAG)) >= 0:
            self._dropped += start
            del buffer[:start]
            if len(buffer) < 2 or len(buffer) < (header := 5 + buffer[1]):
                return frames
            if buffer[header - 3] != DLMS_LONG_LENGTH:  # no frame: look for the next tag
                self._dropped += 1
                del buffer[:1]
                continue
            size = header + int.from_bytes(buffer[header - 2 : header])
            if size > MAX_FRAME:
                dropped = min(size, len(buffer))
                del buffer[:dropped]
                self._skip = size - dropped
                self._drop(dropped)
                continue
            if len(buffer) < size:
                return frames
            frames.append(bytes(buffer[:size]))
            del buffer[:size]
        self._dropped += len(buffer)
        buffer.clear()
        return frames


class RfxtrxUnwrapper:
    """The P1 bytes inside RFXtrx packets, in one pass (dsmr_parser's unwrapping copies)."""

    rest = b""  # an unfinished packet (less than 256 bytes)
    scraps = 0  # bytes of packets too short to hold P1 data

    def feed(self, data: bytes) -> bytes:
        """The P1 bytes of the packets `data` completes."""
        data = self.rest + data
        at, size, p1 = 0, len(data), bytearray()
        while at < size and (end := at + data[at] + 1) <= size:
            if end - at < 4:
                self.scraps += end - at
            elif (data[at + 1], data[at + 2]) == RFXTRX_P1 and end > at + 4:
                p1 += data[at + 4 : end]
            at = end
        self.rest = data[at:]
        return bytes(p1)
