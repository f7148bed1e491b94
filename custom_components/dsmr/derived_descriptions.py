"""Descriptions of what the meter's lines imply: the capacity tariff's forecast, and the flows.

- On the electricity meter of a meter that sends the quarter-hour demand (``1-0:1.4.0``,
  Belgian meters): *Quarter-hour forecast*, *Peak headroom* (sensors) and *New monthly peak
  ahead* (binary sensor), from the snapshot's `Derived` (derived.py, demand.py).
- On every gas and water meter whose reading is in m³: *Gas flow* (m³/h) or *Water flow*
  (L/min), created with the reading's entity (mbus.py; the DSMR 2.2/4 gas meter in sensor.py).
  A flow entity keeps the flow's state (the last capture and its time, flow.py) across
  restarts as its extra restore data (`FlowRestoreData`), and gives it back to the snapshot
  builder at startup, so the first capture after a short restart has a flow at once.

The entities are in their platforms (sensor.py, binary_sensor.py; base in entity.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.binary_sensor import BinarySensorEntityDescription
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfPower, UnitOfVolume, UnitOfVolumeFlowRate
from homeassistant.helpers.restore_state import ExtraStoredData
from homeassistant.util import dt as dt_util

from .const import MBUS_TYPE_GAS, MBUS_TYPE_WARM_WATER, MBUS_TYPE_WATER
from .derived import Derived
from .flow import FlowState, liters_per_minute
from .units import ha_unit

type Attributes = dict[str, Any]


def local_time(at: datetime | None) -> str | None:
    """`at` in the local time zone, ISO formatted (None stays None)."""
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
        "quarter_start": local_time(quarter.quarter_start),
        "quarter_end": local_time(quarter.quarter_end),
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


def new_peak_attributes(derived: Derived) -> Attributes:
    """Attributes of *New monthly peak ahead*."""
    alarm, quarter = derived.alarm, derived.quarter
    return {
        "limit": alarm.limit_kw,
        "since": local_time(alarm.since),
        "quarter_end": None if quarter is None else local_time(quarter.quarter_end),
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


@dataclass(frozen=True, kw_only=True)
class FlowSensorEntityDescription(SensorEntityDescription):
    """A sub-meter's flow: its `FlowState` (m³/h) in the description's unit."""

    value_fn: Callable[[FlowState], float | None]


def flow_attributes(flow: FlowState) -> Attributes:
    """The interval the flow is the mean of, and the time of its last reading.

    The time is not recorded (`FlowSensor`): it moves with every reading, and each new set of
    attributes is a row of the recorder's; the state's own time says when the reading came.
    """
    return {
        "interval": flow.interval_s,
        "reading_at": None if flow.last is None else local_time(flow.last.at),
    }


def _flow(
    key: str, unit: str, precision: int, value_fn: Callable[[FlowState], float | None]
) -> FlowSensorEntityDescription:
    return FlowSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.VOLUME_FLOW_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=unit,
        suggested_display_precision=precision,
        value_fn=value_fn,
    )


GAS_FLOW = _flow("gas_flow", UnitOfVolumeFlowRate.CUBIC_METERS_PER_HOUR, 3, lambda f: f.m3h)
WATER_FLOW = _flow(
    "water_flow",
    UnitOfVolumeFlowRate.LITERS_PER_MINUTE,
    1,
    lambda f: liters_per_minute(f.m3h),
)

# EN 13757-3 device type -> its flow (derived.py computes flows for exactly these types).
FLOW_SENSORS: Mapping[int, FlowSensorEntityDescription] = {
    MBUS_TYPE_GAS: GAS_FLOW,
    MBUS_TYPE_WARM_WATER: WATER_FLOW,
    MBUS_TYPE_WATER: WATER_FLOW,
}


def mbus_flow(device_type: int, unit: str | None) -> FlowSensorEntityDescription | None:
    """The flow of an M-Bus gas or water meter whose reading is in m³ (else None)."""
    description = FLOW_SENSORS.get(device_type)
    if description is None or ha_unit(unit) != UnitOfVolume.CUBIC_METERS:
        return None
    return description


@dataclass(frozen=True, slots=True)
class FlowRestoreData(ExtraStoredData):
    """A flow's state as Home Assistant stores it at shutdown."""

    state: FlowState

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (flow.py's `FlowState.as_dict`)."""
        return self.state.as_dict()
