"""Recognise a meter on a port: its line settings and version, then its identifiers.

`async_detect` listens with each serial setting in turn and stops at the first complete
telegram (or encrypted frame), whose lines name the version. `async_validated` reads a telegram
with an entry's settings and takes the meter's identifiers from it: the flow sets an entry up
only with settings that gave a telegram from the meter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
import re
from typing import Any, Final

from dsmr_parser import obis_references
from dsmr_parser.clients.settings import (
    SERIAL_SETTINGS_V2_2,
    SERIAL_SETTINGS_V4,
    SERIAL_SETTINGS_V5,
)
from dsmr_parser.exceptions import DecryptionError
from dsmr_parser.objects import Telegram

from .connection import (
    CannotCommunicate,
    Counters,
    InvalidKey,
    async_close_port,
    async_open,
    async_open_port,
)
from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID,
    VALIDATION_TIMEOUT,
)
from .p1.framing import DLMS_TAG, EncryptedFramer, Framer
from .p1.telegram import TelegramReader, decrypt, gas_identifier, identifier, version_setup

ENCRYPTED: Final = "encrypted"  # MSn or SAGEMCOM_T210_D_R: the key tells which
ENCRYPTED_CANDIDATES: Final = ("MSn", "SAGEMCOM_T210_D_R")
# Serial settings tried, in order: DSMR 5 and most others, DSMR 4, DSMR 2.2.
SETTINGS: Final = (
    ("115200 8N1", SERIAL_SETTINGS_V5),
    ("115200 7E1", SERIAL_SETTINGS_V4),
    ("9600 7E1", SERIAL_SETTINGS_V2_2),
)
NOISE_LIMIT: Final = 4096  # bytes without a telegram: a setting is wrong (noise at that speed)
DETECTION_WAIT: Final = 12.0  # s each setting is listened to: the slowest meters send every 10


@dataclass(frozen=True, slots=True)
class Detection:
    """What was found on a port."""

    version: str  # a version token, or ENCRYPTED
    settings: str  # e.g. "115200 8N1"; "network" for a bridge
    seconds: float
    telegram: bytes  # what it was recognised from


class NothingReceived(CannotCommunicate):
    """The port opened, but not one byte arrived (a silent bridge, a P1 port switched off)."""

    def __init__(self, seconds: float) -> None:
        """Say how long was listened."""
        super().__init__(f"nothing arrived in {seconds:.0f} s")
        self.seconds = seconds


def _has(text: str, obis: str) -> bool:
    return re.search(rf"(?m)^{re.escape(obis)}\(", text) is not None


def detect_version(frame: bytes) -> str | None:
    """Name the version of one complete telegram; None if it cannot be told."""
    if frame[:1] == bytes([DLMS_TAG]):
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
        return "5" if _has(text, "0-0:1.0.0") else "2.2"
    if version.group(1).startswith("4"):
        return "4+" if _has(text, "1-0:32.7.0") else "4"  # voltages: DSMR 5 telegrams
    return "5"


class _Listener(asyncio.Protocol):
    """Takes bytes until a telegram or an encrypted frame is complete (framed as the reader)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.received = 0
        self.found: asyncio.Future[bytes] = loop.create_future()
        self.noise: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._framers = (Framer(), EncryptedFramer())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.found.done():
            return
        for framer in self._framers:
            if frames := framer.feed(data):
                self.found.set_result(frames[0])
                return
        if self.received > NOISE_LIMIT and not self.noise.done():
            self.noise.set_result(None)


async def _listen(url: str, settings: Mapping[str, Any], wait: float) -> tuple[bytes | None, int]:
    """Listen with one setting: the frame heard (or None), and how many bytes arrived."""
    transport, listener = await async_open_port(url, _Listener, settings)
    assert isinstance(listener, _Listener)
    try:
        waiting: set[asyncio.Future[Any]] = {listener.found, listener.noise}
        await asyncio.wait(waiting, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        listener.noise.cancel()
        await async_close_port(transport, listener.closed)
    if listener.found.done() and not listener.found.cancelled():
        return listener.found.result(), listener.received
    listener.found.cancel()
    return None, listener.received


async def async_detect(url: str, *, wait: float | None = None) -> Detection:
    """The line settings and version of the meter on `url` (a path or socket://host:port).

    A bridge passes bytes through: only serial ports try settings, each for `wait` seconds at
    most. Raises CannotConnect (InvalidPort: nothing is opened) or CannotCommunicate
    (NothingReceived when not one byte arrived).
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


def _identified(telegram: Telegram, version: str) -> bool:
    """Whether a telegram names its meter (as core wants), or the version names none."""
    if identifier(telegram, version) is not None:
        return True
    return version in DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID and (
        obis_references.P1_MESSAGE_TIMESTAMP in telegram
    )


def with_identifiers(data: Mapping[str, Any], telegram: Telegram) -> dict[str, Any]:
    """The entry data plus the identifiers a telegram carries."""
    version = data[CONF_DSMR_VERSION]
    return {
        **data,
        CONF_SERIAL_ID: identifier(telegram, version),
        CONF_SERIAL_ID_GAS: gas_identifier(telegram, version),
    }


async def async_validated(data: Mapping[str, Any], wait: float | None = None) -> dict[str, Any]:
    """Read a telegram with an entry's settings; the data with the meter's identifiers.

    Returns as soon as one arrives, or gives up after `wait` (VALIDATION_TIMEOUT) seconds.
    Raises CannotConnect (InvalidPort), InvalidKey when telegrams arrive but do not decrypt,
    CannotCommunicate when nothing usable comes.
    """
    wait = VALIDATION_TIMEOUT if wait is None else wait
    version = data[CONF_DSMR_VERSION]
    found: asyncio.Future[Telegram] = asyncio.get_running_loop().create_future()

    def on_telegram(telegram: Telegram, _unknown: Mapping[str, str]) -> None:
        if _identified(telegram, version) and not found.done():
            found.set_result(telegram)

    counters = Counters()
    transport, protocol = await async_open(data, on_telegram, counters, watchdog_timeout=wait)
    closed = asyncio.ensure_future(protocol.wait_closed())
    try:
        await asyncio.wait({found, closed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        await async_close_port(transport, protocol.wait_closed())
    if found.done():
        return with_identifiers(data, found.result())
    if counters.decryption_errors:
        raise InvalidKey
    raise CannotCommunicate(protocol.close_reason or f"no telegram in {wait:.0f} s")


def parse_frame(frame: bytes, data: Mapping[str, Any]) -> Telegram:
    """Read a frame heard in detection as the reader would; InvalidKey, CannotCommunicate."""
    version = data[CONF_DSMR_VERSION]
    try:
        if frame[:1] == bytes([DLMS_TAG]):
            key = data.get(CONF_ENCRYPTION_KEY, "")
            text = decrypt(frame, key, data.get(CONF_AUTHENTICATION_KEY) or None)
        else:
            text = frame.decode("ascii")
        telegram = TelegramReader(version_setup(version)[0]).read(text).telegram
    except DecryptionError as err:
        raise InvalidKey from err
    except Exception as err:  # a bad CRC or line, a frame dlms_cosem cannot take
        raise CannotCommunicate(type(err).__name__) from err
    if not _identified(telegram, version):
        raise CannotCommunicate("no equipment identifier")
    return telegram


def identify_detected(data: Mapping[str, Any], detection: Detection) -> dict[str, Any]:
    """The entry data for a plain meter detection heard: its version and identifiers."""
    data = {**data, CONF_DSMR_VERSION: detection.version}
    return with_identifiers(data, parse_frame(detection.telegram, data))


def identify_encrypted(frame: bytes, data: Mapping[str, Any]) -> dict[str, Any]:
    """Which encrypted meter the user's key opens: Luxembourg Smarty, or the Austrian one."""
    for version in ENCRYPTED_CANDIDATES:
        candidate = {**data, CONF_DSMR_VERSION: version}
        try:
            return with_identifiers(candidate, parse_frame(frame, candidate))
        except CannotCommunicate:
            continue
    raise CannotCommunicate("decrypted, but not a known encrypted meter")
