"""Base entity (device, unique id, availability; pushed by the coordinator) and meter devices."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from . import DsmrConfigEntry
from .const import (
    CONF_DSMR_VERSION,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DEVICE_NAME_ELECTRICITY,
    DEVICE_NAME_GAS,
    DOMAIN,
)
from .coordinator import DsmrCoordinator


class DsmrEntity(Entity):
    """An entity fed by a DsmrCoordinator."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        coordinator: DsmrCoordinator,
        description: EntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
    ) -> None:
        """Initialize the entity."""
        self.coordinator = coordinator
        self.entity_description = description
        self._attr_device_info = device_info
        self._attr_unique_id = unique_id

    async def async_added_to_hass(self) -> None:
        """Subscribe to the coordinator's pushes."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_listener(self._handle_coordinator_update))
        if self.coordinator.telegram is not None:
            self._handle_coordinator_update()

    def _handle_coordinator_update(self) -> None:
        """Take the coordinator's latest telegram (subclasses decide what to write)."""
        self.async_write_ha_state()

    @property
    def available(self) -> bool:
        """Available while the meter is connected (and, after a restart, until proven not)."""
        return self.coordinator.available


def readable(identifier: str) -> str:
    """Meters send their equipment id as hex-encoded ASCII; show the text when it is that.

    Unique ids keep the hex form (core's), only the device's serial number is decoded.
    """
    try:
        text = bytes.fromhex(identifier).decode("ascii")
    except ValueError:
        return identifier
    return text if text.isprintable() and text.strip() else identifier


def main_device(entry: DsmrConfigEntry, *, gas: bool = False) -> tuple[DeviceInfo, str]:
    """Return the electricity (or DSMR 2.2/4 gas) meter's device and its serial, as core."""
    if gas:
        serial, name = entry.data.get(CONF_SERIAL_ID_GAS), DEVICE_NAME_GAS
    else:
        serial, name = entry.data.get(CONF_SERIAL_ID), DEVICE_NAME_ELECTRICITY
    serial = serial or entry.entry_id
    info = DeviceInfo(identifiers={(DOMAIN, serial)}, name=name)
    if not gas:
        info["model"] = f"DSMR {entry.data[CONF_DSMR_VERSION]}"
        if entry.data.get(CONF_SERIAL_ID):
            info["serial_number"] = readable(entry.data[CONF_SERIAL_ID])
    return info, serial
