"""The connection to the meter: which ports may be opened, the P1 protocol, reconnecting.

Only `async_open_port` opens ports, only ttys under /dev and URL_SCHEMES (/dev/watchdog arms a
watchdog when opened); whatever shows or logs a port goes through `redact_port`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
import contextlib
from dataclasses import dataclass, field
import functools
import os
import re
import stat
import time
from typing import Any, Final
from urllib.parse import unquote_plus

from dsmr_parser.exceptions import DecryptionError, InvalidChecksumError
from homeassistant.const import CONF_HOST, CONF_PORT
from serialx import PARITY_NONE, create_serial_connection

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_PROTOCOL,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_WATCHDOG_TIMEOUT,
    ENCRYPTED_DSMR_VERSIONS,
    LOGGER,
    RFXTRX_DSMR_PROTOCOL,
)
from .p1.framing import MAX_FRAME, EncryptedFramer, Framer, RfxtrxUnwrapper
from .p1.telegram import MAX_LINES, TelegramReader, decrypt, version_setup

URL_SCHEMES: Final = frozenset({"socket", "rfc2217", "esphome", "esphome-hass"})
SECRET_PARAMS: Final = frozenset({"key", "password", "noise_psk"})  # serialx's ESPHome backend
REDACTED: Final = "**REDACTED**"
CLOSE_WAIT: Final = 1.0  # s a closing port may take before the next open is tried anyway
SERIAL_TTY_KINDS: Final = frozenset({"serial", "pty:slave"})  # UARTs, USB serial, ptys
TTY_DRIVERS: Final = "/proc/tty/drivers"
WINDOWS: Final = os.name == "nt"
FIRST_RETRY_DELAY: Final = 1.0  # s, doubling up to the reconnect interval
LOG_REPEAT_INTERVAL: Final = 600.0  # s between two log lines of the same fault
# A USB serial adapter hands a telegram over in ~15 pieces: reading pauses until its expected end.
MIN_PAUSE: Final = 0.02  # s: a shorter wait is not worth a timer
PAUSE_MARGIN: Final = 0.02  # s: an FTDI adapter's latency timer is 16 ms
# An encrypted frame's security control byte as every meter sends it (suite 0, encrypted and
# authenticated, no broadcast key, no compression): dsmr_parser warns of any other as untested.
TESTED_SECURITY: Final = 0x30

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_COM_PORT = re.compile(r"(?:\\\\\.\\)?COM[1-9][0-9]*", re.IGNORECASE)
# A query parameter as serialx reads one: its value runs to the next & or to the fragment.
_PARAM = re.compile(r"[?&](?P<name>[^=&#?]*)=(?P<value>[^&#]*)")


class CannotConnect(Exception):
    """The port or host cannot be opened."""


class InvalidPort(CannotConnect):
    """Not a serial device or a supported URL: refused without being opened."""


class CannotCommunicate(Exception):
    """The port opened but no usable telegram arrived in time."""


class InvalidKey(Exception):
    """Telegrams arrive but cannot be decrypted with the configured key."""


def port_url(data: Mapping[str, Any]) -> str:
    """The serialx URL of an entry: core's network entries keep host and port (in memory only)."""
    if host := data.get(CONF_HOST):
        return f"socket://{host}:{data[CONF_PORT]}"
    return str(data[CONF_PORT])


def redact_port(port: str) -> str:
    """A port URL fit to show: all up to its last @ (a password may hold #, / or ?) and secrets."""
    scheme = _SCHEME.match(port)
    if scheme is None:
        return port
    at = port.rfind("@", scheme.end())
    shown_from = at + 1 if at >= 0 else scheme.end()
    parts = [port[: scheme.end()], f"{REDACTED}@" if at >= 0 else ""]
    for param in _PARAM.finditer(port, scheme.end()):  # a value holding an @ shows no tail
        begin, end = param.span("value")
        name = unquote_plus(re.sub(r"[\t\r\n]", "", param["name"]))  # as serialx reads it
        if end >= shown_from and name in SECRET_PARAMS:
            parts += [port[shown_from : max(begin, shown_from)], REDACTED]
            shown_from = end
    parts.append(port[shown_from:])
    return "".join(parts)


def check_port(port: str) -> None:
    """Raise InvalidPort unless `port` is a device path or a URL of a supported scheme."""
    if not port or port != port.strip() or not port.isprintable():
        raise InvalidPort("not a device path or URL")
    if scheme := _SCHEME.match(port):
        if scheme.group(1).lower() not in URL_SCHEMES:
            raise InvalidPort(
                f"{scheme.group(1)}:// is not a serial port URL "
                "(use socket://, rfc2217://, esphome:// or esphome-hass://)"
            )
        return
    if WINDOWS:
        if not _COM_PORT.fullmatch(port):
            raise InvalidPort("not a COM port")
    elif not port.startswith("/"):
        raise InvalidPort("not a device path (it starts with /dev/)")


def check_device(path: str) -> None:
    """Raise InvalidPort unless `path` is a serial tty under /dev (CannotConnect: not there)."""
    if WINDOWS:
        return
    try:
        real = os.path.realpath(path, strict=True)
        info = os.stat(real)
    except ValueError as err:  # a NUL byte
        raise InvalidPort("not a device path") from err
    except OSError as err:  # an unplugged adapter: retried
        raise CannotConnect(err.strerror or type(err).__name__) from err
    if not real.startswith("/dev/") or not stat.S_ISCHR(info.st_mode):
        raise InvalidPort("not a serial device (not a character device under /dev)")
    try:  # read each time: a USB serial driver loads with the first adapter
        with open(TTY_DRIVERS, encoding="ascii", errors="replace") as drivers:
            lines = drivers.read().splitlines()
    except OSError:  # no list: any character device under /dev is taken
        return
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    for fields in map(str.split, lines):
        if len(fields) < 5 or fields[-1] not in SERIAL_TTY_KINDS or fields[-3] != str(major):
            continue
        low, _, high = fields[-2].partition("-")
        if low.isdigit() and int(low) <= minor <= int(high if high.isdigit() else low):
            return
    raise InvalidPort("not a serial device (a character device, but not a serial tty)")


async def async_check_port(url: str) -> None:
    """Raise InvalidPort unless the port rule allows `url`; CannotConnect for a missing device."""
    check_port(url)
    if not _SCHEME.match(url):
        await asyncio.get_running_loop().run_in_executor(None, check_device, url)


async def async_open_port(
    url: str, factory: Callable[[], asyncio.Protocol], settings: Mapping[str, Any]
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    """Open a port the rule allows; whatever fails is CannotConnect, without URL secrets."""
    await async_check_port(url)
    try:
        return await create_serial_connection(
            asyncio.get_running_loop(), factory, **{**settings, "url": url, "low_latency": False}
        )
    except Exception as err:
        message = str(err) if redact_port(url) == url else ""  # it might quote a secret
        raise CannotConnect(message or type(err).__name__) from err


async def async_close_port(transport: asyncio.BaseTransport, closed: Awaitable[object]) -> None:
    """Close a port and wait (at most CLOSE_WAIT) until it is closed: serialx locks it meanwhile."""
    transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT):
            await closed


def line_rate(settings: Mapping[str, Any]) -> float:
    """Bytes per second on a line with dsmr_parser's serial settings (start, data, parity, stop)."""
    stop_bits = float(getattr(settings["stopbits"], "value", settings["stopbits"]))
    bits = 1 + int(settings["bytesize"]) + (settings["parity"] != PARITY_NONE) + stop_bits
    return float(settings["baudrate"] / bits)


@dataclass(slots=True)
class Counters:
    """What the connection has seen since the entry was set up (diagnostics, health)."""

    telegrams: int = 0
    crc_errors: int = 0
    parse_errors: int = 0
    bad_lines: int = 0  # lines that did not read (the rest of their telegram is used)
    decryption_errors: int = 0
    discarded_bytes: int = 0
    connects: int = 0
    connection_errors: int = 0
    failures_in_a_row: int = 0  # connection attempts that failed since the last success
    watchdog_timeouts: int = 0
    update_errors: int = 0  # a telegram the coordinator or an entity could not take
    last_telegram: float | None = None  # time.time() of the last good telegram
    last_raw: str | None = field(default=None, repr=False)  # its text (encrypted: hex)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=600), repr=False)
    last_error: str | None = None  # as logged (it may name a host)
    last_error_kind: str | None = None  # what diagnostics show
    _logged: dict[str, float] = field(default_factory=dict, repr=False)

    def fault(self, kind: str, message: str, *args: object) -> None:
        """Log a fault: the first of a kind at warning, repeats at most every 10 minutes."""
        self.last_error = message % args if args else message
        self.last_error_kind = kind
        now, last = time.monotonic(), self._logged.get(kind)
        if last is None or now - last >= LOG_REPEAT_INTERVAL:
            self._logged[kind] = now
            LOGGER.warning(message + " (further such messages are rate-limited)", *args)
        else:
            LOGGER.debug(message, *args)

    def per_minute(self) -> int:
        since = time.time() - 60
        return sum(1 for t in reversed(self.recent) if t >= since)

    def recovered(self, kind: str) -> None:
        """Forget that a fault was logged: the next is reported again."""
        self._logged.pop(kind, None)


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """The connection to the meter came up or went down."""

    connected: bool
    reason: str | None = None
    failures_in_a_row: int = 0


type TelegramCallback = Callable[[Any, Mapping[str, str]], None]


class P1Protocol(asyncio.Protocol):
    """Frames, telegrams and faults of one open port."""

    def __init__(
        self,
        version: str,
        on_telegram: TelegramCallback,
        counters: Counters,
        *,
        keys: tuple[str, str | None] | None = None,  # (encryption, authentication)
        rfxtrx: bool = False,
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        rate: float | None = None,  # bytes/s: wait for a telegram's rest (None: read each piece)
        frame_sink: Callable[[bytes], None] | None = None,  # each frame as it came off the line
        plain_frames: bool = False,  # frame_sink: an encrypted meter's plain telegram instead
    ) -> None:
        self.reader = TelegramReader(version_setup(version)[0])
        self.keys = keys
        self.framer = EncryptedFramer() if keys is not None else Framer()
        self.unwrapper = RfxtrxUnwrapper() if rfxtrx else None
        self.on_telegram = on_telegram
        self.counters = counters
        self.frame_sink = frame_sink
        self.plain_frames = plain_frames
        self.transport: asyncio.BaseTransport | None = None
        self.done = asyncio.Event()  # set when the connection is lost
        self.close_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._timeout = watchdog_timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_frame = 0.0
        self._rate = rate
        self._frame_size = 0  # bytes of the last telegram
        self._wait_decided = False  # whether to wait for this telegram's end is decided
        self._resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._last_frame = self._loop.time()
        self._check_silence()  # (arms the watchdog)

    def _check_silence(self) -> None:
        self._watchdog = None
        if (idle := self._loop.time() - self._last_frame) >= self._timeout:
            self.counters.watchdog_timeouts += 1
            self.close(f"no telegram for {idle:.0f} s")
            return
        self._watchdog = self._loop.call_at(self._last_frame + self._timeout, self._check_silence)

    def close(self, reason: str) -> None:
        """Close the connection, remembering (the first) why."""
        self.close_reason = self.close_reason or reason
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        """Take a piece of the stream; whatever goes wrong is counted, never raised."""
        counters = self.counters
        try:
            if self.unwrapper is not None:
                scraps = self.unwrapper.scraps
                data = self.unwrapper.feed(data)
                if self.unwrapper.scraps != scraps:
                    counters.parse_errors += 1
                    counters.discarded_bytes += self.unwrapper.scraps - scraps
                    counters.fault("rfxtrx", "Skipped RFXtrx packets too short to hold P1 data")
            frames = self.framer.feed(data)
            dropped, oversized = self.framer.take_dropped()
            counters.discarded_bytes += dropped
            if oversized:
                self._wait_decided = False
                counters.parse_errors += oversized
                counters.fault("frame_size", "Skipped a frame of more than %d bytes", MAX_FRAME)
            for frame in frames:
                self._frame(frame)
            if self.framer.buffer and self._rate and not self._wait_decided:
                self._wait_for_rest()
        except Exception as err:  # (asyncio would drop the connection)
            counters.parse_errors += 1
            counters.fault(
                "internal", "Skipped bytes that could not be handled (%s)", type(err).__name__
            )

    def _frame(self, frame: bytes) -> None:
        counters = self.counters
        if self.keys is None:
            self._last_frame = self._loop.time()  # (encrypted: frames that decrypt only)
            self._frame_size, self._wait_decided = len(frame), False
            if not frame.isascii():
                counters.parse_errors += 1
                counters.fault("non_ascii", "Skipped a telegram with non-ASCII bytes")
                return
        text = ""
        try:
            text = frame.decode("ascii") if self.keys is None else decrypt(frame, *self.keys)
            read = self.reader.read(text)
        except DecryptionError:
            counters.decryption_errors += 1
            counters.fault("decrypt", "Cannot decrypt telegrams; check the encryption key")
            self.close("decryption failed")
            return
        except InvalidChecksumError:
            counters.crc_errors += 1
            counters.fault("crc", "Skipped a telegram with a bad CRC; check the P1 cable")
            return
        except Exception as err:  # its message may quote a line (identifiers): the kind only
            counters.parse_errors += 1
            if text.count("\n") > MAX_LINES:
                counters.fault("line_count", "Skipped a telegram of more than %d lines", MAX_LINES)
            else:
                counters.fault(
                    "parse", "Skipped a telegram that does not parse (%s)", type(err).__name__
                )
            return
        self._last_frame = self._loop.time()
        if self.keys is not None and (control := frame[5 + frame[1]]) != TESTED_SECURITY:
            counters.fault(
                "security",
                "Untested security suite: the meter's frames have security control %#04x",
                control,
            )
        if read.bad_lines:
            counters.bad_lines += read.bad_lines
            counters.fault("line", "Ignored %d unreadable line(s) of a telegram", read.bad_lines)
        counters.telegrams += 1
        counters.last_raw = text if self.keys is None else frame.hex()
        counters.last_telegram = now = time.time()
        counters.recent.append(now)
        if self.frame_sink is not None:
            self.frame_sink(text.encode("ascii") if self.plain_frames else frame)
        self.on_telegram(read.telegram, read.unknown_lines)

    def _wait_for_rest(self) -> None:
        """Stop reading until the telegram that has begun should be complete."""
        transport = self.transport
        if not self._frame_size or not isinstance(transport, asyncio.ReadTransport):
            return
        assert self._rate is not None
        self._wait_decided = True  # once per telegram, on its first piece
        wait = (self._frame_size - len(self.framer.buffer)) / self._rate
        if wait < MIN_PAUSE or transport.is_closing():
            return
        try:
            transport.pause_reading()
        except NotImplementedError:  # e.g. an ESPHome serial proxy
            self._rate = None
            return
        self._resume = self._loop.call_later(wait + PAUSE_MARGIN, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume = None
        transport = self.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in filter(None, (self._watchdog, self._resume)):
            timer.cancel()
        self._watchdog = self._resume = None
        if exc is not None and self.close_reason is None:
            self.close_reason = str(exc) or type(exc).__name__
        self.done.set()

    async def wait_closed(self) -> None:
        await self.done.wait()


async def async_open(
    data: Mapping[str, Any], on_telegram: TelegramCallback, counters: Counters, **options: Any
) -> tuple[asyncio.BaseTransport, P1Protocol]:
    """Open an entry's port with its version's settings (CannotConnect); `options`: P1Protocol's."""
    version = data[CONF_DSMR_VERSION]
    settings = version_setup(version)[1]
    keys = None
    if version in ENCRYPTED_DSMR_VERSIONS:
        # No authentication key: no GCM tag check (core's choice; the README says what it costs).
        keys = (data.get(CONF_ENCRYPTION_KEY, ""), data.get(CONF_AUTHENTICATION_KEY) or None)
    rfxtrx = data.get(CONF_PROTOCOL) == RFXTRX_DSMR_PROTOCOL
    rate = line_rate(settings) if not rfxtrx and keys is None else None
    factory = functools.partial(
        P1Protocol, version, on_telegram, counters, keys=keys, rfxtrx=rfxtrx, rate=rate, **options
    )
    transport, protocol = await async_open_port(port_url(data), factory, settings)
    assert isinstance(protocol, P1Protocol)
    return transport, protocol


class Connection:
    """Keeps the meter's port open, and hands its telegrams on as they arrive."""

    def __init__(
        self,
        data: Mapping[str, Any],
        on_telegram: TelegramCallback,
        on_state: Callable[[ConnectionState], None],
        counters: Counters,
        *,
        reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL,
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        frame_sink: Callable[[bytes], None] | None = None,
        plain_frames: bool = False,
    ) -> None:
        self.on_state = on_state
        self.counters = counters
        self.reconnect_interval = reconnect_interval
        self.watchdog_timeout = watchdog_timeout
        self.sharing: dict[str, Any] = {"frame_sink": frame_sink, "plain_frames": plain_frames}
        self.connected = False
        self.port = redact_port(port_url(data))  # as logs show it
        options = {"watchdog_timeout": watchdog_timeout, **self.sharing}
        self._open = functools.partial(async_open, data, on_telegram, counters, **options)
        self._opened: tuple[asyncio.BaseTransport, P1Protocol] | None = None

    async def async_connect(self) -> None:
        """Open the port now (can it be opened?); `async_run` reads from it. CannotConnect."""
        self._opened = await self._open()

    def close(self) -> None:
        """Close a port `async_connect` opened that `async_run` never took."""
        if self._opened is not None:
            self._opened[0].close()
            self._opened = None

    async def async_run(self) -> None:
        """Read until the connection drops, wait, and again; until cancelled."""
        delay = FIRST_RETRY_DELAY
        counters = self.counters
        while True:
            before = counters.telegrams
            opened, self._opened = self._opened, None
            try:
                transport, protocol = opened or await self._open()
            except CannotConnect as err:
                counters.connection_errors += 1
                counters.failures_in_a_row += 1
                counters.fault("connect", "Cannot open %s: %s", self.port, err)
                self._state(False, str(err))
            else:
                counters.connects += 1
                if counters.connects > 1 or counters.connection_errors:
                    LOGGER.info("Connected to %s again", self.port)
                counters.recovered("connect")
                counters.failures_in_a_row = 0
                self._state(True)
                try:
                    await protocol.wait_closed()
                finally:  # dropped, silent, or cancelled (unload)
                    transport.close()
                    reason = protocol.close_reason or "connection closed"
                    if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        LOGGER.info("Connection to %s lost: %s", self.port, reason)
                    self._state(False, reason)
            if counters.telegrams > before:
                delay = FIRST_RETRY_DELAY
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(self.reconnect_interval, FIRST_RETRY_DELAY))

    def _state(self, connected: bool, reason: str | None = None) -> None:
        if connected != self.connected or not connected:
            self.connected = connected
            self.on_state(ConnectionState(connected, reason, self.counters.failures_in_a_row))
