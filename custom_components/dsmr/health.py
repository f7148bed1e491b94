"""Health of the connection to a meter: the counters as a frozen `Health`, and its entities.

The coordinator publishes a `Health` of its counters; the health entities (sensor.py,
binary_sensor.py) show it, refreshed every few seconds (faults produce no telegrams, so
pushes alone would leave them stale): connection state, telegrams per minute, skipped
telegrams, time of the last telegram, and how far the meter's clock is from Home Assistant's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntityDescription,
)
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime

REFRESH = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Health:
    """The counters of a meter's connection, as they stood when asked (the coordinator's)."""

    connected: bool
    telegrams_per_minute: int
    skipped_telegrams: int
    last_telegram: datetime | None
    meter_clock_offset: float | None


@dataclass(frozen=True, kw_only=True)
class HealthSensorEntityDescription(SensorEntityDescription):
    """A number about the connection."""

    value_fn: Callable[[Health], Any]


HEALTH_SENSORS: tuple[HealthSensorEntityDescription, ...] = (
    HealthSensorEntityDescription(
        key="telegrams_per_minute",
        translation_key="telegrams_per_minute",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="telegrams/min",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda h: h.telegrams_per_minute,
    ),
    HealthSensorEntityDescription(
        key="skipped_telegrams",
        translation_key="skipped_telegrams",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda h: h.skipped_telegrams,
    ),
    HealthSensorEntityDescription(
        key="last_telegram",
        translation_key="last_telegram",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda h: h.last_telegram,
    ),
    HealthSensorEntityDescription(
        key="meter_clock_offset",
        translation_key="meter_clock_offset",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda h: h.meter_clock_offset,
    ),
)
CONNECTION = BinarySensorEntityDescription(
    key="connection",
    translation_key="connection",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)
