"""Recognise a meter on a port: its line settings and version, then its identifiers.

The flow sets an entry up only with settings that gave a telegram from the meter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import contextlib
from dataclasses import dataclass
import re
from typing import Any, Final

from dsmr_parser import obis_references
from dsmr_parser.clients import settings as serial
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
    ("115200 8N1", serial.SERIAL_SETTINGS_V5),
    ("115200 7E1", serial.SERIAL_SETTINGS_V4),
    ("9600 7E1", serial.SERIAL_SETTINGS_V2_2),
)
NOISE_LIMIT: Final = 4096  # bytes without a telegram: a setting is wrong (noise at that speed)
DETECTION_WAIT: Final = 12.0  # s each setting is listened to: the slowest meters send every 10


@dataclass(frozen=True, slots=True)
class Detection:
    """What was found on a port."""

    version: str  # a version token, or ENCRYPTED
    settings: str  # e.g. "115200 8N1"; "network" for a bridge
    seconds: float
    telegram: bytes  # what it was recognized from


class NothingReceived(CannotCommunicate):
    """The port opened, but not one byte arrived (a silent bridge, a P1 port switched off)."""

    def __init__(self, seconds: float) -> None:
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
        self.received = 0
        self.frame: bytes | None = None
        self.heard = asyncio.Event()  # a frame, or noise
        self.closed = asyncio.Event()
        self._framers = (Framer(), EncryptedFramer())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.frame is None:  # the first framer to complete a frame wins
            self.frame = next((frames[0] for f in self._framers if (frames := f.feed(data))), None)
        if self.frame is not None or self.received > NOISE_LIMIT:
            self.heard.set()


async def _listen(url: str, settings: Mapping[str, Any], wait: float) -> tuple[bytes | None, int]:
    """Listen with one setting: the frame heard (or None), and how many bytes arrived."""
    transport, listener = await async_open_port(url, _Listener, settings)
    assert isinstance(listener, _Listener)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await listener.heard.wait()
    finally:
        await async_close_port(transport, listener.closed.wait())
    return listener.frame, listener.received


async def async_detect(url: str, *, wait: float | None = None) -> Detection:
    """The line settings and version of the meter on `url`; CannotConnect, CannotCommunicate."""
    wait = DETECTION_WAIT if wait is None else wait
    loop = asyncio.get_running_loop()
    started = loop.time()
    network = "://" in url and not url.startswith("/")  # a bridge passes bytes: one try
    candidates = (("network", serial.SERIAL_SETTINGS_V5),) if network else SETTINGS
    received = 0
    for label, settings in candidates:
        frame, count = await _listen(url, settings, wait)
        received += count
        if frame is not None and (version := detect_version(frame)) is not None:
            return Detection(version, label, loop.time() - started, frame)
    if not received:
        raise NothingReceived(loop.time() - started)
    raise CannotCommunicate(f"no telegram recognized in {loop.time() - started:.0f} s")


def _identified(data: Mapping[str, Any], telegram: Telegram) -> dict[str, Any] | None:
    """The data with a telegram's identifiers; None if it lacks the one its version names (core)."""
    version = data[CONF_DSMR_VERSION]
    meter = identifier(telegram, version)
    if meter is None and (
        version not in DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID
        or obis_references.P1_MESSAGE_TIMESTAMP not in telegram
    ):
        return None
    return {**data, CONF_SERIAL_ID: meter, CONF_SERIAL_ID_GAS: gas_identifier(telegram, version)}


async def async_validated(data: Mapping[str, Any], wait: float | None = None) -> dict[str, Any]:
    """The data with a telegram's identifiers; CannotConnect, InvalidKey, CannotCommunicate."""
    wait = VALIDATION_TIMEOUT if wait is None else wait
    found: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_telegram(telegram: Telegram, _unknown: Mapping[str, str]) -> None:
        if (identified := _identified(data, telegram)) is not None and not found.done():
            found.set_result(identified)

    counters = Counters()
    transport, protocol = await async_open(data, on_telegram, counters, watchdog_timeout=wait)
    closed = asyncio.ensure_future(protocol.wait_closed())
    try:
        waiting: set[asyncio.Future[Any]] = {found, closed}
        await asyncio.wait(waiting, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        await async_close_port(transport, protocol.wait_closed())
    if found.done():
        return found.result()
    if counters.decryption_errors:
        raise InvalidKey
    raise CannotCommunicate(protocol.close_reason or f"no telegram in {wait:.0f} s")


def identified(frame: bytes, data: Mapping[str, Any]) -> dict[str, Any]:
    """The data with the identifiers a detected frame carries; InvalidKey, CannotCommunicate."""
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
    if (found := _identified(data, telegram)) is None:
        raise CannotCommunicate("no equipment identifier")
    return found


def identify_detected(data: Mapping[str, Any], detection: Detection) -> dict[str, Any]:
    """The entry data for a plain meter detection heard: its version and identifiers."""
    return identified(detection.telegram, {**data, CONF_DSMR_VERSION: detection.version})


def identify_encrypted(frame: bytes, data: Mapping[str, Any]) -> dict[str, Any]:
    """Which encrypted meter the user's key opens: Luxembourg Smarty, or the Austrian one."""
    for version in ENCRYPTED_CANDIDATES:
        try:
            return identified(frame, {**data, CONF_DSMR_VERSION: version})
        except CannotCommunicate:
            continue
    raise CannotCommunicate("decrypted, but not a known encrypted meter")
