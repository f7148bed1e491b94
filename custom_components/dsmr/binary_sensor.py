"""Connection state of a meter (diagnostic)."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DsmrConfigEntry
from .entity import RefreshingEntity, main_device
from .health import CONNECTION

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DsmrConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connection sensor to the electricity meter's device."""
    device, serial = main_device(entry)
    async_add_entities(
        [
            ConnectionSensor(
                entry.runtime_data.coordinator, CONNECTION, device, f"{serial}_{CONNECTION.key}"
            )
        ]
    )


class ConnectionSensor(RefreshingEntity, BinarySensorEntity):
    """On while telegrams arrive."""

    def _current(self) -> bool:
        return self.coordinator.online  # on every push: not the whole Health

    @property
    def is_on(self) -> bool:
        """Whether the meter is connected and sending."""
        return bool(self._last)
