"""The DSMR smart meter integration: read a P1 port into Home Assistant."""

from __future__ import annotations

import asyncio

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.typing import ConfigType

from .const import (
    CONF_RECONNECT_INTERVAL,
    CONF_TIME_BETWEEN_UPDATE,
    CONF_WATCHDOG_TIMEOUT,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_TIME_BETWEEN_UPDATE,
    DEFAULT_WATCHDOG_TIMEOUT,
    PLATFORMS,
)
from .coordinator import DsmrCoordinator
from .migration import async_migrate_entity_unique_ids
from .reader import DsmrReader, ReaderItem
from .yaml_import import async_import_yaml

type DsmrConfigEntry = ConfigEntry[DsmrCoordinator]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Turn `sensor: - platform: dsmr` blocks into config entries that follow the YAML."""
    await async_import_yaml(hass, config)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> bool:
    """Set up a meter: migrate old unique ids, create entities, start reading."""
    await async_migrate_entity_unique_ids(hass, entry)
    queue: asyncio.Queue[ReaderItem] = asyncio.Queue()
    reader = DsmrReader(
        entry.data,
        queue,
        reconnect_interval=entry.data.get(CONF_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL),
        watchdog_timeout=entry.options.get(CONF_WATCHDOG_TIMEOUT, DEFAULT_WATCHDOG_TIMEOUT),
    )
    coordinator = DsmrCoordinator(
        hass,
        reader,
        entry.options.get(CONF_TIME_BETWEEN_UPDATE, DEFAULT_TIME_BETWEEN_UPDATE),
        entry,
    )
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # Background tasks of an entry are cancelled on unload and at shutdown; the reader closes
    # its port when cancelled.
    entry.async_create_background_task(hass, coordinator.async_run(), "dsmr coordinator")
    entry.async_create_background_task(hass, reader.async_run(), "dsmr reader")
    entry.async_on_unload(coordinator.async_shutdown)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> bool:
    """Unload a meter: its reader task is cancelled by the entry, closing the port."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
