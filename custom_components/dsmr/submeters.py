"""The meter's M-Bus sub-meters (gas, water, heat, cooling): devices and entities as they appear.

A sub-meter gets its device, its reading and (gas and water in m³) its flow once two publishes
in a row name the same identifier on its channel with a reading: a meter that makes up an
identifier in every telegram makes none. It is remembered in the entry's data, one per channel,
so it exists at the next start before any telegram; one core made is found in the registry,
with its unique id (core's: the bare identifier, or `<serial>_<channel>` without one). At most
MAX_SUBMETERS per meter: past that a log line and a repair issue say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass as Class,
    SensorEntity,
    SensorStateClass as State,
)
from homeassistant.const import UnitOfEnergy, UnitOfVolume, UnitOfVolumeFlowRate
from homeassistant.core import callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .const import (
    CONF_MBUS_DEVICES,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DEVICE_NAME_COOLING,
    DEVICE_NAME_GAS,
    DEVICE_NAME_HEAT,
    DEVICE_NAME_WATER,
    DOMAIN,
    LOGGER,
)
from .coordinator import DsmrConfigEntry
from .entity import DsmrSensor, DsmrSensorEntityDescription, readable
from .migration import async_move_gas_to_mbus
from .p1.flow_rate import FlowState
from .p1.snapshot import Snapshot, SubMeter, flow_key
from .p1.telegram import ha_unit
from .repairs import async_submeters_within_cap, async_too_many_submeters

MAX_SUBMETERS: Final = 8  # a meter has up to 4; dsmr_parser reads channels 1-9
# EN 13757-3 device type -> kind of sub-meter and its device's name.
KINDS: Final = {
    3: ("gas", DEVICE_NAME_GAS),
    4: ("heat", DEVICE_NAME_HEAT),
    6: ("water", DEVICE_NAME_WATER),
    7: ("water", DEVICE_NAME_WATER),
    10: ("cooling", DEVICE_NAME_COOLING),
    11: ("cooling", DEVICE_NAME_COOLING),
    12: ("heat", DEVICE_NAME_HEAT),
    13: ("heat", DEVICE_NAME_HEAT),
}
# What core's sub-meter entities were made for: by translation key, else by device class.
CORE_KINDS: Final = {"gas_meter_reading": 3, "water_meter_reading": 7, "heat_meter_reading": 4}
CORE_CLASSES: Final = {Class.GAS.value: 3, Class.WATER.value: 7, Class.ENERGY.value: 4}


def _reading(kind: str, cls: Class, unit: str) -> DsmrSensorEntityDescription:
    return DsmrSensorEntityDescription(
        key=f"{kind}_reading",
        translation_key=f"{kind}_meter_reading",
        obis_name="MBUS_METER_READING",
        device_class=cls,
        state_class=State.TOTAL_INCREASING,
        native_unit_of_measurement=unit,
        value_fn=lambda s: None,  # made for each sub-meter by `_entities`
    )


READINGS: Final = {
    "gas": _reading("gas", Class.GAS, UnitOfVolume.CUBIC_METERS),
    "water": _reading("water", Class.WATER, UnitOfVolume.CUBIC_METERS),
    "heat": _reading("heat", Class.ENERGY, UnitOfEnergy.GIGA_JOULE),
    "cooling": _reading("cooling", Class.ENERGY, UnitOfEnergy.GIGA_JOULE),
}
GAS_FLOW: Final = DsmrSensorEntityDescription(
    key="gas_flow",
    translation_key="gas_flow",
    device_class=Class.VOLUME_FLOW_RATE,
    state_class=State.MEASUREMENT,
    native_unit_of_measurement=UnitOfVolumeFlowRate.CUBIC_METERS_PER_HOUR,
    suggested_display_precision=3,
    value_fn=lambda s: None,  # made for each flow by `flow`
)
WATER_FLOW: Final = replace(
    GAS_FLOW,
    key="water_flow",
    translation_key="water_flow",
    native_unit_of_measurement=UnitOfVolumeFlowRate.LITERS_PER_MINUTE,
    suggested_display_precision=1,
)


def _local(at: datetime | None) -> str | None:
    return None if at is None else dt_util.as_local(at).isoformat()


def flow(description: DsmrSensorEntityDescription, key: str) -> DsmrSensorEntityDescription:
    """The flow sensor of the sub-meter whose flow is `key`: m³/h, or L/min for water."""
    factor = 1000 / 60 if description is WATER_FLOW else 1

    def value(s: Snapshot) -> float | None:
        m3h = (s.flows.get(key) or FlowState()).m3h
        return None if m3h is None else m3h * factor

    def attributes(s: Snapshot) -> dict[str, Any]:
        state = s.flows.get(key) or FlowState()
        return {
            "interval": state.interval_s,
            "reading_at": None if state.last is None else _local(state.last.at),
        }

    return replace(description, value_fn=value, attributes_fn=attributes)


class Submeters:
    """Makes, remembers and restores the entities of a meter's sub-meters."""

    def __init__(self, entry: DsmrConfigEntry, add: AddConfigEntryEntitiesCallback) -> None:
        """For one entry; `add` adds entities made after setup."""
        self.entry = entry
        self.add = add
        self.coordinator = entry.runtime_data.coordinator
        self.hass = self.coordinator.hass
        self.unique_ids: set[str] = set()  # one per sub-meter: what the cap counts
        self._settled: dict[int, tuple[str | None, bool]] = {}  # channel -> looked at as
        self._published = 0
        self._named: dict[int, str | None] = {}  # channel -> identifier, at the last publish
        self._logged: set[int] = set()  # unsupported device types, said once
        self._full = False

    def restore(self) -> list[SensorEntity]:
        """Entities of the sub-meters seen before: remembered by us, or left by core."""
        entities: list[SensorEntity] = []
        for known in self._one_per_channel():
            if known["unit"] is not None:  # (an earlier release remembered channels without)
                entities += self._entities(
                    known["channel"], known["type"], known["id"], known["unit"]
                )
        for channel, device_type, ident, unit in self._left_by_core():
            entities += self._entities(channel, device_type, ident, unit)
        if len(self.unique_ids) > MAX_SUBMETERS:
            self._cap_met()  # an earlier release made them: the user can delete stale ones
        else:
            async_submeters_within_cap(self.hass, self.entry)
        return entities

    def _one_per_channel(self) -> list[Mapping[str, Any]]:
        """The remembered sub-meters, the latest of each channel (earlier releases kept all)."""
        before: list[Mapping[str, Any]] = self.entry.data.get(CONF_MBUS_DEVICES, [])
        latest = {k["channel"]: k for k in before}
        if len(latest) == len(before):
            return before
        known = [k for k in before if latest[k["channel"]] is k]
        self._store(known)
        return known

    def _left_by_core(self) -> list[tuple[int, int, str | None, str | None]]:
        """Sub-meter entities in the registry that this entry has not remembered (core's)."""
        data = self.entry.data
        serials = {data.get(CONF_SERIAL_ID), data.get(CONF_SERIAL_ID_GAS), self.entry.entry_id}
        found: list[tuple[int, int, str | None, str | None]] = []
        registry = er.async_get(self.hass)
        for reg in er.async_entries_for_config_entry(registry, self.entry.entry_id):
            device_type = CORE_KINDS.get(str(reg.translation_key)) or CORE_CLASSES.get(
                str(reg.original_device_class)
            )
            if reg.domain != "sensor" or device_type is None:
                continue
            prefix, _, channel = reg.unique_id.rpartition("_")
            if "_" not in reg.unique_id:  # the bare M-Bus identifier
                found.append((0, device_type, reg.unique_id, reg.unit_of_measurement))
            elif prefix in serials and channel.isdigit():  # one without an identifier
                found.append((int(channel), device_type, None, reg.unit_of_measurement))
        return found

    @callback
    def update(self) -> None:
        """On a publish: look at the channels that are new or changed."""
        snapshot = self.coordinator.data
        if snapshot is None or snapshot.published == self._published:
            return  # nothing new (a listener call for availability)
        previous = self._named if snapshot.published == self._published + 1 else {}
        self._published = snapshot.published
        self._named = {meter.channel: meter.identifier for meter in snapshot.submeters}
        for meter in snapshot.submeters:
            looked = (meter.identifier, meter.has_reading)
            again = previous.get(meter.channel, "") == meter.identifier
            if self._settled.get(meter.channel) != looked and self._found(meter, again):
                self._settled[meter.channel] = looked

    def _found(self, meter: SubMeter, again: bool) -> bool:
        """Add the entities of a sub-meter; False: look again at the next publish."""
        kind = meter.device_type
        if kind is None or not meter.has_reading:
            return True  # no entity until a reading comes (as core)
        if kind not in KINDS:
            if kind not in self._logged:
                self._logged.add(kind)
                LOGGER.info(
                    "M-Bus channel %s: device type %s is not supported", meter.channel, kind
                )
            return True
        ident = meter.identifier
        unique_id = self._ids(meter.channel, kind, ident)[1]
        known = unique_id in self.unique_ids or any(
            k["channel"] == meter.channel and k["id"] == ident
            for k in self.entry.data.get(CONF_MBUS_DEVICES, [])
        )
        if not (known or again):
            return False  # named by one publish only: a made-up identifier is no device
        if ident:
            async_move_gas_to_mbus(self.hass, self.entry, ident)
        if unique_id in self.unique_ids:
            return True
        if len(self.unique_ids) >= MAX_SUBMETERS:
            self._cap_met()
            return True
        entities = self._entities(meter.channel, kind, ident, meter.unit)
        record = {"channel": meter.channel, "type": kind, "id": ident, "unit": meter.unit}
        known_list = self.entry.data.get(CONF_MBUS_DEVICES, [])
        self._store([k for k in known_list if k["channel"] != meter.channel] + [record])
        self.add(entities)
        return True

    def _store(self, known: list[Mapping[str, Any]]) -> None:
        if known != self.entry.data.get(CONF_MBUS_DEVICES, []):
            self.hass.config_entries.async_update_entry(
                self.entry, data={**self.entry.data, CONF_MBUS_DEVICES: known}
            )

    def _cap_met(self) -> None:
        if not self._full:
            self._full = True
            async_too_many_submeters(self.hass, self.entry, MAX_SUBMETERS)

    def _ids(self, channel: int, device_type: int, ident: str | None) -> tuple[str, str]:
        """The sub-meter's device serial and its reading's unique id (core's)."""
        data = self.entry.data
        serial = ident or (data.get(CONF_SERIAL_ID_GAS) if device_type == 3 else None)
        serial = serial or data.get(CONF_SERIAL_ID) or self.entry.entry_id
        return serial, (serial if ident else f"{serial}_{channel}")

    def _entities(
        self, channel: int, device_type: int, ident: str | None, unit: str | None
    ) -> list[SensorEntity]:
        """The reading's entity and (gas and water in m³) the flow's."""
        serial, unique_id = self._ids(channel, device_type, ident)
        if unique_id in self.unique_ids:
            return []
        self.unique_ids.add(unique_id)
        kind, name = KINDS[device_type]
        device = DeviceInfo(identifiers={(DOMAIN, serial)}, name=name)
        if ident:
            device["serial_number"] = readable(ident)

        def sub_meter(s: Snapshot) -> SubMeter | None:
            return s.submeter(channel, ident)

        def value(s: Snapshot) -> float | None:
            return None if (meter := s.submeter(channel, ident)) is None else meter.value

        reading = replace(READINGS[kind], value_fn=value, line_fn=sub_meter)
        unit = ha_unit(unit)  # (an earlier release remembered units as sent)
        entities: list[SensorEntity] = [
            DsmrSensor(self.entry, reading, device, unique_id, unit=unit)
        ]
        if kind in ("gas", "water") and unit == UnitOfVolume.CUBIC_METERS:
            rate = flow(GAS_FLOW if kind == "gas" else WATER_FLOW, flow_key(channel, ident))
            entities.append(DsmrSensor(self.entry, rate, device, f"{unique_id}_flow"))
        return entities
