"""Base entity: device, unique id and availability, pushed by the coordinator."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

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
