"""Entity registry migrations: core `dsmr`'s, and a replaced meter's, so entities keep history.

Either of core's old unique id forms may still be in a registry: name-based ones (before 2022),
and DSMR 5/5B gas ones keyed by PRE_MBUS_GAS_SUFFIXES, not by their M-Bus device (2024). A
replaced meter's entities and devices move to the new meter's identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from homeassistant.components.sensor import DOMAIN as SENSOR_DOMAIN
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)

from .const import (
    CONF_DSMR_VERSION,
    CONF_NEW_METER,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DOMAIN,
    LOGGER,
)

# Old name-based unique id suffix -> key. Order matters: the first suffix that matches wins.
NAME_TO_KEY: tuple[tuple[str, str], ...] = (
    ("Power_Consumption", "current_electricity_usage"),
    ("Power_Production", "current_electricity_delivery"),
    ("Power_Tariff", "electricity_active_tariff"),
    ("Energy_Consumption_(tarif_1)", "electricity_used_tariff_1"),
    ("Energy_Consumption_(tarif_2)", "electricity_used_tariff_2"),
    ("Energy_Production_(tarif_1)", "electricity_delivered_tariff_1"),
    ("Energy_Production_(tarif_2)", "electricity_delivered_tariff_2"),
    ("Power_Consumption_Phase_L1", "instantaneous_active_power_l1_positive"),
    ("Power_Consumption_Phase_L3", "instantaneous_active_power_l3_positive"),
    ("Power_Consumption_Phase_L2", "instantaneous_active_power_l2_positive"),
    ("Power_Production_Phase_L1", "instantaneous_active_power_l1_negative"),
    ("Power_Production_Phase_L2", "instantaneous_active_power_l2_negative"),
    ("Power_Production_Phase_L3", "instantaneous_active_power_l3_negative"),
    ("Short_Power_Failure_Count", "short_power_failure_count"),
    ("Long_Power_Failure_Count", "long_power_failure_count"),
    ("Voltage_Sags_Phase_L1", "voltage_sag_l1_count"),
    ("Voltage_Sags_Phase_L2", "voltage_sag_l2_count"),
    ("Voltage_Sags_Phase_L3", "voltage_sag_l3_count"),
    ("Voltage_Swells_Phase_L1", "voltage_swell_l1_count"),
    ("Voltage_Swells_Phase_L2", "voltage_swell_l2_count"),
    ("Voltage_Swells_Phase_L3", "voltage_swell_l3_count"),
    ("Voltage_Phase_L1", "instantaneous_voltage_l1"),
    ("Voltage_Phase_L2", "instantaneous_voltage_l2"),
    ("Voltage_Phase_L3", "instantaneous_voltage_l3"),
    ("Current_Phase_L1", "instantaneous_current_l1"),
    ("Current_Phase_L2", "instantaneous_current_l2"),
    ("Current_Phase_L3", "instantaneous_current_l3"),
    ("Max_power_per_phase", "belgium_max_power_per_phase"),
    ("Max_current_per_phase", "belgium_max_current_per_phase"),
    ("Energy_Consumption_(total)", "electricity_imported_total"),
    ("Energy_Production_(total)", "electricity_exported_total"),
)
OLD_GAS_SUFFIX = "Gas_Consumption"
GAS_KEY_BY_VERSION = dict.fromkeys(("4", "5", "5L"), "hourly_gas_meter_reading") | {
    "5B": "belgium_5min_gas_meter_reading",
    "2.2": "gas_meter_reading",
}
PRE_MBUS_GAS_SUFFIXES = ("belgium_5min_gas_meter_reading", "hourly_gas_meter_reading")


def migrated_unique_id(unique_id: str, dsmr_version: str) -> str | None:
    """Return the key-based unique id for an old name-based one, or None if it is current."""
    for old, new in NAME_TO_KEY:
        if unique_id.endswith(old):
            return unique_id.replace(old, new)
    if unique_id.endswith(OLD_GAS_SUFFIX) and (key := GAS_KEY_BY_VERSION.get(dsmr_version)):
        return unique_id.replace(OLD_GAS_SUFFIX, key)
    return None


async def async_migrate_entity_unique_ids(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Rewrite name-based unique ids of this entry's entities to key-based ones."""
    version = entry.data[CONF_DSMR_VERSION]

    @callback
    def migrate(entity_entry: er.RegistryEntry) -> dict[str, str] | None:
        new = migrated_unique_id(entity_entry.unique_id, version)
        return {"new_unique_id": new} if new else None

    await er.async_migrate_entries(hass, entry.entry_id, migrate)


@callback
def async_move_gas_to_mbus(hass: HomeAssistant, entry: ConfigEntry, mbus_id: str) -> None:
    """Move a pre-M-Bus gas entity to the M-Bus device `mbus_id`, keeping its entity id."""
    dev_reg, ent_reg = dr.async_get(hass), er.async_get(hass)
    for identifier in (mbus_id, entry.entry_id):
        device = dev_reg.async_get_device_by_identifier((DOMAIN, identifier), entry.entry_id)
        if device is None:
            continue
        for entity in er.async_entries_for_device(ent_reg, device.id):
            if not entity.unique_id.endswith(PRE_MBUS_GAS_SUFFIXES):
                continue
            if ent_reg.async_get_entity_id(SENSOR_DOMAIN, DOMAIN, mbus_id):
                # (The ids hold the M-Bus device's equipment identifier: not logged.)
                LOGGER.debug("Not migrating %s: its new unique id exists already", entity.entity_id)
                continue
            new_device = dev_reg.async_get_or_create(
                config_entry_id=entry.entry_id, identifiers={(DOMAIN, mbus_id)}
            )
            ent_reg.async_update_entity(
                entity.entity_id, new_unique_id=mbus_id, device_id=new_device.id
            )
            LOGGER.debug("Moved %s to its M-Bus device", entity.entity_id)
        if not er.async_entries_for_device(ent_reg, device.id, include_disabled_entities=True):
            dev_reg.async_remove_device(device.id)


@callback
def async_replace_meter(
    hass: HomeAssistant, entry: ConfigEntry, data: Mapping[str, Any], **changes: Any
) -> None:
    """Move the entry, its entities and devices to the meter in `data`, and reload it."""
    entities, devices = er.async_get(hass), dr.async_get(hass)
    if not data.get(CONF_SERIAL_ID_GAS) and entry.data.get(CONF_SERIAL_ID_GAS):
        data = {**data, CONF_SERIAL_ID_GAS: entry.data[CONF_SERIAL_ID_GAS]}  # not paired yet
    for key in (CONF_SERIAL_ID, CONF_SERIAL_ID_GAS):
        old, new = entry.data.get(key), data.get(key)
        if not old or not new or old == new:
            continue
        for reg in er.async_entries_for_config_entry(entities, entry.entry_id):
            if reg.unique_id.startswith(f"{old}_"):
                with suppress(ValueError):  # the new meter's own entity (set up before) stays
                    entities.async_update_entity(
                        reg.entity_id, new_unique_id=new + reg.unique_id[len(old) :]
                    )
        device = devices.async_get_device_by_identifier((DOMAIN, old), entry.entry_id)
        if device and not devices.async_get_device_by_identifier((DOMAIN, new), entry.entry_id):
            devices.async_update_device(device.id, new_identifiers={(DOMAIN, new)})
    data = {**data, CONF_NEW_METER: True}
    hass.config_entries.async_update_entry(
        entry, unique_id=data[CONF_SERIAL_ID], data=data, **changes
    )
    ir.async_delete_issue(hass, DOMAIN, f"replaced_{entry.entry_id}")
    hass.config_entries.async_schedule_reload(entry.entry_id)
