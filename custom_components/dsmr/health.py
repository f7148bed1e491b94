"""Health of the connection to a meter, as diagnostic entities.

Fed by the reader's counters and refreshed every few seconds (faults produce no telegrams, so
pushes alone would leave them stale): connection state, telegrams per minute, skipped telegrams,
time of the last telegram, and how far the meter's clock is from Home Assistant's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.event import async_track_time_interval

from .coordinator import DsmrCoordinator
from .entity import DsmrEntity

REFRESH = timedelta(seconds=10)


@dataclass(frozen=True, kw_only=True)
class HealthSensorEntityDescription(SensorEntityDescription):
    """A number about the connection, computed from the coordinator."""

    value_fn: Callable[[DsmrCoordinator], Any]


def _clock_offset(coordinator: DsmrCoordinator) -> float | None:
    telegram = coordinator.latest
    stamp = getattr(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None), "value", None)
    received = coordinator.reader.stats.last_telegram
    if not isinstance(stamp, datetime) or received is None:
        return None
    return round((stamp - datetime.fromtimestamp(received, UTC)).total_seconds(), 1)


def _last_telegram(coordinator: DsmrCoordinator) -> datetime | None:
    received = coordinator.reader.stats.last_telegram
    return (
        None if received is None else datetime.fromtimestamp(received, UTC).replace(microsecond=0)
    )


HEALTH_SENSORS: tuple[HealthSensorEntityDescription, ...] = (
    HealthSensorEntityDescription(
        key="telegrams_per_minute",
        translation_key="telegrams_per_minute",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="telegrams/min",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda c: c.reader.stats.per_minute(),
    ),
    HealthSensorEntityDescription(
        key="skipped_telegrams",
        translation_key="skipped_telegrams",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda c: c.reader.stats.crc_errors + c.reader.stats.parse_errors,
    ),
    HealthSensorEntityDescription(
        key="last_telegram",
        translation_key="last_telegram",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=_last_telegram,
    ),
    HealthSensorEntityDescription(
        key="meter_clock_offset",
        translation_key="meter_clock_offset",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=_clock_offset,
    ),
)
CONNECTION = BinarySensorEntityDescription(
    key="connection",
    translation_key="connection",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


_UNSET = object()


class _Refreshing(DsmrEntity):
    """Writes its state on pushes and every REFRESH, only when it changed."""

    _last: Any = _UNSET

    async def async_added_to_hass(self) -> None:
        """Also refresh on a timer."""
        await super().async_added_to_hass()
        self.async_on_remove(async_track_time_interval(self.hass, self._refresh, REFRESH))

    @callback
    def _refresh(self, _now: datetime) -> None:
        self._handle_coordinator_update()

    def _current(self) -> Any:
        raise NotImplementedError

    @callback
    def _handle_coordinator_update(self) -> None:
        current = self._current()
        if current != self._last:
            self._last = current
            self.async_write_ha_state()


class HealthSensor(_Refreshing, SensorEntity):
    """A number about the connection, refreshed on its timer (not on every telegram)."""

    entity_description: HealthSensorEntityDescription

    @property
    def available(self) -> bool:
        """Health is known even while the meter is not."""
        return True

    def _current(self) -> Any:
        return self.entity_description.value_fn(self.coordinator)

    @callback
    def _handle_coordinator_update(self) -> None:
        if self._last is _UNSET or self.coordinator.telegram is None:
            super()._handle_coordinator_update()  # first value, and disconnects, at once

    @callback
    def _refresh(self, _now: datetime) -> None:
        super()._handle_coordinator_update()

    @property
    def native_value(self) -> Any:
        """The value from the reader's counters, as last refreshed."""
        return None if self._last is _UNSET else self._last


class ConnectionSensor(_Refreshing, BinarySensorEntity):
    """On while telegrams arrive."""

    @property
    def available(self) -> bool:
        """Always known."""
        return True

    def _current(self) -> bool:
        return self.coordinator.reader.connected and self.coordinator.available

    @property
    def is_on(self) -> bool:
        """Whether the meter is connected and sending."""
        return self._current()


def health_entities(
    coordinator: DsmrCoordinator, device: DeviceInfo, serial: str
) -> list[HealthSensor]:
    """The health sensors of a meter's electricity device."""
    return [HealthSensor(coordinator, d, device, f"{serial}_{d.key}") for d in HEALTH_SENSORS]
