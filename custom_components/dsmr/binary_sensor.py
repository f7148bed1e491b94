"""The connection to the meter, and (Belgian meters) a new monthly peak ahead."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from .const import CONF_DSMR_VERSION
from .coordinator import DsmrConfigEntry, DsmrCoordinator, signal
from .entity import HEALTH_REFRESH, DsmrEntity, main_device
from .p1.telegram import has_demand

PARALLEL_UPDATES = 0
CONNECTION = BinarySensorEntityDescription(
    key="connection",
    translation_key="connection",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)
NEW_PEAK_AHEAD = BinarySensorEntityDescription(
    key="new_monthly_peak_ahead", translation_key="new_monthly_peak_ahead"
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DsmrConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The connection sensor; the new-peak alarm where the meter sends the demand."""
    device, serial = main_device(entry)
    coordinator = entry.runtime_data.coordinator
    entities: list[BinarySensorEntity] = [
        ConnectionSensor(coordinator, device, f"{serial}_{CONNECTION.key}")
    ]
    if has_demand(entry.data[CONF_DSMR_VERSION]):
        unique_id = f"{serial}_{NEW_PEAK_AHEAD.key}"
        entities.append(NewPeakAheadSensor(coordinator, NEW_PEAK_AHEAD, device, unique_id))
    async_add_entities(entities)


class ConnectionSensor(BinarySensorEntity):
    """On while telegrams arrive; known even while the meter is not (not a telegram's entity)."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, coordinator: DsmrCoordinator, device_info: DeviceInfo, unique_id: str
    ) -> None:
        """The connection of `coordinator`'s meter."""
        self.coordinator = coordinator
        self.entity_description = CONNECTION
        self._attr_device_info = device_info
        self._attr_unique_id = unique_id

    async def async_added_to_hass(self) -> None:
        """Look when the connection changes, and on a timer."""
        entry_id = self.coordinator.config_entry.entry_id  # type: ignore[union-attr]
        self.async_on_remove(
            async_dispatcher_connect(self.hass, signal(entry_id, "online"), self._look)
        )
        self.async_on_remove(async_track_time_interval(self.hass, self._look, HEALTH_REFRESH))
        self._look()

    @callback
    def _look(self, _now: datetime | None = None) -> None:
        if self._attr_is_on != (online := self.coordinator.online):
            self._attr_is_on = online
            self.async_write_ha_state()


class NewPeakAheadSensor(DsmrEntity, BinarySensorEntity):
    """On while the running quarter-hour heads for a new billed monthly peak."""

    _written: tuple[Any, ...] | None = None

    @callback
    def _handle_coordinator_update(self) -> None:
        snapshot = self.coordinator.data
        if snapshot is not None and self.coordinator.last_update_success:
            alarm, quarter = snapshot.alarm, snapshot.forecast
            self._attr_is_on = alarm.on
            self._attr_extra_state_attributes = {
                "limit": alarm.limit_kw,
                "since": alarm.since and dt_util.as_local(alarm.since).isoformat(),
                "quarter_end": quarter and dt_util.as_local(quarter.quarter_end).isoformat(),
            }
        written = (self.available, self._attr_is_on, self._attr_extra_state_attributes)
        if written != self._written:
            self._written = written
            self.async_write_ha_state()
