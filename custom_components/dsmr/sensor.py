"""Sensors for every value a DSMR telegram carries, and for the connection's health.

What each value becomes is described elsewhere: the meter's values in descriptions.py
(`SENSORS`; `MBUS_SENSORS` for the gas, water, heat and cooling sub-meters on M-Bus channels),
the forecast and the flows in derived_descriptions.py. Entities for the configured version exist
from setup on and restore their last state; M-Bus entities are added whenever a channel first
shows up and remembered for the next start (mbus.py), and so are OBIS lines no specification
names (generic.py). Every entity shows the coordinator's snapshot: a value is the meter's number
in the unit its line carries (`LineUnitEntity`, entity.py); what a register shows and when it is
written is its `RegisterPolicy`'s decision (policy.py).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from homeassistant.components.sensor import RestoreSensor, SensorEntity, SensorStateClass
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from . import yaml_import
from .const import CONF_DSMR_VERSION, CONF_SERIAL_ID_GAS
from .coordinator import DsmrConfigEntry, DsmrCoordinator
from .derived import FORECAST, MAIN_GAS_KEY, MAIN_GAS_READINGS
from .derived_descriptions import (
    DEMAND_SENSORS,
    GAS_FLOW,
    DemandSensorEntityDescription,
    FlowRestoreData,
    FlowSensorEntityDescription,
    flow_attributes,
)
from .descriptions import DsmrSensorEntityDescription, has_demand, version_sensors
from .entity import DerivedEntity, DsmrEntity, LineUnitEntity, RefreshingEntity, main_device
from .flow import FlowState
from .generic import (
    GenericObisEntities,
    line_value,
    obis_description,
    restored_value,
    state_class_of,
)
from .health import HEALTH_SENSORS, HealthSensorEntityDescription
from .mbus import MbusEntities
from .policy import RegisterPolicy, Verdict
from .rebroadcast import RebroadcastServer
from .sharing import CLIENTS
from .snapshot import MBUS_CHANGED, Reading, Snapshot, Spread
from .units import ha_unit

# A `sensor: - platform: dsmr` block in YAML: validated, then imported as an entry.
PLATFORM_SCHEMA = yaml_import.PLATFORM_SCHEMA
async_setup_platform = yaml_import.async_setup_platform
PARALLEL_UPDATES = 0  # push: entities never poll


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DsmrConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create the meter's entities now, and M-Bus and OBIS-line entities as they appear."""
    coordinator = entry.runtime_data.coordinator
    version = entry.data[CONF_DSMR_VERSION]
    descriptions = version_sensors(version)
    gas = CONF_SERIAL_ID_GAS in entry.data  # a DSMR 2.2/4 gas meter on the main telegram
    device, serial = main_device(entry)
    entities: list[SensorEntity] = [
        DsmrSensor(entry, d, *main_device(entry, gas=d.is_gas))
        for d in descriptions
        if gas or not d.is_gas
    ]
    entities.extend(
        HealthSensor(coordinator, d, device, f"{serial}_{d.key}") for d in HEALTH_SENSORS
    )
    if has_demand(version):
        entities.extend(
            DemandSensor(coordinator, d, device, f"{serial}_{d.key}") for d in DEMAND_SENSORS
        )
    if gas:
        gas_device, gas_serial = main_device(entry, gas=True)
        entities.extend(
            FlowSensor(
                coordinator, GAS_FLOW, gas_device, f"{gas_serial}_{d.key}_flow", MAIN_GAS_KEY
            )
            for d in descriptions
            if d.obis_name in MAIN_GAS_READINGS
        )
    mbus = MbusEntities(
        entry, async_add_entities, partial(DsmrSensor, entry), partial(FlowSensor, coordinator)
    )
    entities.extend(mbus.restore())
    # OBIS lines no specification names: remembered ones now, new ones as they appear.
    generic = GenericObisEntities(
        entry,
        async_add_entities,
        lambda code, unit: GenericObisSensor(generic, code, unit, device, serial),
    )
    entities.extend(generic.restore())
    if (server := entry.runtime_data.rebroadcast) is not None:
        entities.append(RebroadcastClientsSensor(server, device, serial))
    async_add_entities(entities)
    for manager in (mbus, generic):
        entry.async_on_unload(coordinator.async_add_listener(manager.update))
        manager.update()  # a telegram may have come while setup opened the port


class DsmrSensor(LineUnitEntity, RestoreSensor):
    """One value of a meter; writes its state only when that value changed."""

    entity_description: DsmrSensorEntityDescription
    _unrecorded_attributes = frozenset({"min", "max", "samples"})

    def __init__(
        self,
        entry: DsmrConfigEntry,
        description: DsmrSensorEntityDescription,
        device_info: DeviceInfo,
        serial: str,
        *,
        channel: int | None = None,
        mbus_id: str | None = None,
        unit: str | None = None,
    ) -> None:
        """Initialize the sensor; `unit` is the meter's, if known (else the specification's).

        `serial`: the device's serial for a value of the meter, the unique id for an M-Bus one.
        """
        if channel is None:
            serial = f"{serial}_{description.key}"
        super().__init__(entry, description, device_info, serial, unit)
        self._channel = channel
        self._mbus_id = mbus_id
        register = description.state_class is SensorStateClass.TOTAL_INCREASING
        self._policy = RegisterPolicy(
            register=register,
            per_period=bool(self.coordinator.window) and channel is None,
            precision=yaml_import.user_precision(entry.data),
        )
        self._last_reading: Reading | None = None
        # The snapshot (number) whose reading this entity shows with nothing held back: the
        # next one needs no look unless it changed that reading (`Snapshot.changed`).
        self._quiet = -1
        self._changed_key = description.key if channel is None else MBUS_CHANGED
        enabled = description.enabled_in(entry.data[CONF_DSMR_VERSION])
        self._attr_entity_registry_enabled_default = enabled

    async def async_added_to_hass(self) -> None:
        """Restore the last value before the first telegram arrives."""
        if self._channel is None:
            self.async_on_remove(self.coordinator.async_show(self.entity_description.key))
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = last.native_value
            if last.native_value is not None:
                self._policy.present()
            self._restore_unit(last.native_unit_of_measurement)
        await super().async_added_to_hass()

    @callback
    def _handle_coordinator_update(self) -> None:
        """Take a push; the usual one (nothing new for this entity) costs one look."""
        coordinator = self.coordinator
        snapshot = coordinator.data
        if (
            snapshot is not None
            and snapshot.number == self._quiet + 1
            and self._changed_key not in snapshot.changed
            and coordinator.last_update_success
        ):
            self._quiet = snapshot.number  # its reading is the one shown: nothing to do
            return
        self._quiet = -1
        super()._handle_coordinator_update()
        written = self._written
        if snapshot and self._last_reading and written and written[0] and not self._policy.holding:
            self._quiet = snapshot.number  # shown, nothing held back: the next push may skip

    def _spread(self, snapshot: Snapshot) -> Spread | None:
        """The window's spread of an averaged value (None: not averaged, or one telegram)."""
        average = self.entity_description.average
        return snapshot.spreads.get(self.entity_description.key) if average else None

    def _reading(self, snapshot: Snapshot) -> Reading | None:
        """The value in the snapshot (an M-Bus reading: by its sub-meter)."""
        if self._channel is None:
            return self.entity_description.value_fn(snapshot)
        return snapshot.mbus_value(self._channel, self._mbus_id)

    def _update(self) -> None:
        if self._upgrade.pending:
            return
        coordinator = self.coordinator
        available = coordinator.last_update_success
        snapshot = coordinator.data
        value = self._attr_native_value
        policy = self._policy
        if available and snapshot is not None:
            description = self.entity_description
            reading = self._reading(snapshot)
            spread = self._spread(snapshot)  # not shown already: the push's look said so
            if reading is None:
                self._last_reading = None
                if self._channel is None and policy.absent() and self.entity_id:
                    coordinator.async_auto_disable(self.entity_id, str(self.unique_id))
            else:
                policy.present()
                # Remembered after: an upgrade that ends at once shows this reading itself.
                if not self._follow_unit(reading.unit, reading.value):
                    self._last_reading = None  # shown once the statistics upgrade allows it
                    return
                self._last_reading = reading
                if spread is not None:
                    value = spread.mean
                    self._attr_extra_state_attributes = spread.attributes()
                elif policy.register:  # judged against what it shows (policy.py)
                    judgement = policy.decide(
                        self._attr_native_value, reading.value, replaced=coordinator.meter_replaced
                    )
                    if judgement.verdict is not Verdict.SHOW:  # held back, or a new cycle
                        shown_unit = self._attr_native_unit_of_measurement
                        coordinator.async_explain(self.entity_id, judgement, shown_unit)
                    value = judgement.value
                else:
                    value = reading.value
                if (
                    spread is None
                    and reading.obj is not None
                    and description.attributes_fn is not None
                ):
                    attributes = description.attributes_fn(reading.obj) or {}
                    self._attr_extra_state_attributes = attributes
        before = self._written
        if before == (available, value, self._attr_native_unit_of_measurement):
            return
        shown = before[1] if before is not None and before[0] else None  # while available
        if not policy.write_now(shown, value, snapshot):
            self._last_reading = None  # look again on the next push, changed or not
            return
        self._write(available, value)


class HealthSensor(RefreshingEntity, SensorEntity):
    """A number about the connection, refreshed on its timer (not on every telegram)."""

    entity_description: HealthSensorEntityDescription
    _every_push = False

    def _current(self) -> Any:
        return self.entity_description.value_fn(self.coordinator.health())

    @property
    def native_value(self) -> Any:
        """The value from the coordinator's health, as last refreshed."""
        return self._last


class GenericObisSensor(DsmrEntity, RestoreSensor):
    """One OBIS line that no specification names, as the meter sends it (see generic.py)."""

    _unrecorded_attributes = frozenset({"raw"})

    def __init__(
        self,
        manager: GenericObisEntities,
        code: str,
        unit: str | None,
        device_info: DeviceInfo,
        serial: str,
    ) -> None:
        """Initialize the sensor for an OBIS code, with the unit it was last seen with."""
        description = obis_description(code)
        unique_id = f"{serial}_{description.key}"
        super().__init__(manager.coordinator, description, device_info, unique_id)
        self.code = code
        self._manager = manager
        self._attr_extra_state_attributes = {"obis_code": code}
        self._unit: str | None = None
        self._set_unit(unit)
        self._line: str | None = None
        self._written: tuple[bool, Any, str | None] | None = None

    def _set_unit(self, unit: str | None) -> None:
        self._unit = unit
        native = ha_unit(unit)
        self._attr_native_unit_of_measurement = native
        self._attr_state_class = state_class_of(native)

    async def async_added_to_hass(self) -> None:
        """Restore the last value before the first telegram arrives."""
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = restored_value(last.native_value, self._unit)
        await super().async_added_to_hass()

    def _update(self) -> None:
        coordinator = self.coordinator
        available = coordinator.last_update_success
        snapshot = coordinator.data
        value = self._attr_native_value
        if available and snapshot is not None:
            line = snapshot.unknown_lines.get(self.code)
            if line is not None and line != self._line:  # a missing line keeps the last value
                self._line = line
                value, unit = line_value(line, self._unit)
                if unit != self._unit:
                    self._manager.unit_changed(self.entity_id, self.code, unit, self._unit)
                    self._set_unit(unit)
                self._attr_extra_state_attributes = {"obis_code": self.code, "raw": line}
        written = (available, value, self._unit)
        if written == self._written:
            return
        self._written = written
        self._attr_native_value = value
        self.async_write_ha_state()


class DemandSensor(DerivedEntity, SensorEntity):
    """Quarter-hour forecast or peak headroom (kW)."""

    entity_description: DemandSensorEntityDescription
    _needs = FORECAST

    def _update(self) -> None:
        if (derived := self._derived()) is not None:
            description = self.entity_description
            self._attr_native_value = description.value_fn(derived)
            self._attr_extra_state_attributes = description.attributes_fn(derived)
        self._show((self._attr_native_value, self._attr_extra_state_attributes))


class FlowSensor(DerivedEntity, SensorEntity, RestoreEntity):
    """Gas (m³/h) or water (L/min) flow of one sub-meter; its state survives restarts."""

    entity_description: FlowSensorEntityDescription
    _unrecorded_attributes = frozenset({"reading_at"})

    def __init__(
        self,
        coordinator: DsmrCoordinator,
        description: FlowSensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
        key: str,
    ) -> None:
        """Initialize for the flow `key` (derived.py's `flow_key`)."""
        super().__init__(coordinator, description, device_info, unique_id)
        self._key = key
        self._restored: FlowState | None = None
        self._flow: FlowState | None = None  # the state shown last

    async def async_added_to_hass(self) -> None:
        """Give the stored flow state to the snapshot builder, then subscribe."""
        if (extra := await self.async_get_last_extra_data()) is not None:
            state = FlowState.from_dict(extra.as_dict())
            self._restored = self.coordinator.restore_flow(self._key, state)
        await super().async_added_to_hass()

    @property
    def extra_restore_state_data(self) -> FlowRestoreData | None:
        """The flow's state (the last capture and its time) for the next start."""
        state = self.coordinator.flow(self._key) or self._restored
        return None if state is None else FlowRestoreData(state)

    def _update(self) -> None:
        derived = self._derived()
        flow = None if derived is None else derived.flows.get(self._key)
        if flow is not None and flow is not self._flow:  # the same state: shown already
            self._flow = flow
            self._attr_native_value = self.entity_description.value_fn(flow)
            self._attr_extra_state_attributes = flow_attributes(flow)
        self._show((self._attr_native_value, self._attr_extra_state_attributes))


class RebroadcastClientsSensor(SensorEntity):
    """Programs reading the meter through the re-broadcast (sharing.py), while it is shared.

    Not the coordinator's: the count is no meter data and changes while no telegram comes.
    No attributes: the clients' addresses are not shown.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description = CLIENTS

    def __init__(self, server: RebroadcastServer, device_info: DeviceInfo, serial: str) -> None:
        """Count the clients of `server`, on the meter's device."""
        self._server = server
        self._attr_device_info = device_info
        self._attr_unique_id = f"{serial}_rebroadcast_clients"

    async def async_added_to_hass(self) -> None:
        """Write the count whenever it changes."""
        self.async_on_remove(self._server.add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> int:
        """Connected clients."""
        return self._server.clients
