"""Diagnostics download: settings, reader counters and the latest telegram, identifiers redacted."""

from __future__ import annotations

import json
import re
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import DsmrConfigEntry
from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_ENCRYPTION_KEY,
    CONF_MBUS_DEVICES,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
)

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
# Telegram values that identify the meter or its owner.
TELEGRAM_REDACT = {
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
    coordinator = entry.runtime_data
    stats = coordinator.reader.stats
    telegram = coordinator.latest
    telegram_json = json.loads(telegram.to_json()) if telegram is not None else None
    return {
        "entry": async_redact_data(
            {
                "title": entry.title,
                "unique_id": entry.unique_id,
                "data": dict(entry.data),
                "options": dict(entry.options),
            },
            TO_REDACT,
        ),
        "mbus_devices": async_redact_data(entry.data.get(CONF_MBUS_DEVICES, []), {"id"}),
        "reader": {
            "connected": coordinator.reader.connected,
            "available": coordinator.available,
            "telegrams": stats.telegrams,
            "published": coordinator.published,
            "crc_errors": stats.crc_errors,
            "parse_errors": stats.parse_errors,
            "decryption_errors": stats.decryption_errors,
            "discarded_bytes": stats.discarded_bytes,
            "connects": stats.connects,
            "connection_errors": stats.connection_errors,
            "watchdog_timeouts": stats.watchdog_timeouts,
            "last_error": stats.last_error,
        },
        "telegram": _redact_telegram(telegram_json),
        "raw_telegram": _redact_raw(stats.last_raw),
    }


# Lines that identify the meter, its sub-meters or its owner: the value is replaced.
_IDENTIFYING_LINE = re.compile(
    r"(?m)^(\d-\d:(?:96\.1\.[014]|42\.0\.0|0\.0\.0|96\.1\.255|96\.13\.\d+)[^(]*\()[^)\r\n]*"
)


def _redact_raw(raw: str | None) -> str | None:
    """The last telegram as received, identifiers redacted; encrypted frames are left out."""
    if raw is None or not raw.startswith("/"):
        return None
    return _IDENTIFYING_LINE.sub(r"\1**REDACTED**", raw)


def _redact_telegram(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: "**REDACTED**" if key in TELEGRAM_REDACT else _redact_telegram(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_redact_telegram(item) for item in data]
    return data
