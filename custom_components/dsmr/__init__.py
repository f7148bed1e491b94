"""The DSMR smart meter integration: read a P1 port into Home Assistant."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.storage import Store
from homeassistant.helpers.typing import ConfigType

from .connection import CannotConnect, Connection, Counters, InvalidPort
from .const import (
    CONF_DSMR_VERSION,
    CONF_MBUS_DEVICES,
    CONF_NEW_METER,
    CONF_PEAK_THRESHOLD,
    CONF_RECONNECT_INTERVAL,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    CONF_TIME_BETWEEN_UPDATE,
    CONF_WATCHDOG_TIMEOUT,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_TIME_BETWEEN_UPDATE,
    DEFAULT_WATCHDOG_TIMEOUT,
    DOMAIN,
    PLATFORMS,
)
from .coordinator import DsmrConfigEntry, DsmrCoordinator, DsmrRuntimeData
from .migration import async_migrate_entity_unique_ids
from .p1.demand import DEFAULT_THRESHOLD_KW
from .p1.snapshot import Window
from .p1.telegram import has_demand
from .sensor import averaged
from .sharing import sharing_for
from .yaml_import import async_import_yaml, user_precision

# YAML is `sensor: - platform: dsmr` (yaml_import.py); a top-level `dsmr:` is an error.
CONFIG_SCHEMA = cv.platform_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Turn `sensor: - platform: dsmr` blocks into config entries that follow the YAML."""
    await async_import_yaml(hass, config)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> bool:
    """Set up a meter: migrate core's old unique ids, open its port, create entities, read."""
    await async_migrate_entity_unique_ids(hass, entry)
    data, options = entry.data, entry.options
    version = data[CONF_DSMR_VERSION]
    window = Window(
        version,
        averaged(version),
        precision=user_precision(data),
        demand=has_demand(version),
        threshold_kw=float(options.get(CONF_PEAK_THRESHOLD, DEFAULT_THRESHOLD_KW)),
    )
    seconds = options.get(CONF_TIME_BETWEEN_UPDATE, DEFAULT_TIME_BETWEEN_UPDATE)
    coordinator = DsmrCoordinator(hass, entry, window, seconds, counters := Counters())
    if data.get(CONF_NEW_METER):  # taken once, here: the coordinator before it never sees it
        coordinator.new_meter = True
        hass.config_entries.async_update_entry(
            entry, data={k: v for k, v in data.items() if k != CONF_NEW_METER}
        )
        data = entry.data
    await coordinator.async_load()
    sharing = sharing_for(hass, entry)  # off by default: every accepted frame to the server
    server = sharing.server if sharing is not None else None
    connection = Connection(
        data,
        coordinator.telegram_received,
        coordinator.connection_changed,
        counters,
        reconnect_interval=data.get(CONF_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL),
        watchdog_timeout=options.get(CONF_WATCHDOG_TIMEOUT, DEFAULT_WATCHDOG_TIMEOUT),
        frame_sink=server.publish if server is not None else None,
        plain_frames=sharing is not None and sharing.config.decrypted,
    )
    entry.runtime_data = DsmrRuntimeData(coordinator, connection, server)
    try:  # a port that will not open: Home Assistant retries (a bridge still booting)
        await connection.async_connect()
    except CannotConnect as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="invalid_port" if isinstance(err, InvalidPort) else "cannot_connect",
            translation_placeholders={"port": connection.port, "error": str(err)},
        ) from err
    try:
        await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    except BaseException:
        connection.close()
        raise
    if sharing is not None:
        sharing.async_start()
    # Cancelled on unload and at shutdown; the connection closes its port when cancelled.
    entry.async_create_background_task(hass, connection.async_run(), "dsmr connection")
    return True


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: DsmrConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a sub-meter the meter no longer reports (not the meters)."""
    identifiers = {ident for domain, ident in device.identifiers if domain == DOMAIN}
    fixed = {entry.data.get(CONF_SERIAL_ID), entry.data.get(CONF_SERIAL_ID_GAS), entry.entry_id}
    snapshot = entry.runtime_data.coordinator.data
    current = {str(m.identifier) for m in snapshot.submeters} if snapshot is not None else set()
    if identifiers & (fixed | current):
        return False
    known = [k for k in entry.data.get(CONF_MBUS_DEVICES, []) if k.get("id") not in identifiers]
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_MBUS_DEVICES: known})
    return True


async def async_unload_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> bool:
    """Unload a meter: its connection task is cancelled with the entry, closing the port."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> None:
    """A removed meter's saved flows go with it."""
    await Store[dict[str, object]](hass, 1, f"{DOMAIN}.{entry.entry_id}").async_remove()
