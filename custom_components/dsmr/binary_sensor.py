"""Connection state of a meter (diagnostic); a new monthly peak ahead (Belgian meters)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_DSMR_VERSION
from .coordinator import DsmrConfigEntry
from .derived import FORECAST
from .derived_descriptions import NEW_MONTHLY_PEAK_AHEAD, new_peak_attributes
from .descriptions import has_demand
from .entity import DerivedEntity, RefreshingEntity, main_device
from .health import CONNECTION

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DsmrConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connection sensor to the electricity meter's device."""
    device, serial = main_device(entry)
    coordinator = entry.runtime_data.coordinator
    entities: list[BinarySensorEntity] = [
        ConnectionSensor(coordinator, CONNECTION, device, f"{serial}_{CONNECTION.key}")
    ]
    if has_demand(entry.data[CONF_DSMR_VERSION]):
        d = NEW_MONTHLY_PEAK_AHEAD
        entities.append(NewPeakAheadSensor(coordinator, d, device, f"{serial}_{d.key}"))
    async_add_entities(entities)


class ConnectionSensor(RefreshingEntity, BinarySensorEntity):
    """On while telegrams arrive."""

    def _current(self) -> bool:
        return self.coordinator.online  # on every push: not the whole Health

    @property
    def is_on(self) -> bool:
        """Whether the meter is connected and sending."""
        return bool(self._last)


class NewPeakAheadSensor(DerivedEntity, BinarySensorEntity):
    """On while the running quarter-hour heads for a new billed monthly peak."""

    _needs = FORECAST

    _read: tuple[Any, ...] | None = None  # the alarm and quarter last read

    def _update(self) -> None:
        if (derived := self._derived()) is not None:
            quarter = derived.quarter
            read = (derived.alarm, None if quarter is None else quarter.quarter_start)
            if read != self._read:  # the usual push: the same alarm, the same quarter
                self._read = read
                self._attr_is_on = derived.alarm.on
                self._attr_extra_state_attributes = new_peak_attributes(derived)
        self._show((self._attr_is_on, self._attr_extra_state_attributes))
