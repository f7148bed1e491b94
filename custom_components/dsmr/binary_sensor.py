"""Connection state of a meter (diagnostic)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import DsmrConfigEntry
from .entity import main_device
from .health import CONNECTION, ConnectionSensor

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DsmrConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connection sensor to the electricity meter's device."""
    device, serial = main_device(entry)
    async_add_entities(
        [ConnectionSensor(entry.runtime_data, CONNECTION, device, f"{serial}_{CONNECTION.key}")]
    )
