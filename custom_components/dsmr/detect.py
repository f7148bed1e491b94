"""Recognise a meter from what it sends: line settings first, then the telegram's own lines.

`async_detect` listens on a port with each serial setting in turn and stops at the first
complete telegram (or encrypted frame); `detect_version` names the DSMR version from it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import re
from typing import Any

from dsmr_parser.clients.settings import (
    SERIAL_SETTINGS_V2_2,
    SERIAL_SETTINGS_V4,
    SERIAL_SETTINGS_V5,
)

from .dsmr_library import EncryptedFrames
from .ports import async_close_port, async_open_port
from .protocol import TELEGRAM_FRAME
from .reader import CannotCommunicate

ENCRYPTED = "encrypted"  # an encrypted frame: MSn or SAGEMCOM_T210_D_R, told apart by the key
GENERAL_GLOBAL_CIPHER_TAG = 0xDB  # an encrypted (DLMS general-global-cipher) frame's first byte
# Serial settings tried, in order: DSMR 5 and most others, then DSMR 4, then DSMR 2.2.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("115200 8N1", SERIAL_SETTINGS_V5),
    ("115200 7E1", SERIAL_SETTINGS_V4),
    ("9600 7E1", SERIAL_SETTINGS_V2_2),
)
# Bytes without a telegram after which a setting is taken to be wrong (noise at a wrong speed).
NOISE_LIMIT = 4096
# How long each setting is listened to: a little more than the slowest meters' 10 s interval.
DETECTION_WAIT = 12.0


@dataclass(frozen=True, slots=True)
class Detection:
    """What was found on a port."""

    version: str  # a dsmr_version token, or ENCRYPTED
    settings: str  # e.g. "115200 8N1"; "network" for TCP
    seconds: float  # how long detection took
    telegram: bytes  # the telegram (or encrypted frame) it was recognised from


def _has(text: str, obis: str) -> bool:
    return re.search(rf"(?m)^{re.escape(obis)}\(", text) is not None


def detect_version(frame: bytes) -> str | None:
    """Name the DSMR version of one complete telegram; None if it cannot be told."""
    if frame[:1] == bytes([GENERAL_GLOBAL_CIPHER_TAG]):
        return ENCRYPTED
    text = frame.decode("ascii", "replace")
    header = text.split("\r\n", 1)[0]
    version = re.search(r"(?m)^1-3:0\.2\.8\((\d+)\)", text)
    if "Q3D" in header or "*255(" in text:
        return "Q3D"
    if _has(text, "0-0:96.1.4") or header.startswith("/FLU"):
        return "5B"  # Belgian e-MUCS version information
    if _has(text, "1-0:1.8.3") or _has(text, "1-0:1.8.4"):
        return "5EONHU"  # four tariffs
    if _has(text, "0-0:42.0.0"):
        return "5L"  # Luxembourg logical device name
    if version is None:
        if _has(text, "0-0:96.1.0"):
            return "ISKRA_IE"  # Iskra IE.5 / IE.7 (Belgium) names itself on 96.1.0
        if _has(text, "1-0:3.8.0") and not _has(text, "0-0:96.1.1"):
            return "5S"  # Sweden: reactive registers, no equipment identifier
        if _has(text, "0-0:1.0.0"):
            return "5"
        return "2.2"
    if version.group(1).startswith("4"):
        return "4+" if _has(text, "1-0:32.7.0") else "4"  # voltages only exist in DSMR 5 telegrams
    return "5"


class NothingReceived(CannotCommunicate):
    """The port opened, but not one byte arrived (a silent bridge, a meter's P1 port off)."""

    def __init__(self, seconds: float) -> None:
        """Say how long was listened."""
        super().__init__(f"nothing arrived in {seconds:.0f} s")
        self.seconds = seconds


class _Listener(asyncio.Protocol):
    """Collects bytes until a complete telegram or encrypted frame arrives."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.found: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.noise = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._frames = EncryptedFrames()  # framed as the reader frames them (dsmr_parser)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.found.done():
            return
        if frames := self._frames.feed(data):
            self.found.set_result(frames[0])
            return
        if match := TELEGRAM_FRAME.search(self.buffer):
            self.found.set_result(match.group())
        elif len(self.buffer) > NOISE_LIMIT and not self.noise.done():
            self.noise.set_result(None)


async def _listen(url: str, settings: dict[str, Any], wait: float) -> tuple[bytes | None, int]:
    """Listen with one setting: the frame heard (or None), and how many bytes arrived."""
    transport, listener = await async_open_port(url, _Listener, settings)
    assert isinstance(listener, _Listener)
    try:
        await asyncio.wait(
            {listener.found, listener.noise}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        listener.noise.cancel()
        await async_close_port(transport, listener.closed)
    if listener.found.done() and not listener.found.cancelled():
        return listener.found.result(), len(listener.buffer)
    listener.found.cancel()
    return None, len(listener.buffer)


async def async_detect(url: str, *, wait: float | None = None) -> Detection:
    """Find the line settings and version of the meter on `url` (a path or socket://host:port).

    A network bridge passes bytes through, so only serial ports try settings. Each setting gets
    `wait` seconds (DETECTION_WAIT by default), and is left as soon as
    a telegram arrives or its bytes are noise. Raises CannotConnect (InvalidPort for what is
    no serial port: nothing is opened then) or CannotCommunicate (NothingReceived when not one
    byte arrived).
    """
    wait = DETECTION_WAIT if wait is None else wait
    loop = asyncio.get_running_loop()
    started = loop.time()
    network = "://" in url and not url.startswith("/")
    candidates = (("network", SERIAL_SETTINGS_V5),) if network else SETTINGS
    received = 0
    for label, settings in candidates:
        frame, count = await _listen(url, settings, wait)
        received += count
        if frame is not None and (version := detect_version(frame)) is not None:
            return Detection(version, label, loop.time() - started, frame)
    if not received:
        raise NothingReceived(loop.time() - started)
    raise CannotCommunicate(f"no telegram recognised in {loop.time() - started:.0f} s")
