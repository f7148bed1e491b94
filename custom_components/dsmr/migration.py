"""Entity registry migrations inherited from core `dsmr`, so old entities keep their history.

Either of core's old unique id forms may still be in a registry: name-based ones (before 2022),
and DSMR 5/5B gas ones keyed by PRE_MBUS_GAS_SUFFIXES, not by their M-Bus device (2024).
"""

from __future__ import annotations

from homeassistant.components.sensor import DOMAIN as SENSOR_DOMAIN
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .const import CONF_DSMR_VERSION, DOMAIN, LOGGER

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
