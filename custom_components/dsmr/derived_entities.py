"""Entities of what the meter's lines imply: the capacity tariff's forecast, and the flows.

- On the electricity meter of a meter that sends the quarter-hour demand (``1-0:1.4.0``,
  Belgian meters): *Quarter-hour forecast*, *Peak headroom* (sensors) and *New monthly peak
  ahead* (binary sensor), from the snapshot's `Derived` (derived.py, demand.py).
- On every gas and water meter whose reading is in m³: *Gas flow* (m³/h) or *Water flow*
  (L/min), created with the reading's entity (mbus.py; the DSMR 2.2/4 gas meter in sensor.py).
  A flow entity keeps the flow's state (the last capture and its time, flow.py) across
  restarts as its extra restore data, and gives it back to the snapshot builder at startup,
  so the first capture after a short restart has a flow at once.

Every entity is unavailable while the meter is (as all), and unknown where the modules say so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfPower, UnitOfVolume, UnitOfVolumeFlowRate
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.restore_state import ExtraStoredData, RestoreEntity
from homeassistant.util import dt as dt_util

from .const import MBUS_TYPE_GAS, MBUS_TYPE_WARM_WATER, MBUS_TYPE_WATER
from .coordinator import DsmrCoordinator
from .derived import MAIN_GAS_KEY, Derived, flow_key
from .entity import DsmrEntity
from .flow import FlowState, liters_per_minute
from .units import ha_unit

type Attributes = dict[str, Any]
_NO_FLOWS: Mapping[str, FlowState] = MappingProxyType({})


def _local(at: datetime | None) -> str | None:
    return None if at is None else dt_util.as_local(at).isoformat()


@dataclass(frozen=True, kw_only=True)
class DemandSensorEntityDescription(SensorEntityDescription):
    """A capacity-tariff figure of the snapshot's `Derived` (threshold: the options')."""

    value_fn: Callable[[Derived], float | None]
    attributes_fn: Callable[[Derived], Attributes]


def _forecast_attributes(derived: Derived) -> Attributes:
    quarter = derived.quarter
    if quarter is None:
        return {}
    return {
        "quarter_start": _local(quarter.quarter_start),
        "quarter_end": _local(quarter.quarter_end),
        "demand_so_far": quarter.average_kw,
        "previous_quarter": quarter.previous_quarter_kw,
    }


def _headroom_attributes(derived: Derived) -> Attributes:
    quarter = derived.quarter
    return {
        "limit": None if quarter is None else quarter.limit_kw(derived.threshold_kw),
        "month_peak": None if quarter is None else quarter.month_peak_kw,
        "threshold": derived.threshold_kw,
    }


def _kw(
    key: str,
    value_fn: Callable[[Derived], float | None],
    attributes_fn: Callable[[Derived], Attributes],
) -> DemandSensorEntityDescription:
    return DemandSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.KILO_WATT,
        suggested_display_precision=3,
        value_fn=value_fn,
        attributes_fn=attributes_fn,
    )


DEMAND_SENSORS: tuple[DemandSensorEntityDescription, ...] = (
    _kw(
        "quarter_hour_forecast",
        lambda d: None if d.quarter is None else d.quarter.forecast_kw,
        _forecast_attributes,
    ),
    _kw(
        "peak_headroom",
        lambda d: None if d.quarter is None else d.quarter.headroom_kw(d.threshold_kw),
        _headroom_attributes,
    ),
)
NEW_MONTHLY_PEAK_AHEAD = BinarySensorEntityDescription(
    key="new_monthly_peak_ahead", translation_key="new_monthly_peak_ahead"
)


class _Shown(DsmrEntity):
    """Writes its state only when what it shows (or its availability) changed."""

    _shown: Any = None

    def _derived(self) -> Derived | None:
        """The snapshot's derived values; None while the meter is unavailable or silent."""
        data = self.coordinator.data
        if not self.coordinator.last_update_success or data is None:
            return None
        return data.derived

    def _show(self, shown: Any) -> None:
        shown = (self.coordinator.last_update_success, shown)
        if shown != self._shown:
            self._shown = shown
            self.async_write_ha_state()


class DemandSensor(_Shown, SensorEntity):
    """Quarter-hour forecast or peak headroom (kW)."""

    entity_description: DemandSensorEntityDescription

    def _update(self) -> None:
        if (derived := self._derived()) is not None:
            description = self.entity_description
            self._attr_native_value = description.value_fn(derived)
            self._attr_extra_state_attributes = description.attributes_fn(derived)
        self._show((self._attr_native_value, self._attr_extra_state_attributes))


class NewPeakAheadSensor(_Shown, BinarySensorEntity):
    """On while the running quarter-hour heads for a new billed monthly peak."""

    def _update(self) -> None:
        if (derived := self._derived()) is not None:
            alarm, quarter = derived.alarm, derived.quarter
            self._attr_is_on = alarm.on
            self._attr_extra_state_attributes = {
                "limit": alarm.limit_kw,
                "since": _local(alarm.since),
                "quarter_end": None if quarter is None else _local(quarter.quarter_end),
            }
        self._show((self._attr_is_on, self._attr_extra_state_attributes))


def demand_sensors(
    coordinator: DsmrCoordinator, device_info: DeviceInfo, serial: str
) -> list[SensorEntity]:
    """The forecast and headroom sensors of the electricity meter."""
    return [DemandSensor(coordinator, d, device_info, f"{serial}_{d.key}") for d in DEMAND_SENSORS]


def new_peak_ahead_sensor(
    coordinator: DsmrCoordinator, device_info: DeviceInfo, serial: str
) -> BinarySensorEntity:
    """The new-peak binary sensor of the electricity meter."""
    d = NEW_MONTHLY_PEAK_AHEAD
    return NewPeakAheadSensor(coordinator, d, device_info, f"{serial}_{d.key}")


def _flow(key: str, unit: str, precision: int) -> SensorEntityDescription:
    return SensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.VOLUME_FLOW_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=unit,
        suggested_display_precision=precision,
    )


GAS_FLOW = _flow("gas_flow", UnitOfVolumeFlowRate.CUBIC_METERS_PER_HOUR, 3)
WATER_FLOW = _flow("water_flow", UnitOfVolumeFlowRate.LITERS_PER_MINUTE, 1)


@dataclass(frozen=True, slots=True)
class FlowRestoreData(ExtraStoredData):
    """A flow's state as Home Assistant stores it at shutdown."""

    state: FlowState

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (flow.py's `FlowState.as_dict`)."""
        return self.state.as_dict()


class FlowSensor(_Shown, SensorEntity, RestoreEntity):
    """Gas (m³/h) or water (L/min) flow of one sub-meter; its state survives restarts."""

    def __init__(
        self,
        coordinator: DsmrCoordinator,
        description: SensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
        key: str,
    ) -> None:
        """Initialize for the flow `key` (derived.py's `flow_key`)."""
        super().__init__(coordinator, description, device_info, unique_id)
        self._key = key
        self._restored: FlowState | None = None

    def _flows(self) -> Mapping[str, FlowState]:
        data = self.coordinator.data
        return _NO_FLOWS if data is None else data.derived.flows

    async def async_added_to_hass(self) -> None:
        """Give the stored flow state to the snapshot builder, then subscribe."""
        extra = await self.async_get_last_extra_data()
        if extra is not None and self._key not in self._flows():
            state = FlowState.from_dict(extra.as_dict())
            if state.last is not None and (deriver := self.coordinator.builder.deriver):
                self._restored = deriver.restored[self._key] = state
        await super().async_added_to_hass()

    @property
    def extra_restore_state_data(self) -> FlowRestoreData | None:
        """The flow's state (the last capture and its time) for the next start."""
        state = self._flows().get(self._key) or self._restored
        return None if state is None else FlowRestoreData(state)

    def _update(self) -> None:
        derived = self._derived()
        if derived is not None and (flow := derived.flows.get(self._key)) is not None:
            m3h = flow.m3h
            gas = self.entity_description.key == GAS_FLOW.key
            self._attr_native_value = m3h if gas else liters_per_minute(m3h)
            self._attr_extra_state_attributes = {
                "interval": flow.interval_s,
                "reading_at": None if flow.last is None else _local(flow.last.at),
            }
        self._show((self._attr_native_value, self._attr_extra_state_attributes))


# EN 13757-3 device type -> its flow (derived.py computes flows for exactly these types).
FLOW_SENSORS: Mapping[int, SensorEntityDescription] = {
    MBUS_TYPE_GAS: GAS_FLOW,
    MBUS_TYPE_WARM_WATER: WATER_FLOW,
    MBUS_TYPE_WATER: WATER_FLOW,
}


def mbus_flow_sensors(
    coordinator: DsmrCoordinator,
    device_info: DeviceInfo,
    reading_unique_id: str,
    *,
    device_type: int,
    unit: str | None,
    channel: int,
    ident: str | None,
) -> list[SensorEntity]:
    """The flow of an M-Bus gas or water meter whose reading is in m³ (else none)."""
    description = FLOW_SENSORS.get(device_type)
    if description is None or ha_unit(unit) != UnitOfVolume.CUBIC_METERS:
        return []
    key = flow_key(channel, ident)
    return [FlowSensor(coordinator, description, device_info, f"{reading_unique_id}_flow", key)]


def gas_flow_sensor(
    coordinator: DsmrCoordinator, device_info: DeviceInfo, reading_unique_id: str
) -> SensorEntity:
    """The flow of the DSMR 2.2/4 gas meter (its reading on the main telegram)."""
    unique_id = f"{reading_unique_id}_flow"
    return FlowSensor(coordinator, GAS_FLOW, device_info, unique_id, MAIN_GAS_KEY)
