"""The DSMR smart meter integration: read a P1 port into Home Assistant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import (
    CONF_DSMR_VERSION,
    CONF_MBUS_DEVICES,
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
from .counters import ReaderStats
from .demand import DEFAULT_THRESHOLD_KW
from .derived import Deriver
from .descriptions import has_demand, version_sensors
from .migration import async_migrate_entity_unique_ids
from .ports import CannotConnect, InvalidPort
from .reader import DsmrReader, equipment_identifier
from .sharing import sharing_for
from .snapshot import Field, SnapshotBuilder
from .yaml_import import async_import_yaml, user_precision

__all__ = ["DsmrConfigEntry"]

# YAML is `sensor: - platform: dsmr` only (see yaml_import.py); a top-level `dsmr:` key is
# reported as an error and a repair issue instead of being ignored silently.
CONFIG_SCHEMA = cv.platform_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Turn `sensor: - platform: dsmr` blocks into config entries that follow the YAML."""
    await async_import_yaml(hass, config)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> bool:
    """Set up a meter: migrate old unique ids, create entities, start reading."""
    await async_migrate_entity_unique_ids(hass, entry)
    coordinator = DsmrCoordinator(
        hass,
        entry,
        snapshot_builder(entry.data, entry.options),
        entry.options.get(CONF_TIME_BETWEEN_UPDATE, DEFAULT_TIME_BETWEEN_UPDATE),
        counters := ReaderStats(),
    )
    # Sharing the meter (off by default): every accepted frame also goes to the server.
    sharing = sharing_for(hass, entry)
    server = sharing.server if sharing is not None else None
    # The reader's protocol calls the coordinator for every telegram and connection change.
    reader = DsmrReader(
        entry.data,
        coordinator.telegram_received,
        coordinator.connection_changed,
        counters,
        reconnect_interval=entry.data.get(CONF_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL),
        watchdog_timeout=entry.options.get(CONF_WATCHDOG_TIMEOUT, DEFAULT_WATCHDOG_TIMEOUT),
        frame_sink=server.publish if server is not None else None,
        plain_frames=sharing is not None and sharing.config.decrypted,
    )
    entry.runtime_data = DsmrRuntimeData(coordinator, reader, counters, server)
    await _async_open_port(reader)
    try:
        await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    except BaseException:
        reader.close()
        raise
    coordinator.select_shown()  # the entities are added: read only what they show
    if sharing is not None:  # once the entry sets up: it lives as long as the entry is loaded
        sharing.async_start()
    # Background tasks of an entry are cancelled on unload and at shutdown; the reader closes
    # its port when cancelled. (The coordinator shuts down with the entry by itself.)
    entry.async_create_background_task(hass, reader.async_run(), "dsmr reader")
    return True


def snapshot_builder(
    data: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> SnapshotBuilder:
    """The snapshot builder of a meter: its version's fields, the forecast and the flows.

    The forecast only for meters that send the quarter-hour demand; its threshold: the options'.
    """
    version = data[CONF_DSMR_VERSION]
    threshold = (options or {}).get(CONF_PEAK_THRESHOLD, DEFAULT_THRESHOLD_KW)
    return SnapshotBuilder(
        [
            Field(
                key=d.key,
                name=d.obis_name,
                convert=d.convert_fn and partial(_convert, d.convert_fn, version),
                derive=d.telegram_fn,
                average=d.average,
            )
            for d in version_sensors(version)
        ],
        precision=user_precision(data),
        identify=partial(equipment_identifier, dsmr_version=version),
        deriver=Deriver(demand=has_demand(version), threshold_kw=float(threshold)),
    )


async def _async_open_port(reader: DsmrReader) -> None:
    """Open the meter's port before anything is set up; ConfigEntryNotReady when it won't open.

    Home Assistant then retries (an adapter not plugged in yet, a bridge still booting, an
    ESPHome proxy not loaded yet). A port the rule refuses (a file, a device that is no serial
    port) is refused again at every attempt, without being opened, and its message asks for a
    reconfiguration; it is not a ConfigEntryError, which Home Assistant logs with a traceback.
    Once set up, the reader reconnects by itself (a repair issue if the meter stays away).
    """
    try:
        await reader.async_connect()
    except CannotConnect as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="invalid_port" if isinstance(err, InvalidPort) else "cannot_connect",
            translation_placeholders={"port": reader.port, "error": str(err)},
        ) from err


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: DsmrConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete an M-Bus sub-meter that the meter no longer reports.

    The electricity meter (and the DSMR 2.2/4 gas meter) stay; so does a sub-meter that the
    latest telegram still carries.
    """
    identifiers = {ident for domain, ident in device.identifiers if domain == DOMAIN}
    fixed = {entry.data.get(CONF_SERIAL_ID), entry.data.get(CONF_SERIAL_ID_GAS), entry.entry_id}
    if identifiers & fixed:
        return False
    snapshot = entry.runtime_data.coordinator.data
    current = {str(d.identifier) for d in snapshot.mbus} if snapshot is not None else set()
    if identifiers & current:
        return False
    known = [k for k in entry.data.get(CONF_MBUS_DEVICES, []) if k.get("id") not in identifiers]
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_MBUS_DEVICES: known})
    return True


async def async_unload_entry(hass: HomeAssistant, entry: DsmrConfigEntry) -> bool:
    """Unload a meter: its reader task is cancelled by the entry, closing the port."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


def _convert(convert: Callable[[Any, str], Any], version: str, obj: Any) -> Any:
    return convert(obj, version)
