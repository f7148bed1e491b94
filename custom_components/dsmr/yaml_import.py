"""`sensor: - platform: dsmr` in YAML: each block a config entry marked as from YAML.

On every start the marked entries follow the YAML: new blocks are imported, changed keys written
into their entry, entries whose block is gone removed. Core's old imports carry no mark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.sensor import PLATFORM_SCHEMA as SENSOR_PLATFORM_SCHEMA
from homeassistant.config_entries import SOURCE_IMPORT
from homeassistant.const import CONF_HOST, CONF_PLATFORM, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType
import probatio as vol

from .connection import redact_port
from .const import (
    CONF_DSMR_VERSION,
    CONF_PRECISION,
    CONF_RECONNECT_INTERVAL,
    CONF_SOURCE_YAML,
    DEFAULT_DSMR_VERSION,
    DEFAULT_PORT,
    DEFAULT_RECONNECT_INTERVAL,
    DOMAIN,
    DSMR_VERSIONS,
    LOGGER,
    VERSION_AUTO,
)


def _tcp_port_with_host(block: dict[str, Any]) -> dict[str, Any]:
    """With `host`, `port` is the bridge's TCP port (core's YAML), not a device path."""
    if CONF_HOST not in block:
        return block
    try:
        port = cv.port(block[CONF_PORT])
    except vol.Invalid as err:
        message = "port must be a TCP port number when host is given"
        raise vol.Invalid(message, path=[CONF_PORT]) from err
    return {**block, CONF_PORT: port}


PLATFORM_SCHEMA = vol.All(
    SENSOR_PLATFORM_SCHEMA.extend(
        {
            vol.Optional(CONF_PORT, default=DEFAULT_PORT): vol.Any(cv.port, cv.string),
            vol.Optional(CONF_HOST): cv.string,
            vol.Optional(CONF_DSMR_VERSION, default=DEFAULT_DSMR_VERSION): vol.All(
                cv.string, vol.In([VERSION_AUTO, *DSMR_VERSIONS])
            ),
            vol.Optional(CONF_RECONNECT_INTERVAL, default=DEFAULT_RECONNECT_INTERVAL): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=3600)
            ),
            vol.Optional(CONF_PRECISION): vol.All(vol.Coerce(int), vol.Range(min=0, max=6)),
        }
    ),
    _tcp_port_with_host,
)


async def async_setup_platform(
    hass: HomeAssistant,
    config: ConfigType,
    async_add_entities: AddEntitiesCallback,
    discovery_info: DiscoveryInfoType | None = None,
) -> None:
    """The sensor platform's hook for a block (`async_setup` makes it an entry)."""


def user_precision(data: Mapping[str, Any]) -> int | None:
    """The decimals an entry's numbers are rounded to (YAML `precision`); None: the meter's."""
    return None if (precision := data.get(CONF_PRECISION)) is None else int(precision)


def yaml_data(block: dict[str, Any]) -> dict[str, Any]:
    """Entry data for a validated YAML block, in core's layout (with a host: an integer port)."""
    data: dict[str, Any] = {
        CONF_PORT: str(block[CONF_PORT]),
        CONF_DSMR_VERSION: block[CONF_DSMR_VERSION],
        CONF_RECONNECT_INTERVAL: block[CONF_RECONNECT_INTERVAL],
        CONF_SOURCE_YAML: True,
    }
    if CONF_PRECISION in block:
        data[CONF_PRECISION] = block[CONF_PRECISION]
    if host := block.get(CONF_HOST):
        data |= {CONF_HOST: host, CONF_PORT: cv.port(block[CONF_PORT])}
    return data


def yaml_key(data: dict[str, Any] | Any) -> tuple[str | None, str]:
    """What identifies a YAML meter across restarts: its host (if any) and port."""
    return (data.get(CONF_HOST), str(data.get(CONF_PORT)))


async def async_import_yaml(hass: HomeAssistant, config: ConfigType) -> None:
    """Import every dsmr YAML block; remove entries whose block is gone."""
    blocks: list[dict[str, Any]] = []
    # While a block is invalid nothing is removed: a typo must not delete an entry (and its
    # history) that the block, once fixed, names again.
    invalid = False
    for key in config:
        # `sensor:` may hold a single block instead of a list, as Home Assistant allows.
        for raw in cv.ensure_list(config[key]) if key.partition(" ")[0] == "sensor" else []:
            if not isinstance(raw, dict) or raw.get(CONF_PLATFORM) != DOMAIN:
                continue
            try:
                blocks.append(PLATFORM_SCHEMA(raw))
            except vol.Invalid as err:
                invalid = True
                LOGGER.error(
                    "Invalid dsmr configuration in YAML: %s; no dsmr entry is removed until "
                    "it is fixed",
                    err,
                )
    wanted = {yaml_key(yaml_data(block)) for block in blocks}
    for entry in hass.config_entries.async_entries(DOMAIN):
        if not invalid and entry.data.get(CONF_SOURCE_YAML) and yaml_key(entry.data) not in wanted:
            LOGGER.info("Removing %s: its YAML block was removed", redact_port(entry.title))
            await hass.config_entries.async_remove(entry.entry_id)
    for block in blocks:
        hass.async_create_task(
            hass.config_entries.flow.async_init(
                DOMAIN, context={"source": SOURCE_IMPORT}, data=yaml_data(block)
            ),
            eager_start=True,
        )
