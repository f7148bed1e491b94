"""The entities of a meter's snapshots, and the meters' devices.

`DsmrSensor` shows `description.value_fn(snapshot)` in its line's unit, with the device class
that unit implies; its state is written only when it changed, a register's by its policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass as Class,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.sensor.const import DEVICE_CLASS_STATE_CLASSES, DEVICE_CLASS_UNITS
import homeassistant.const as ha
from homeassistant.const import EntityCategory
from homeassistant.core import callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.typing import StateType
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from . import yaml_import
from .const import (
    CONF_DSMR_VERSION,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DEVICE_NAME_ELECTRICITY,
    DEVICE_NAME_GAS,
    DOMAIN,
)
from .coordinator import DsmrConfigEntry, DsmrCoordinator
from .p1.rebroadcast import RebroadcastServer
from .p1.snapshot import Snapshot
from .p1.telegram import unit as line_unit
from .policy import RegisterPolicy, Verdict
from .repairs import async_register_new_cycle

type Value = StateType | datetime
HEALTH_REFRESH: Final = timedelta(seconds=10)  # faults make no telegrams: health refreshes
DECREASE: Final = (
    "%s went down from %s to %s; showing %s until the lower value lasts an hour"
    " or the meter reports another equipment identifier"
)
# Classes a unit can imply, first match wins (m³ of an energy meter is a volume).
UNIT_CLASSES: Final = (
    Class.ENERGY,
    Class.POWER,
    Class.REACTIVE_ENERGY,
    Class.REACTIVE_POWER,
    Class.APPARENT_POWER,
    Class.VOLTAGE,
    Class.CURRENT,
    Class.FREQUENCY,
    Class.VOLUME,
    Class.DURATION,
)
# A unit as Home Assistant's constant for it (the same text), where it has one.
HA_UNITS: Final[dict[str, str]] = {
    str(unit): unit
    for units in (
        ha.UnitOfApparentPower,
        ha.UnitOfElectricCurrent,
        ha.UnitOfElectricPotential,
        ha.UnitOfEnergy,
        ha.UnitOfFrequency,
        ha.UnitOfPower,
        ha.UnitOfReactiveEnergy,
        ha.UnitOfReactivePower,
        ha.UnitOfTime,
        ha.UnitOfVolume,
    )
    for unit in units
}


class DsmrEntity(CoordinatorEntity[DsmrCoordinator]):
    """An entity of a meter's device, unavailable while the meter is."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: DsmrCoordinator,
        description: EntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
    ) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_device_info = device_info
        self._attr_unique_id = unique_id


@dataclass(frozen=True, kw_only=True)
class DsmrSensorEntityDescription(SensorEntityDescription):
    """A value of the snapshot as a sensor."""

    value_fn: Callable[[Snapshot], Value]
    attributes_fn: Callable[[Snapshot], dict[str, Any]] | None = None
    # Its line: the value's unit; while absent, the last value stays (None: the description's unit).
    line_fn: Callable[[Snapshot], Any] | None = None
    line_only: bool = True  # the value reads nothing but its line (and the window's mean)
    obis_name: str | None = None  # the value name it is made for
    sums: tuple[str, ...] = ()  # or, without it, the value names it sums
    average: str | None = None  # what the window averages for it: its mean is shown
    versions: frozenset[str] | None = None  # made only for these versions
    enabled_versions: frozenset[str] | None = None  # on by default only for these
    is_gas: bool = False  # DSMR 2.2/4 gas on the main telegram: the gas meter's device

    def enabled_in(self, version: str) -> bool:
        """Whether the entity is enabled by default on a meter of `version`."""
        versions = self.enabled_versions
        return self.entity_registry_enabled_default and (versions is None or version in versions)


def device_class_for(
    unit: str | None, default: Class | None, state_class: str | None
) -> Class | None:
    """`default` if it takes `unit`, else the unit's (gas in GJ: energy, as core), else none."""
    if unit is None or default is None or unit in DEVICE_CLASS_UNITS.get(default, {unit}):
        return default
    for cls in UNIT_CLASSES:
        if unit in DEVICE_CLASS_UNITS[cls]:
            allowed = state_class is None or state_class in DEVICE_CLASS_STATE_CLASSES[cls]
            return cls if allowed else None
    return None


class DsmrSensor(DsmrEntity, RestoreSensor):
    """A value of the snapshot; its state is written only when it changed."""

    entity_description: DsmrSensorEntityDescription
    _unrecorded_attributes = frozenset({"min", "max", "samples", "reading_at"})
    _written: tuple[Any, ...] | None = None
    _inputs: tuple[Any, Any] = (None, None)  # the line and mean of the state written

    def __init__(
        self,
        entry: DsmrConfigEntry,
        description: DsmrSensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
        *,
        unit: str | None = None,
    ) -> None:
        """Initialize in `unit`, the line's if known (else the description's)."""
        coordinator = entry.runtime_data.coordinator
        super().__init__(coordinator, description, device_info, unique_id)
        self._entry = entry
        self._attr_extra_state_attributes = {}
        self._set_unit(unit or description.native_unit_of_measurement)
        self._policy = RegisterPolicy(
            register=description.state_class is SensorStateClass.TOTAL_INCREASING,
            # Sub-meters' readings move every 5 minutes anyway.
            per_period=bool(coordinator.seconds) and description.obis_name != "MBUS_METER_READING",
            precision=yaml_import.user_precision(entry.data),
        )
        self._attr_entity_registry_enabled_default = description.enabled_in(
            entry.data[CONF_DSMR_VERSION]
        )

    def _set_unit(self, unit: str | None) -> None:
        d = self.entity_description
        self._attr_native_unit_of_measurement = unit = HA_UNITS.get(unit or "", unit)
        self._attr_device_class = device_class_for(unit, d.device_class, d.state_class)

    async def async_added_to_hass(self) -> None:
        """Restore the last value (in its unit) before the first telegram arrives."""
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = last.native_value
            if last.native_unit_of_measurement is not None and self.entity_description.line_fn:
                self._set_unit(last.native_unit_of_measurement)
                self._sync_registry()
        await super().async_added_to_hass()
        if self.coordinator.data is not None:
            self._handle_coordinator_update()

    @callback
    def _handle_coordinator_update(self) -> None:
        try:
            self._update()
        except Exception as err:  # counted and logged; the other entities update
            self.coordinator.failed(err, f"entity {self.entity_id}")

    def _update(self) -> None:
        snapshot = self.coordinator.data
        available = self.coordinator.last_update_success
        value, attributes = self._attr_native_value, self._attr_extra_state_attributes
        moved = attributes  # what, beside the value, is worth a state write
        inputs: tuple[Any, Any] = (None, None)
        if available and snapshot is not None:
            d = self.entity_description
            line = d.line_fn(snapshot) if d.line_fn else None
            spread = snapshot.spreads.get(d.average) if d.average else None
            # The reader keeps an unchanged line's object: the same line and mean say nothing
            # new (a held-back register still waits for its hour).
            if d.line_only and line is not None and not self._policy.holding:
                inputs = (line, spread)
                if line is self._inputs[0] and spread is self._inputs[1]:
                    return
            present = d.line_fn is None or line is not None
            reading = d.value_fn(snapshot) if present else None
            # Not in the telegram, or a number that cannot be read (NaN): the last value stays.
            if present and (d.line_fn is None or reading is not None or not d.state_class):
                unit = line_unit(line) if isinstance(reading, float) else None
                if unit is not None and unit != self._attr_native_unit_of_measurement:
                    self._set_unit(unit)
                if self._policy.register:
                    reading = self._judged(reading, snapshot.replaced)
                value = reading
                moved = attributes = _local(d.attributes_fn(snapshot)) if d.attributes_fn else {}
                if spread is not None:
                    # A mean's min, max and samples go along with the next write, never cause
                    # one: a zero that stays zero is not written again.
                    attributes, moved = spread.attributes(), {}
        written = (available, value, self._attr_native_unit_of_measurement, moved)
        if written == self._written:
            self._inputs = inputs
            return
        shown = self._written[1] if self._written is not None and self._written[0] else None
        if snapshot is not None and not self._policy.write_now(
            shown, value, snapshot.period, snapshot.closes_period
        ):
            return
        before, self._written, self._inputs = self._written, written, inputs
        self._attr_native_value, self._attr_extra_state_attributes = value, attributes
        self.async_write_ha_state()
        if before is None or before[2] != written[2]:  # the first write, or another unit
            self._sync_registry()

    def _sync_registry(self) -> None:
        """Give the registry the unit and class shown: it describes the entity while unloaded."""
        reg, unit, cls = self.registry_entry, self.unit_of_measurement, self.device_class
        if reg is not None and (reg.unit_of_measurement, reg.original_device_class) != (unit, cls):
            er.async_get(self.hass).async_update_entity(
                self.entity_id, unit_of_measurement=unit, original_device_class=cls
            )

    def _judged(self, reading: Value, replaced: bool) -> Value:
        """A register's reading as its policy shows it (held back, or a new cycle told)."""
        judgement = self._policy.decide(self._attr_native_value, reading, replaced=replaced)
        shown = judgement.shown
        if judgement.hold_starts:
            self.coordinator.counters.fault(
                "decrease", DECREASE, self.entity_id, shown, reading, shown
            )
        elif judgement.verdict is Verdict.NEW_CYCLE:
            unit = self._attr_native_unit_of_measurement or ""
            before, after = f"{shown} {unit}", f"{reading} {unit}"
            async_register_new_cycle(self.hass, self._entry, self.entity_id, before, after)
        return cast(Value, judgement.value)


def _local(attributes: dict[str, Any]) -> dict[str, Any]:
    """Times as the user reads them: local."""
    return {
        k: dt_util.as_local(v).isoformat() if isinstance(v, datetime) else v
        for k, v in attributes.items()
    }


def readable(identifier: str) -> str:
    """An equipment identifier as text where it is hex-encoded ASCII (unique ids keep the hex)."""
    try:
        text = bytes.fromhex(identifier).decode("ascii")
    except ValueError:
        return identifier
    return text if text.isprintable() and text.strip() else identifier


def main_device(entry: DsmrConfigEntry, *, gas: bool = False) -> tuple[DeviceInfo, str]:
    """The electricity (or DSMR 2.2/4 gas) meter's device and its serial, as core makes them."""
    if gas:
        serial = entry.data.get(CONF_SERIAL_ID_GAS) or entry.entry_id
        return DeviceInfo(identifiers={(DOMAIN, serial)}, name=DEVICE_NAME_GAS), serial
    serial = entry.data.get(CONF_SERIAL_ID) or entry.entry_id
    info = DeviceInfo(identifiers={(DOMAIN, serial)}, name=DEVICE_NAME_ELECTRICITY)
    info["model"] = f"DSMR {entry.data[CONF_DSMR_VERSION]}"
    if entry.data.get(CONF_SERIAL_ID):
        info["serial_number"] = readable(entry.data[CONF_SERIAL_ID])
    return info, serial


class HealthSensor(DsmrEntity, SensorEntity):
    """A number about the connection, refreshed every HEALTH_REFRESH (faults make no telegrams)."""

    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_entity_registry_enabled_default = False
    _written: tuple[Any] | None = None
    _pushed = False

    async def async_added_to_hass(self) -> None:
        """Also refresh on a timer."""
        await super().async_added_to_hass()
        self.async_on_remove(async_track_time_interval(self.hass, self._refresh, HEALTH_REFRESH))
        self._refresh()

    @property
    def available(self) -> bool:
        """Health is known even while the meter is not."""
        return True

    @callback
    def _handle_coordinator_update(self) -> None:
        if not self._pushed or not self.coordinator.last_update_success:
            self._pushed = self.coordinator.data is not None
            self._refresh()  # the first push's value and an outage at once; the rest on the timer

    @callback
    def _refresh(self, _now: datetime | None = None) -> None:
        value = getattr(self.coordinator.health(), self.entity_description.key)
        if (value,) != self._written:
            self._written = (value,)
            self._attr_native_value = value
            self.async_write_ha_state()


class ClientsSensor(SensorEntity):
    """Programs reading the meter through the re-broadcast (not meter data: no coordinator)."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self,
        server: RebroadcastServer,
        description: SensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
    ) -> None:
        """Count the clients of `server` (never their addresses)."""
        self._server, self.entity_description = server, description
        self._attr_device_info = device_info
        self._attr_unique_id = unique_id

    async def async_added_to_hass(self) -> None:
        """Write the count whenever it changes."""
        self.async_on_remove(self._server.add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> int:
        """Connected clients."""
        return self._server.clients
