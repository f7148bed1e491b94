"""The meter's M-Bus sub-meters (gas, water, heat, cooling): their entities, made as they appear.

A sub-meter's entities are created the first time a telegram carries its channel with a reading
(a channel that only announces its type and identifier has none, as in core), remembered in the
entry's data, and created again at the next start before any telegram. Entities core made for
sub-meters are found in the entity registry and kept, with their unique ids; the reading's unit
is the line's, and its device class follows it (a gas meter in GJ is energy, as in core).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import (
    CONF_MBUS_DEVICES,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DOMAIN,
    LOGGER,
    MBUS_TYPE_GAS,
    MBUS_TYPE_HEAT,
    MBUS_TYPE_WATER,
)
from .coordinator import DsmrConfigEntry
from .derived import flow_key
from .derived_descriptions import FlowSensorEntityDescription, mbus_flow
from .descriptions import MBUS_SENSORS, SENSORS, DsmrSensorEntityDescription
from .entity import readable
from .migration import PRE_MBUS_GAS_SUFFIXES, async_move_gas_to_mbus
from .snapshot import MbusReading

# Translation key of a core M-Bus entity -> the M-Bus device type it was created for.
CORE_MBUS_TRANSLATION_KEYS = {
    "gas_meter_reading": MBUS_TYPE_GAS,
    "water_meter_reading": MBUS_TYPE_WATER,
    "heat_meter_reading": MBUS_TYPE_HEAT,
}
# Device class of a core M-Bus entity -> the M-Bus device type (registries without the key).
CORE_MBUS_TYPES = {
    SensorDeviceClass.GAS.value: MBUS_TYPE_GAS,
    SensorDeviceClass.WATER.value: MBUS_TYPE_WATER,
    SensorDeviceClass.ENERGY.value: MBUS_TYPE_HEAT,
}


class SensorFactory(Protocol):
    """Makes the sensor of a sub-meter."""

    def __call__(
        self,
        description: DsmrSensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
        /,
        *,
        channel: int,
        mbus_id: str | None,
        unit: str | None,
    ) -> SensorEntity:
        """Return the sensor."""


# Makes a flow sensor: (description, device, unique id, flow key), see derived.py's `flow_key`.
type FlowFactory = Callable[[FlowSensorEntityDescription, DeviceInfo, str, str], SensorEntity]


class MbusEntities:
    """Create, remember and restore the entities of a meter's M-Bus sub-meters."""

    def __init__(
        self,
        entry: DsmrConfigEntry,
        async_add_entities: AddConfigEntryEntitiesCallback,
        create: SensorFactory,
        create_flow: FlowFactory,
    ) -> None:
        """Initialize for one entry; `create` makes a reading's sensor, `create_flow` a flow's."""
        self.entry = entry
        self.async_add_entities = async_add_entities
        self.create = create
        self.create_flow = create_flow
        self.unique_ids: set[str] = set()
        self.coordinator = entry.runtime_data.coordinator
        self.hass: HomeAssistant = self.coordinator.hass
        # Channel -> (identifier, has a reading) as last seen: looked at again when it changes.
        self._known_channels: dict[int, tuple[str | None, bool]] = {}

    def restore(self) -> list[SensorEntity]:
        """Entities for the M-Bus devices seen before: remembered by us, or left by core."""
        entities: list[SensorEntity] = []
        for known in self.entry.data.get(CONF_MBUS_DEVICES, []):
            if known["unit"] is None:
                continue  # remembered by an earlier release from a channel without a reading
            entities.extend(
                self._entities(known["channel"], known["type"], known["id"], known["unit"])
            )
        for channel, device_type, ident, unit in self._left_by_core():
            entities.extend(self._entities(channel, device_type, ident, unit))
        return entities

    def _left_by_core(self) -> list[tuple[int, int, str | None, str | None]]:
        """M-Bus entities in the registry that this entry has not remembered (core made them).

        Core keys an M-Bus reading by the bare M-Bus identifier, or `<serial>_<channel>` when
        the device has none; its translation key (or device class) tells the kind of meter.
        A pre-2024 gas entity (`<serial>_hourly_gas_meter_reading`) is not one: the first
        telegram moves it to its M-Bus identifier, as core does (`async_move_gas_to_mbus`).
        """
        main_suffixes = tuple(f"_{d.key}" for d in SENSORS)
        found: list[tuple[int, int, str | None, str | None]] = []
        registry = er.async_get(self.hass)
        for reg in er.async_entries_for_config_entry(registry, self.entry.entry_id):
            unique_id = reg.unique_id
            if reg.domain != "sensor" or unique_id.endswith(main_suffixes + PRE_MBUS_GAS_SUFFIXES):
                continue
            device_type = CORE_MBUS_TRANSLATION_KEYS.get(
                str(reg.translation_key)
            ) or CORE_MBUS_TYPES.get(str(reg.original_device_class))
            if device_type is None:
                continue
            prefix, _, channel = unique_id.rpartition("_")
            if prefix and channel.isdigit():
                found.append((int(channel), device_type, None, reg.unit_of_measurement))
            else:
                found.append((0, device_type, unique_id, reg.unit_of_measurement))
        return found

    @callback
    def update(self) -> None:
        """On every publish: look at the M-Bus channels that are new or changed."""
        snapshot = self.coordinator.data
        if snapshot is None or not snapshot.mbus:
            return
        known = self._known_channels
        for device in snapshot.mbus:
            seen = (device.identifier, device.has_reading)
            if known.get(device.channel) != seen:
                known[device.channel] = seen
                self.found(device)

    def found(self, device: MbusReading) -> None:
        """Add entities for an M-Bus device seen in a telegram, unless they exist."""
        device_type = device.device_type
        if device_type is None:
            return
        if device_type not in MBUS_SENSORS:
            LOGGER.info(
                "M-Bus channel %s: device type %s is not supported", device.channel, device_type
            )
            return
        if not device.has_reading:
            return  # type and identifier only: no entity until a reading comes (as core)
        ident = device.identifier
        if ident:
            async_move_gas_to_mbus(self.hass, self.entry, ident)
        entities = self._entities(device.channel, device_type, ident, device.unit)
        if not entities:
            return
        self._remember(device.channel, device_type, ident, device.unit)
        self.async_add_entities(entities)

    def _entities(
        self, channel: int, device_type: int, ident: str | None, unit: str | None
    ) -> list[SensorEntity]:
        data = self.entry.data
        description, name = MBUS_SENSORS[device_type]
        serial = ident or (data.get(CONF_SERIAL_ID_GAS) if description.is_gas else None)
        serial = serial or data.get(CONF_SERIAL_ID) or self.entry.entry_id
        unique_id = serial if ident else f"{serial}_{channel}"
        if unique_id in self.unique_ids:
            return []
        self.unique_ids.add(unique_id)
        info = DeviceInfo(identifiers={(DOMAIN, serial)}, name=name)
        if ident:
            info["serial_number"] = readable(ident)
        entities = [
            self.create(description, info, unique_id, channel=channel, mbus_id=ident, unit=unit)
        ]
        if (flow := mbus_flow(device_type, unit)) is not None:
            key = flow_key(channel, ident)
            entities.append(self.create_flow(flow, info, f"{unique_id}_flow", key))
        return entities

    def _remember(
        self, channel: int, device_type: int, ident: str | None, unit: str | None
    ) -> None:
        known: list[Mapping[str, Any]] = list(self.entry.data.get(CONF_MBUS_DEVICES, []))
        record = {"channel": channel, "type": device_type, "id": ident, "unit": unit}
        if record in known:
            return
        known = [k for k in known if k["channel"] != channel or k["id"] != ident] + [record]
        self.hass.config_entries.async_update_entry(
            self.entry, data={**self.entry.data, CONF_MBUS_DEVICES: known}
        )
