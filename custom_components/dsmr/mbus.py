"""The meter's M-Bus sub-meters (gas, water, heat, cooling): their entities, made as they appear.

A sub-meter's entities are created when a published telegram carries its channel with a
reading (a channel that only announces its type and identifier has none, as in core) and the
publish before named the same identifier on that channel: a meter that names another sub-meter
in every telegram makes none. A sub-meter remembered, or left by core, does not wait. Each is
remembered in the entry's data, one per channel (a new identifier on a channel replaces the
record; the old device stays until the user deletes it), and created again at the next start
before any telegram. Entities core made for sub-meters are found in the entity registry and
kept, with their unique ids. At most MAX_SUBMETERS sub-meters per entry (restored ones count):
past that none is added, and a log line and a repair issue say so. The reading's unit is the
line's, and its device class follows it (a gas meter in GJ is energy, as in core).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

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
from .issues import async_submeters_within_cap, async_too_many_submeters
from .migration import PRE_MBUS_GAS_SUFFIXES, async_move_gas_to_mbus
from .snapshot import MbusReading

# Sub-meters an entry makes at most (restored ones count): a meter has up to 4 in practice
# (dsmr_parser reads channels 0-9); a bound on what a misbehaving meter adds to the registries.
MAX_SUBMETERS: Final = 8

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
        # The unique ids of the sub-meters' readings, one per sub-meter: what the cap counts.
        self.unique_ids: set[str] = set()
        self.coordinator = entry.runtime_data.coordinator
        self.hass: HomeAssistant = self.coordinator.hass
        # Channel -> (identifier, has a reading) as last settled: looked at again when it changes.
        self._known_channels: dict[int, tuple[str | None, bool]] = {}
        # The last publish looked at: its number, its M-Bus channels and their identifiers.
        self._number = 0
        self._mbus: tuple[MbusReading, ...] = ()
        self._identifiers: dict[int, str | None] = {}
        self._unsupported: set[int] = set()  # device types logged as unsupported
        self._full = False  # the cap was met (and the user told)

    def restore(self) -> list[SensorEntity]:
        """Entities for the M-Bus devices seen before: remembered by us, or left by core."""
        entities: list[SensorEntity] = []
        for known in self._one_per_channel():
            if known["unit"] is None:
                continue  # remembered by an earlier release from a channel without a reading
            entities.extend(
                self._entities(known["channel"], known["type"], known["id"], known["unit"])
            )
        for channel, device_type, ident, unit in self._left_by_core():
            entities.extend(self._entities(channel, device_type, ident, unit))
        if len(self.unique_ids) > MAX_SUBMETERS:
            self._cap_met()  # an earlier release made them: the user can delete stale ones
        else:
            async_submeters_within_cap(self.hass, self.entry)
        return entities

    def _one_per_channel(self) -> list[Mapping[str, Any]]:
        """The remembered sub-meters, the latest of each channel (earlier releases kept all)."""
        before: list[Mapping[str, Any]] = self.entry.data.get(CONF_MBUS_DEVICES, [])
        latest = {k["channel"]: k for k in before}
        if len(latest) < len(before):
            known = [k for k in before if latest[k["channel"]] is k]
            self.hass.config_entries.async_update_entry(
                self.entry, data={**self.entry.data, CONF_MBUS_DEVICES: known}
            )
            return known
        return before

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
        if snapshot is None or snapshot.number == self._number:
            return  # nothing published since the last look (a listener call for availability)
        in_a_row = snapshot.number == self._number + 1
        previous = self._identifiers if in_a_row else {}
        self._number = snapshot.number
        mbus = snapshot.mbus
        if mbus is not self._mbus:  # the same lines are the same tuple: nothing to read
            self._mbus = mbus
            self._identifiers = {device.channel: device.identifier for device in mbus}
        known = self._known_channels
        for device in mbus:
            seen = (device.identifier, device.has_reading)
            if known.get(device.channel) == seen:
                continue
            channel = device.channel
            again = channel in previous and previous[channel] == device.identifier
            if self.found(device, seen_before=again):
                known[channel] = seen

    def found(self, device: MbusReading, *, seen_before: bool) -> bool:
        """Add entities for an M-Bus device of the published telegram, unless they exist.

        `seen_before`: the previous publish had this identifier on this channel (with a reading
        or without); a device nobody knows waits for that. False: look again at the next publish.
        """
        device_type = device.device_type
        if device_type is None:
            return True
        if device_type not in MBUS_SENSORS:
            if device_type not in self._unsupported:
                self._unsupported.add(device_type)
                LOGGER.info(
                    "M-Bus channel %s: device type %s is not supported", device.channel, device_type
                )
            return True
        if not device.has_reading:
            return True  # type and identifier only: no entity until a reading comes (as core)
        channel, ident = device.channel, device.identifier
        _, unique_id = self._ids(channel, device_type, ident)
        known = unique_id in self.unique_ids or self._remembered(channel, ident)
        if not (known or seen_before):
            # A sub-meter named in one telegram only (a meter that makes up an identifier each
            # time) would be a device and a record for good: the next publish must name it too.
            return False
        if ident:
            async_move_gas_to_mbus(self.hass, self.entry, ident)
        if unique_id in self.unique_ids:
            return True
        if len(self.unique_ids) >= MAX_SUBMETERS:
            self._cap_met()
            return True
        entities = self._entities(channel, device_type, ident, device.unit)
        self._remember(channel, device_type, ident, device.unit)
        self.async_add_entities(entities)
        return True

    def _remembered(self, channel: int, ident: str | None) -> bool:
        return any(
            k["channel"] == channel and k["id"] == ident
            for k in self.entry.data.get(CONF_MBUS_DEVICES, [])
        )

    def _cap_met(self) -> None:
        if not self._full:
            self._full = True
            async_too_many_submeters(self.hass, self.entry, MAX_SUBMETERS)

    def _ids(self, channel: int, device_type: int, ident: str | None) -> tuple[str, str]:
        """The sub-meter's device serial and its reading's unique id (core's)."""
        data = self.entry.data
        description, _ = MBUS_SENSORS[device_type]
        serial = ident or (data.get(CONF_SERIAL_ID_GAS) if description.is_gas else None)
        serial = serial or data.get(CONF_SERIAL_ID) or self.entry.entry_id
        return serial, (serial if ident else f"{serial}_{channel}")

    def _entities(
        self, channel: int, device_type: int, ident: str | None, unit: str | None
    ) -> list[SensorEntity]:
        description, name = MBUS_SENSORS[device_type]
        serial, unique_id = self._ids(channel, device_type, ident)
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
        """Store the sub-meter for the next start, in place of its channel's earlier one."""
        before: list[Mapping[str, Any]] = self.entry.data.get(CONF_MBUS_DEVICES, [])
        record = {"channel": channel, "type": device_type, "id": ident, "unit": unit}
        known = [k for k in before if k["channel"] != channel] + [record]
        if known != before:
            self.hass.config_entries.async_update_entry(
                self.entry, data={**self.entry.data, CONF_MBUS_DEVICES: known}
            )
