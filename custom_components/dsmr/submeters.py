"""The meter's M-Bus sub-meters (gas, water, heat, cooling): devices and entities as they appear.

A sub-meter gets its device, reading and (gas and water in m³) flow once two publishes in a row
name the same identifier on its channel with a reading: a meter that makes one up every telegram
makes none. It is remembered in the entry, one per channel, to exist at the next start; one core
made is found in the registry by its unique id. Past MAX_SUBMETERS: a log line, a repair issue.

Each register (and DSMR 2.2/4's gas) also has a long-term statistic filed by the sub-meter's own
stamps (p1/flow_rate.file_hourly): the Energy dashboard's gas or water source, in the right hour.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Final

from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import (
    STATISTIC_UNIT_TO_UNIT_CONVERTER,
    async_add_external_statistics,
    get_last_statistics,
)
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
from homeassistant.helpers.recorder import get_instance
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
from .p1.flow_rate import HOUR, Filed, file_hourly
from .p1.snapshot import MAIN_GAS_READINGS, Snapshot, flow_key, number
from .p1.telegram import gas_identifier, ha_unit
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


# A register's capture: key, statistic name, identifier, stamp, reading, unit.
Reading = tuple[str, str, str | None, datetime, float, str | None]
READINGS: Final = {
    kind: DsmrSensorEntityDescription(
        key=f"{kind}_reading",
        translation_key=f"{kind}_meter_reading",
        obis_name="MBUS_METER_READING",
        device_class=cls,
        state_class=State.TOTAL_INCREASING,
        native_unit_of_measurement=unit,
        value_fn=lambda s: None,  # made for each sub-meter by `_entities`
    )
    for kind, cls, unit in (
        ("gas", Class.GAS, UnitOfVolume.CUBIC_METERS),
        ("water", Class.WATER, UnitOfVolume.CUBIC_METERS),
        ("heat", Class.ENERGY, UnitOfEnergy.GIGA_JOULE),
        ("cooling", Class.ENERGY, UnitOfEnergy.GIGA_JOULE),
    )
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


def flow(description: DsmrSensorEntityDescription, key: str) -> DsmrSensorEntityDescription:
    """The flow sensor of the sub-meter whose flow is `key`: m³/h, or L/min for water."""
    factor = 1000 / 60 if description is WATER_FLOW else 1.0
    return replace(
        description,
        value_fn=partial(Snapshot.flow_rate, key=key, factor=factor),
        attributes_fn=partial(Snapshot.flow_attributes, key=key),
    )


class Submeters:
    """Makes, remembers and restores the entities of a meter's sub-meters."""

    def __init__(self, entry: DsmrConfigEntry, add: AddConfigEntryEntitiesCallback) -> None:
        """For one entry; `add` adds entities made after setup."""
        self.entry, self.add = entry, add
        self.coordinator = entry.runtime_data.coordinator
        self.hass = self.coordinator.hass
        self.unique_ids: set[str] = set()  # one per sub-meter: what the cap counts
        self._logged: set[int] = set()  # unsupported device types, said once
        self._full = False

    def restore(self) -> list[SensorEntity]:
        """Entities of the sub-meters seen before: remembered by us, or left by core."""
        before: list[Mapping[str, Any]] = self.entry.data.get(CONF_MBUS_DEVICES, [])
        latest = {k["channel"]: k for k in before}  # one per channel (earlier releases kept all)
        self._store(known := [k for k in before if latest[k["channel"]] is k])
        entities: list[SensorEntity] = []
        for k in known:
            if k["unit"] is not None:  # (an earlier release remembered channels without)
                entities += self._entities(k["channel"], k["type"], k["id"], k["unit"])
        for args in self._left_by_core():
            entities += self._entities(*args)
        if len(self.unique_ids) > MAX_SUBMETERS:
            self._cap_met()  # an earlier release made them: the user can delete stale ones
        else:
            async_submeters_within_cap(self.hass, self.entry)
        return entities

    def _left_by_core(self) -> Iterator[tuple[int, int, str | None, str | None]]:
        """Sub-meter entities in the registry that this entry has not remembered (core's)."""
        data = self.entry.data
        serials = {data.get(CONF_SERIAL_ID), data.get(CONF_SERIAL_ID_GAS), self.entry.entry_id}
        for reg in er.async_entries_for_config_entry(er.async_get(self.hass), self.entry.entry_id):
            device_type = CORE_KINDS.get(str(reg.translation_key))
            device_type = device_type or CORE_CLASSES.get(str(reg.original_device_class))
            if reg.domain != "sensor" or device_type is None:
                continue
            prefix, _, channel = reg.unique_id.rpartition("_")
            if "_" not in reg.unique_id:  # the bare M-Bus identifier
                yield 0, device_type, reg.unique_id, reg.unit_of_measurement
            elif prefix in serials and channel.isdigit():  # one without an identifier
                yield int(channel), device_type, None, reg.unit_of_measurement

    @callback
    def update(self) -> None:
        """Add the entities of sub-meters two telegrams in a row named (or remembered)."""
        snapshot = self.coordinator.data
        known = self.entry.data.get(CONF_MBUS_DEVICES, [])
        for meter in snapshot.submeters if snapshot is not None else ():
            channel, ident = meter.channel, meter.identifier
            remembered = any(k["channel"] == channel and k["id"] == ident for k in known)
            if (meter.confirmed or remembered) and meter.has_reading and meter.device_type:
                self._found(channel, meter.device_type, ident, meter.unit)

    def _found(self, channel: int, kind: int, ident: str | None, unit: str | None) -> None:
        if kind not in KINDS:
            if kind not in self._logged:
                self._logged.add(kind)
                LOGGER.info("M-Bus channel %s: device type %s is not supported", channel, kind)
            return
        if ident:
            async_move_gas_to_mbus(self.hass, self.entry, ident)
        if self._ids(channel, kind, ident)[1] in self.unique_ids:
            return
        if len(self.unique_ids) >= MAX_SUBMETERS:
            self._cap_met()
            return
        entities = self._entities(channel, kind, ident, unit)
        known = [k for k in self.entry.data.get(CONF_MBUS_DEVICES, []) if k["channel"] != channel]
        self._store([*known, {"channel": channel, "type": kind, "id": ident, "unit": unit}])
        self.add(entities)

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
    ) -> list[DsmrSensor]:
        """The reading's entity and (gas and water in m³) the flow's."""
        serial, unique_id = self._ids(channel, device_type, ident)
        if unique_id in self.unique_ids:
            return []
        self.unique_ids.add(unique_id)
        kind, name = KINDS[device_type]
        device = DeviceInfo(identifiers={(DOMAIN, serial)}, name=name)
        if ident:
            device["serial_number"] = readable(ident)
        reading = replace(
            READINGS[kind],
            value_fn=partial(Snapshot.reading, channel=channel, ident=ident),
            line_fn=partial(Snapshot.submeter, channel=channel, ident=ident),
        )
        unit = ha_unit(unit)  # (an earlier release remembered units as sent)
        entities = [DsmrSensor(self.entry, reading, device, unique_id, unit=unit)]
        if kind in ("gas", "water") and unit == UnitOfVolume.CUBIC_METERS:
            rate = flow(GAS_FLOW if kind == "gas" else WATER_FLOW, flow_key(channel, ident))
            entities.append(DsmrSensor(self.entry, rate, device, f"{unique_id}_flow"))
        return entities


class HourlyStatistics:
    """Each register's long-term statistic, its increases filed in the hours its stamps give."""

    def __init__(self, entry: DsmrConfigEntry) -> None:
        """For one entry; `update` when a sub-meter has a new reading."""
        self.entry, self.coordinator = entry, entry.runtime_data.coordinator
        self.hass = self.coordinator.hass
        self.filed: dict[str, Filed | None] = {}  # by `channel_kind` or "gas": at most 37
        self.handed: dict[str, datetime] = {}  # the last stamp handed on
        self.waiting: dict[str, Reading] = {}  # the newest capture not yet filed, per key

    @callback
    def update(self) -> None:
        """Hand on the captures this publish carries for the first time."""
        snapshot = self.coordinator.data
        if snapshot is None or "recorder" not in self.hass.config.components:
            return
        for reading in self._captures(snapshot):
            key, at = reading[0], reading[3]
            if self.handed.get(key) == at or at > dt_util.utcnow() + HOUR:
                continue  # known, or stamped in the future by a clock gone wrong
            self.handed[key] = at
            if self.waiting.setdefault(key, reading) is not reading:
                self.waiting[key] = reading  # one filing per key at a time: it takes the newest
                continue
            self.entry.async_create_background_task(
                self.hass, self._file(key), f"dsmr statistic {key}"
            )

    def _captures(self, snapshot: Snapshot) -> Iterator[Reading]:
        for m in snapshot.submeters:
            if m.confirmed and m.at and m.value is not None and m.device_type in KINDS:
                key = f"{m.channel}_{KINDS[m.device_type][0]}"
                name = f"{KINDS[m.device_type][1]} {m.channel}"
                yield key, name, m.identifier, m.at, m.value, m.unit
        for name in MAIN_GAS_READINGS if CONF_SERIAL_ID_GAS in self.entry.data else ():
            line = snapshot.line(name)
            at, value = getattr(line, "datetime", None), number(getattr(line, "value", None))
            if isinstance(at, datetime) and at.tzinfo and value is not None:
                ident = gas_identifier(snapshot.telegram, snapshot.version)
                yield "gas", DEVICE_NAME_GAS, ident, at, value, UnitOfVolume.CUBIC_METERS

    async def _file(self, key: str) -> None:
        """File the key's waiting captures, one after the other, until none waits."""
        statistic_id = f"{DOMAIN}:{self.entry.entry_id.lower()}_{key}"
        while (reading := self.waiting.get(key)) is not None:
            _, name, ident, at, value, unit = reading
            try:
                if key not in self.filed:
                    self.filed[key] = await self._restore(statistic_id, ident)
                filed, rows = file_hourly(self.filed[key], at, Decimal(repr(value)), ident)
                self.filed[key] = filed
                if rows:
                    self._write(statistic_id, name, unit, rows)
            except Exception as err:  # (the recorder failing): this capture is not filed
                LOGGER.warning("Cannot file %s's hourly statistic: %s", name, err)
            if self.waiting.get(key) is reading:
                del self.waiting[key]

    def _write(self, statistic_id: str, name: str, unit: str | None, rows: list[Any]) -> None:
        converter = STATISTIC_UNIT_TO_UNIT_CONVERTER.get(unit)
        metadata = StatisticMetaData(
            mean_type=StatisticMeanType.NONE,
            has_sum=True,
            name=f"{name}, hours by its own clock",
            source=DOMAIN,
            statistic_id=statistic_id,
            unit_class=converter.UNIT_CLASS if converter else None,
            unit_of_measurement=unit,
        )
        data = [StatisticData(start=h, state=float(v), sum=float(t)) for h, v, t in rows]
        async_add_external_statistics(self.hass, metadata, data)

    async def _restore(self, statistic_id: str, ident: str | None) -> Filed | None:
        """Where the statistic stopped before a restart: within its last hour.

        Its captures of that hour after this start are filed again from its state: a restart
        within the hour loses nothing; after a longer one, the gap is spread from its start.
        """
        found = await get_instance(self.hass).async_add_executor_job(
            get_last_statistics, self.hass, 1, statistic_id, False, {"state", "sum"}
        )
        row = (found.get(statistic_id) or [{}])[0]
        if row.get("state") is None or row.get("sum") is None:
            return None
        start = datetime.fromtimestamp(row["start"], UTC)
        return Filed(start, Decimal(repr(row["state"])), Decimal(repr(row["sum"])), ident)
