"""Diagnostics download: settings, reader counters and the latest telegram, identifiers redacted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import contextlib
from dataclasses import asdict
import json
import re
from typing import Any

from dsmr_parser.objects import MbusDevice
from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_PORT
from homeassistant.core import HomeAssistant

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_ENCRYPTION_KEY,
    CONF_MBUS_DEVICES,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
)
from .coordinator import DsmrConfigEntry
from .entity import readable

TO_REDACT = {
    CONF_ENCRYPTION_KEY,
    CONF_AUTHENTICATION_KEY,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    "id",
    "unique_id",
    "title",
    "host",
}
# Telegram values that identify the meter or its owner (as `_IDENTIFYING_LINE` in the raw one:
# the grid operator's text messages to the owner too).
TELEGRAM_REDACT = {
    "TEXT_MESSAGE",
    "TEXT_MESSAGE_CODE",
    "MSN_TEXT_MESSAGE_2",
    "MSN_TEXT_MESSAGE_3",
    "MSN_TEXT_MESSAGE_4",
    "MSN_TEXT_MESSAGE_5",
    "EQUIPMENT_IDENTIFIER",
    "EQUIPMENT_IDENTIFIER_GAS",
    "BELGIUM_EQUIPMENT_IDENTIFIER",
    "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "Q3D_EQUIPMENT_IDENTIFIER",
    "Q3D_EQUIPMENT_SERIALNUMBER",
    "EQUIPMENT_SERIAL_NUMBER",
    "COSEM_LOGICAL_DEVICE_NAME",
    "MBUS_EQUIPMENT_IDENTIFIER",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: DsmrConfigEntry
) -> dict[str, Any]:
    """Return what helps to debug a meter, and nothing that identifies it."""
    coordinator, server = entry.runtime_data.coordinator, entry.runtime_data.rebroadcast
    stats, telegram = coordinator.counters, coordinator.latest
    data, options = dict(entry.data), dict(entry.options)
    if isinstance(port := data.get(CONF_PORT), str):  # a URL's kind only: host, user, keys go
        scheme, separator, _ = port.partition("://")
        data[CONF_PORT] = f"{scheme}{separator}{REDACTED}" if separator else port
    diagnostics: dict[str, Any] = {
        "entry": async_redact_data(
            {"title": entry.title, "unique_id": entry.unique_id, "data": data, "options": options},
            TO_REDACT,
        ),
        "mbus_devices": async_redact_data(entry.data.get(CONF_MBUS_DEVICES, []), {"id"}),
        "reader": {
            "connected": entry.runtime_data.connection.connected,
            "available": coordinator.last_update_success,
            "telegrams": stats.telegrams,
            "published": coordinator.published,
            "too_fast": coordinator.too_fast,
            "crc_errors": stats.crc_errors,
            "parse_errors": stats.parse_errors,
            "decryption_errors": stats.decryption_errors,
            "discarded_bytes": stats.discarded_bytes,
            "connects": stats.connects,
            "connection_errors": stats.connection_errors,
            "watchdog_timeouts": stats.watchdog_timeouts,
            "update_errors": stats.update_errors,
            # Its kind only: the message may name the port's host, or quote what a meter sent.
            "last_error_kind": stats.last_error_kind,
        },
        "telegram": _telegram_json(telegram) if telegram is not None else None,
        "raw_telegram": _redact_raw(stats.last_raw),
        "rebroadcast": None
        if server is None
        else {  # never its clients' addresses
            "address": server.address,
            "listening": server.listening,
            "clients": server.clients,
            **asdict(server.stats),
        },
    }
    # Identifiers also live on in values made from them (entity unique ids kept in the entry's
    # data, for one): every occurrence, in whatever key and case, goes (the longest first).
    if identifiers := _identifiers(entry, telegram or ()):
        pattern = "|".join(re.escape(i) for i in sorted(identifiers, key=len, reverse=True))
        diagnostics = _scrub(diagnostics, re.compile(pattern, re.IGNORECASE))
    return diagnostics


def _identifiers(entry: DsmrConfigEntry, telegram: Iterable[tuple[str, Any]]) -> set[str]:
    """The meter's and its sub-meters' identifiers, as sent (hex) and as text."""
    found = {
        entry.unique_id,
        entry.data.get(CONF_SERIAL_ID),
        entry.data.get(CONF_SERIAL_ID_GAS),
        *(device.get("id") for device in entry.data.get(CONF_MBUS_DEVICES, [])),
        *_telegram_identifiers(telegram),
    }
    found.update(readable(str(ident)) for ident in list(found) if ident)
    # Too short or all zeros (an empty identifier): not telling, and everywhere.
    return {str(i) for i in found if i and len(str(i)) >= 6 and str(i).strip("0")}


def _telegram_identifiers(items: Iterable[tuple[str, Any]]) -> Iterator[str]:
    """Identifying values of a telegram and its M-Bus devices, read from the objects, not JSON."""
    for name, value in items:
        if isinstance(value, list):
            for device in value:
                if isinstance(device, MbusDevice):
                    yield from _telegram_identifiers(device)
        elif name in TELEGRAM_REDACT:
            with contextlib.suppress(Exception):  # an object without a value: nothing to redact
                yield str(value.value)


def _telegram_json(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A telegram or M-Bus device as to_json() has it, identifiers redacted; a bad item is named."""
    data: dict[str, Any] = {}
    for name, value in items:
        if isinstance(value, list):  # MBUS_DEVICES
            data[name] = [
                _telegram_json(item) | {"CHANNEL_ID": item.channel_id}
                if isinstance(item, MbusDevice)
                else _item_json(item)
                for item in value
            ]
        elif hasattr(value, "to_json"):  # as to_json(): other items are left out
            data[name] = REDACTED if name in TELEGRAM_REDACT else _item_json(value)
    return data


def _item_json(value: Any) -> Any:
    try:
        return json.loads(value.to_json())
    except Exception as err:  # e.g. float() refuses Decimal('sNaN'): the rest is still shown
        return {"unreadable": type(err).__name__}


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    """`value` with every match of `pattern` in its texts redacted."""
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {_scrub(k, pattern): _scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(item, pattern) for item in value]
    return value


# Lines that identify the meter, its sub-meters or its owner: the value is replaced.
_IDENTIFYING_LINE = re.compile(
    r"(?m)^(\d-\d:(?:96\.1\.[014]|42\.0\.0|0\.0\.0|96\.1\.255|96\.13\.\d+)[^(]*\()[^)\r\n]*"
)


def _redact_raw(raw: str | None) -> str | None:
    """The last telegram as received, identifiers redacted; encrypted frames are left out."""
    if raw is None or not raw.startswith("/"):
        return None
    return _IDENTIFYING_LINE.sub(r"\1**REDACTED**", raw)
