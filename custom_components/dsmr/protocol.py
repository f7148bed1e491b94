"""The P1 protocol: cut the byte stream into telegrams, parse them, count what is bad.

serialx delivers bytes to `P1Protocol.data_received`, which cuts them into telegrams (on
bytes, looking at each byte a bounded number of times: a non-ASCII byte skips its telegram, a
frame longer than MAX_FRAME is skipped and never held, noise is dropped), parses each with
dsmr_parser (CRC, decryption), hands every accepted frame to the frame sink (sharing) and the
parsed telegram to `telegram_callback`, on the same event loop: no queue. A silence watchdog
closes a connection that stopped sending. `RfxtrxP1Protocol` unwraps RFXtrx packets first.
The connection's life (open, reconnect) is reader.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import re
import time
from typing import Any

from dsmr_parser.clients.protocol import DSMRProtocol
from dsmr_parser.clients.rfxtrx_protocol import (
    PACKETTYPE_DSMR,
    SUBTYPE_P1,
    RFXtrxDSMRProtocol,
)
from dsmr_parser.exceptions import DecryptionError, InvalidChecksumError
from serialx import PARITY_NONE

from .const import DEFAULT_WATCHDOG_TIMEOUT
from .counters import ReaderStats
from .decryption import decrypt
from .dsmr_library import PARSING, Parser, new_parser
from .parser import MAX_LINES, CachingTelegramParser, TooManyLines

# A telegram as dsmr_parser's TelegramBuffer defines it, on bytes: '/' up to the first '!', the
# CRC (0-4 hex digits, unpadded allowed), an optional NUL, CRLF.
TELEGRAM_FRAME = re.compile(rb"/[^/]+?![A-F0-9]{0,4}\x00?\r\n", re.DOTALL)
# Its end. A telegram ends at the first such end at least two bytes after its '/', which is the
# last '/' before that end (`[^/]`): what comes before the last '/' is never part of one.
FRAME_END = re.compile(rb"![A-F0-9]{0,4}\x00?\r\n")
END_SIZE = 8  # an end's most bytes: a '!' this far from the data's end has been decided
# No meter sends a longer frame (real ones are under 3 KB, encrypted ones too): a longer one
# is skipped as it comes, and counted.
MAX_FRAME = 16 * 1024
# An encrypted (DLMS general-global-cipher) frame: tag, system title length, system title,
# 0x82 and the length of the rest in two bytes (dsmr_parser's EncryptedTelegramBuffer).
DLMS_TAG = 0xDB
DLMS_LONG_LENGTH = 0x82
# A meter takes ~80 ms to send a DSMR 5 telegram at 115200 baud, and a USB serial adapter (or a
# serial-to-network bridge) hands it over a few dozen bytes at a time: 15 or more wake-ups per
# telegram, each costing more than parsing a changed line. Once a telegram has begun, the
# reader sleeps until its expected end (the last telegram's size at the line's byte rate, plus
# PAUSE_MARGIN, which covers an FTDI adapter's 16 ms latency timer for the last few bytes) and
# then reads the rest at once; the kernel holds the bytes meanwhile. Waits shorter than
# MIN_PAUSE are not worth the timer.
MIN_PAUSE = 0.02
PAUSE_MARGIN = 0.02


class P1Protocol(DSMRProtocol):  # type: ignore[misc]
    """dsmr_parser's protocol, with bounded framing, counted faults and a silence watchdog.

    dsmr_parser decodes every chunk to text and lets a non-ASCII byte escape as an exception
    (which makes asyncio drop the connection), logs every bad telegram with a traceback, and has
    a keep-alive only for network connections. Here framing works on bytes, every fault is
    counted and logged once, and the watchdog covers serial ports too.
    """

    def __init__(
        self,
        *args: Any,
        stats: ReaderStats,
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        line_rate: float | None = None,
        frame_sink: Callable[[bytes], None] | None = None,
        plain_frames: bool = False,
        **kwargs: Any,
    ) -> None:
        """Initialize the protocol; arguments are dsmr_parser's plus our own.

        `line_rate` is the meter's line speed in bytes per second (None: do not wait for the
        rest of a telegram, read every chunk as it comes). `frame_sink` gets every accepted
        frame (see `_share`); `plain_frames`: an encrypted meter's plain telegram instead.
        """
        super().__init__(*args, **kwargs)
        specification = self.telegram_parser.telegram_specification
        # Same contract and result as dsmr_parser's TelegramParser; unchanged lines are not
        # parsed again (see parser.py), unless dsmr_library's self-check said otherwise.
        self.telegram_parser: Parser = new_parser(specification)
        self.encrypted = bool(specification.get("general_global_cipher"))
        self.keys = {
            "encryption_key": kwargs.get("encryption_key", ""),
            "authentication_key": kwargs.get("authentication_key", ""),
        }
        self.stats = stats
        self.frame_sink = frame_sink
        self.plain_frames = plain_frames
        self.done = asyncio.Event()  # set when the connection is lost
        self.close_reason: str | None = None
        # The telegram that may be coming: from its '/' (or an encrypted frame's tag) on.
        self._buffer = bytearray()
        self._scanned = 0  # where in `_buffer` the search for the telegram's end goes on
        self._skip = 0  # bytes of an oversized encrypted frame still to come (dropped)
        self._watchdog_timeout = watchdog_timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_frame = 0.0
        self._line_rate = line_rate
        self._frame_size = 0  # bytes of the last telegram
        self._wait_decided = False  # whether to wait for this telegram's end is decided
        self._resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the silence watchdog when the port opens."""
        self.transport = transport
        self._last_frame = self.loop.time()
        self._watchdog = self.loop.call_at(
            self._last_frame + self._watchdog_timeout, self._check_silence
        )

    def _check_silence(self) -> None:
        idle = self.loop.time() - self._last_frame
        if idle < self._watchdog_timeout:
            self._watchdog = self.loop.call_at(
                self._last_frame + self._watchdog_timeout, self._check_silence
            )
            return
        self._watchdog = None
        self.stats.watchdog_timeouts += 1
        self.close(f"no telegram for {idle:.0f} s")

    def close(self, reason: str) -> None:
        """Close the connection, remembering why."""
        self.close_reason = self.close_reason or reason
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Take a chunk of bytes; whatever goes wrong with it is counted, never raised.

        (An exception out of here makes asyncio log a traceback and drop the connection.)
        """
        try:
            self._data_received(data)
        except Exception as err:  # counted and logged, the next chunk flows
            self.internal_error(err)

    def internal_error(self, err: Exception) -> None:
        """Count and log (rate-limited) what dsmr_parser or a framing layer raised."""
        self.stats.parse_errors += 1
        self.stats.fault(
            "internal", "Skipped bytes that could not be handled (%s)", type(err).__name__
        )

    def _data_received(self, data: bytes) -> None:
        """Cut complete telegrams out of the byte stream and handle each."""
        if self.encrypted:  # the silence watchdog is fed by frames that decrypt only
            for dlms in self._cut_encrypted(data):
                super().data_received(dlms)  # whole: dsmr_parser's buffer yields it at once
            return
        for frame in self._cut(data):
            self._last_frame = self.loop.time()
            self._frame_size = len(frame)
            self._wait_decided = False
            if frame.isascii():
                self.handle_telegram(frame.decode("ascii"))
            else:
                self.stats.parse_errors += 1
                self.stats.fault("non_ascii", "Skipped a telegram with non-ASCII bytes")
        self._hold()

    def _cut(self, data: bytes) -> list[bytearray]:
        """The frames `data` completes, as TELEGRAM_FRAME finds them in the whole stream.

        The search for an end goes on where it stopped; what cannot be part of a telegram is
        dropped (counted) at once, and a telegram longer than MAX_FRAME as soon as it is.
        """
        buffer = self._buffer
        start = 0 if buffer else -1  # the last '/', where a telegram would begin
        buffer += data
        at, kept = self._scanned, 0  # bytes before `kept` are counted: frames or dropped
        frames: list[bytearray] = []
        while True:
            end = FRAME_END.search(buffer, at)
            stop = end.start() if end else len(buffer)
            if (slash := buffer.rfind(b"/", at, stop)) >= 0:
                start = slash
            if end is None:
                break
            at = end.end()
            if 0 <= start < stop - 1:
                self.stats.discarded_bytes += start - kept
                if at - start > MAX_FRAME:
                    self.stats.discarded_bytes += at - start
                    self._oversized()
                else:
                    frames.append(buffer[start:at])
                kept, start = at, -1
        cut = start if start >= 0 else len(buffer)
        self.stats.discarded_bytes += cut - kept
        del buffer[:cut]
        self._scanned = max(at - cut, len(buffer) - END_SIZE + 1, 0)
        if len(buffer) > MAX_FRAME:
            self.stats.discarded_bytes += len(buffer)
            buffer.clear()
            self._scanned = 0
            self._oversized()
        return frames

    def _cut_encrypted(self, data: bytes) -> list[bytes]:
        """The DLMS frames `data` completes, as dsmr_parser's buffer cuts them.

        A frame that announces more than MAX_FRAME bytes is dropped as its bytes come.
        """
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            self.stats.discarded_bytes += skipped
            data = data[skipped:]
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        while (start := buffer.find(DLMS_TAG)) >= 0:
            self.stats.discarded_bytes += start
            del buffer[:start]
            if len(buffer) < 2:
                return frames
            header = 5 + buffer[1]
            if len(buffer) < header:
                return frames
            if buffer[header - 3] != DLMS_LONG_LENGTH:  # no frame: look for the next tag
                self.stats.discarded_bytes += 1
                del buffer[:1]
                continue
            size = header + int.from_bytes(buffer[header - 2 : header])
            if size > MAX_FRAME:
                dropped = min(size, len(buffer))
                self.stats.discarded_bytes += dropped
                del buffer[:dropped]
                self._skip = size - dropped
                self._oversized()
                continue
            if len(buffer) < size:
                return frames
            frames.append(bytes(buffer[:size]))
            del buffer[:size]
        self.stats.discarded_bytes += len(buffer)
        buffer.clear()
        return frames

    def _oversized(self) -> None:
        """Count a frame no meter sends as skipped (its bytes are counted as they go)."""
        self._wait_decided = False
        self.stats.parse_errors += 1
        self.stats.fault("frame_size", "Skipped a frame of more than %d bytes", MAX_FRAME)

    def _hold(self) -> None:
        """Wait for the rest of a telegram that has begun, if worth it (once per telegram)."""
        if self._buffer and self._line_rate and not self._wait_decided:
            self._wait_for_rest()

    def _wait_for_rest(self) -> None:
        """Stop reading until the telegram that has begun should be complete."""
        transport = self.transport
        if not self._frame_size or not isinstance(transport, asyncio.ReadTransport):
            return
        assert self._line_rate is not None
        self._wait_decided = True  # decided once per telegram, on its first piece
        wait = (self._frame_size - len(self._buffer)) / self._line_rate
        if wait < MIN_PAUSE or transport.is_closing():
            return
        try:
            transport.pause_reading()
        except NotImplementedError:  # e.g. an ESPHome serial proxy
            self._line_rate = None
            return
        self._resume = self.loop.call_later(wait + PAUSE_MARGIN, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume = None
        transport = self.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.resume_reading()

    def handle_telegram(self, telegram: str) -> None:
        """Parse one telegram; count and skip it when it is bad."""
        stats = self.stats
        bad_lines = stats.bad_lines
        parsing = PARSING.set(stats)
        try:
            parsed = self.telegram_parser.parse(telegram, **self.keys)
        except DecryptionError as err:
            stats.decryption_errors += 1
            self.decryption_error = err
            stats.fault("decrypt", "Cannot decrypt telegrams; check the encryption key")
            self.close("decryption failed")
            return
        except InvalidChecksumError:
            stats.crc_errors += 1
            stats.fault("crc", "Skipped a telegram with a bad CRC; check the P1 cable")
            return
        except TooManyLines:
            stats.parse_errors += 1
            stats.fault("line_count", "Skipped a telegram of more than %d lines", MAX_LINES)
            return
        except Exception as err:  # dsmr_parser and dlms_cosem raise many kinds
            # The message may quote a line (identifiers included): log the kind only.
            stats.parse_errors += 1
            stats.fault("parse", "Skipped a telegram that does not parse (%s)", type(err).__name__)
            return
        finally:
            PARSING.reset(parsing)
        if self.encrypted:
            self._last_frame = self.loop.time()
        if stats.bad_lines != bad_lines:
            stats.fault(
                "line", "Ignored %d unreadable line(s) of a telegram", stats.bad_lines - bad_lines
            )
        stats.telegrams += 1
        stats.last_raw = telegram
        stats.last_telegram = now = time.time()
        stats.recent.append(now)
        if self.frame_sink is not None:
            self._share(telegram)
        self.telegram_callback(parsed)

    def _share(self, telegram: str) -> None:
        """Hand the accepted frame to the sink, byte for byte as it came off the line.

        Accepted: counted in `stats.telegrams` (CRC, decryption and parse passed). A plain
        frame is ASCII, so its text encodes back to the bytes received; an encrypted frame
        arrives here as hex. `plain_frames`: the telegram its decryption gave, its CRC inside.
        """
        assert self.frame_sink is not None
        if not self.encrypted:
            self.frame_sink(telegram.encode("ascii"))
        elif self.plain_frames:
            self.frame_sink(self._plain(telegram).encode("ascii"))
        else:
            self.frame_sink(bytes.fromhex(telegram))

    def _plain(self, telegram: str) -> str:
        """The plain telegram the parse just decrypted.

        dsmr_parser's own parser (used when dsmr_library's self-check fails) keeps none: the
        frame is decrypted again.
        """
        parser = self.telegram_parser
        if isinstance(parser, CachingTelegramParser):
            return parser.last_plain
        return decrypt(parser.telegram_specification, telegram, **self.keys)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timers and wake up whoever waits for the connection to close."""
        for timer in (self._watchdog, self._resume):
            if timer is not None:
                timer.cancel()
        self._watchdog = self._resume = None
        if exc is not None and self.close_reason is None:
            self.close_reason = str(exc) or type(exc).__name__
        self.done.set()

    async def wait_closed(self) -> None:
        """Wait until the connection is lost."""
        await self.done.wait()


class RfxtrxP1Protocol(RFXtrxDSMRProtocol, P1Protocol):  # type: ignore[misc]
    """P1 telegrams wrapped in RFXtrx packets."""

    remaining_data: bytes  # an unfinished packet (less than 256 bytes)

    def data_received(self, data: bytes) -> None:
        """Unwrap the packets, then read their P1 bytes as P1Protocol does."""
        try:
            self._unwrap(data)
        except Exception as err:  # counted and logged, the next chunk flows
            self.remaining_data = b""
            self.internal_error(err)

    def _unwrap(self, data: bytes) -> None:
        """dsmr_parser's unwrapping (`RFXtrxDSMRProtocol.data_received`), in one pass.

        A packet is its length byte (of what follows), type, subtype, a sequence number and
        data; the data of P1 packets (type 0x62, subtype 0x01) is P1 bytes, other packets are
        skipped. dsmr_parser cuts the rest off after each packet (a copy each: quadratic) and
        raises on a packet too short for its header; here those are counted, once per chunk.
        """
        if self.remaining_data:
            data = self.remaining_data + data
        at, size, scraps = 0, len(data), 0
        while at < size:
            end = at + data[at] + 1
            if end > size:
                break
            if end - at < 4:
                scraps += end - at
            elif data[at + 1] == PACKETTYPE_DSMR and data[at + 2] == SUBTYPE_P1 and end > at + 4:
                P1Protocol.data_received(self, data[at + 4 : end])
            at = end
        self.remaining_data = data[at:]
        if scraps:
            self.stats.parse_errors += 1
            self.stats.discarded_bytes += scraps
            self.stats.fault("rfxtrx", "Skipped RFXtrx packets too short to hold P1 data")


def line_rate(settings: Mapping[str, Any]) -> float:
    """Bytes per second on a line with dsmr_parser's serial settings.

    A character is a start bit, the data bits, a parity bit unless there is none, and the stop
    bits: ten bits for both 8N1 (DSMR 4/5) and 7E1 (DSMR 2.2).
    """
    stop_bits = float(getattr(settings["stopbits"], "value", settings["stopbits"]))
    bits = 1 + int(settings["bytesize"]) + (settings["parity"] != PARITY_NONE) + stop_bits
    rate: float = settings["baudrate"] / bits
    return rate
