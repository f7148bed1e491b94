"""Identify the meter on a port: open it, read a telegram, take the meter's identifiers.

The config flow (and YAML import) set an entry up only with settings that gave a telegram from
the meter: `async_validated` reads one and adds the identifiers it carries; detection's frame
is parsed here too (`parse_frame`, `identify_encrypted`: which encrypted meter the key opens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dsmr_parser import obis_references
from dsmr_parser.exceptions import DecryptionError
from dsmr_parser.objects import Telegram

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID,
    VALIDATION_TIMEOUT,
)
from .counters import ReaderStats
from .detect import Detection
from .dsmr_library import PARSING, library_parser
from .ports import async_close_port
from .reader import (
    CannotCommunicate,
    InvalidKey,
    async_open,
    equipment_identifier,
    gas_equipment_identifier,
)

# An encrypted frame is one of these; the decrypted telegram tells which (Smarty has an id).
ENCRYPTED_CANDIDATES = ("MSn", "SAGEMCOM_T210_D_R")


async def async_read_telegram(data: Mapping[str, Any], wait: float) -> Telegram:
    """Open the port and return the first telegram that identifies the meter.

    Returns as soon as such a telegram arrives. Raises CannotConnect when the port cannot be
    opened, InvalidKey when telegrams cannot be decrypted, CannotCommunicate when nothing
    usable arrives within `wait` seconds.
    """
    version = data[CONF_DSMR_VERSION]
    found: asyncio.Future[Telegram] = asyncio.get_running_loop().create_future()

    def on_telegram(telegram: Telegram) -> None:
        # As core: the meter's identifier must be there, except on versions that send none.
        identified = equipment_identifier(telegram, version) is not None or (
            version in DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID
            and obis_references.P1_MESSAGE_TIMESTAMP in telegram
        )
        if identified and not found.done():
            found.set_result(telegram)

    stats = ReaderStats()
    transport, protocol = await async_open(data, on_telegram, stats, watchdog_timeout=wait)
    closed = asyncio.ensure_future(protocol.wait_closed())
    try:
        await asyncio.wait({found, closed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        await async_close_port(transport, protocol.wait_closed())
    if found.done():
        return found.result()
    if stats.decryption_errors:
        raise InvalidKey
    raise CannotCommunicate(protocol.close_reason or f"no telegram in {wait:.0f} s")


async def async_validated(data: dict[str, Any]) -> dict[str, Any]:
    """Read a telegram with these settings; return the data with the meter's identifiers.

    Raises CannotConnect (InvalidPort), InvalidKey or CannotCommunicate.
    """
    return with_identifiers(data, await async_read_telegram(data, VALIDATION_TIMEOUT))


def with_identifiers(data: dict[str, Any], telegram: Telegram) -> dict[str, Any]:
    """The entry data plus the identifiers a telegram carries."""
    version = data[CONF_DSMR_VERSION]
    return {
        **data,
        CONF_SERIAL_ID: equipment_identifier(telegram, version),
        CONF_SERIAL_ID_GAS: gas_equipment_identifier(telegram, version),
    }


def identify_detected(data: dict[str, Any], detection: Detection) -> dict[str, Any]:
    """The entry data for a plain meter that detection heard: its version and identifiers.

    Raises as `parse_frame` does.
    """
    data = {**data, CONF_DSMR_VERSION: detection.version}
    return with_identifiers(data, parse_frame(detection.telegram, data))


def parse_frame(frame: bytes, data: dict[str, Any]) -> Telegram:
    """Parse a telegram (or encrypted frame) heard during detection, as the reader would.

    Raises InvalidKey when an encrypted frame does not decrypt, CannotCommunicate when the
    telegram does not identify the meter.
    """
    version = data[CONF_DSMR_VERSION]
    # dsmr_parser logs a line it cannot read with a traceback that quotes it (an identifier,
    # say): counted in throwaway stats instead, as the reader does.
    parsing = PARSING.set(ReaderStats())
    try:
        if frame[:1] == b"\xdb":
            telegram = library_parser(version).parse(
                frame.hex(),
                encryption_key=data.get(CONF_ENCRYPTION_KEY, ""),
                authentication_key=data.get(CONF_AUTHENTICATION_KEY) or None,
            )
        else:
            telegram = library_parser(version).parse(frame.decode("ascii"))
    except DecryptionError as err:
        raise InvalidKey from err
    except Exception as err:
        # A bad CRC or line, or a frame from a hostile bridge that dlms_cosem cannot take (it
        # raises NotImplementedError for one that is not both encrypted and authenticated).
        raise CannotCommunicate(type(err).__name__) from err
    finally:
        PARSING.reset(parsing)
    if equipment_identifier(telegram, version) is None and (
        version not in DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID
    ):
        raise CannotCommunicate("no equipment identifier")
    return telegram


def identify_encrypted(frame: bytes, data: dict[str, Any]) -> dict[str, Any]:
    """Decrypt a detected frame with the user's key: Luxembourg Smarty, or the Austrian meter."""
    for version in ENCRYPTED_CANDIDATES:
        candidate = {**data, CONF_DSMR_VERSION: version}
        try:
            return with_identifiers(candidate, parse_frame(frame, candidate))
        except CannotCommunicate:
            continue
    raise CannotCommunicate("decrypted, but not a known encrypted meter")
