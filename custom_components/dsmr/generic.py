"""Sensors for OBIS lines that no telegram specification names.

Meters send more than dsmr_parser's specifications know (reactive energy on a Dutch meter, a
breaker state). Such a line becomes a sensor on the meter's device, disabled by default, made the
first time a publish carries its code (without a CRC: two in a row) and remembered in the entry.
Nothing is guessed: no device class, and a state class only for instantaneous units (an unnamed
energy line may be a register that resets).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
import re
from typing import Any, Final

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_GENERIC_OBIS, LOGGER
from .coordinator import DsmrConfigEntry, DsmrCoordinator
from .entity import HA_UNITS, DsmrEntity
from .p1.telegram import ha_unit
from .p1.values import MAX_TEXT

MAX_CODES: Final = 100  # more than any meter sends: bounds what a bad meter adds to the entry
# "(number)" or "(number*unit)", nothing else: the only values that become numbers.
_NUMBER: Final = re.compile(r"\(([-+]?[0-9]+(?:\.[0-9]+)?)(?:\*([^()*\r\n]+))?\)")
_GROUP: Final = re.compile(r"\(([^()]*)\)")
# Units of instantaneous values (power, voltage, current): their mean, min and max over time
# mean something whatever the line is, so they get long-term statistics.
MEASUREMENT_UNITS: Final = frozenset({"W", "kW", "var", "kvar", "VA", "kVA", "V", "A"})

type Parsed = tuple[Decimal, str | None] | str | None


def obis_key(code: str) -> str:
    """The entity key (unique id suffix) of an OBIS code: 1-0:3.8.0 -> obis_1_0_3_8_0."""
    return "obis_" + re.sub(r"[^0-9A-Za-z]", "_", code)


def obis_description(code: str) -> SensorEntityDescription:
    """The sensor of an OBIS code: named after the code, disabled until a user enables it."""
    return SensorEntityDescription(
        key=obis_key(code),
        translation_key="generic_obis",
        translation_placeholders={"code": code},
        entity_registry_enabled_default=False,
    )


def parse_value(value: str) -> Parsed:
    """(number, unit as sent) for one numeric group, else the groups' text (None: empty)."""
    if (found := _NUMBER.fullmatch(value)) is not None:
        return Decimal(found.group(1)), found.group(2)
    text = " ".join(groups) if (groups := _GROUP.findall(value)) else value
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:MAX_TEXT] or None


def line_value(line: str, unit: str | None) -> tuple[Decimal | str | None, str | None]:
    """A line's value in `unit` (text is none in a unit), and the unit from now on (a number's)."""
    if isinstance(parsed := parse_value(line), tuple):
        return parsed
    return (None if unit is not None else parsed), unit


def state_class_of(unit: str | None) -> SensorStateClass | None:
    """`measurement` for an instantaneous unit (Home Assistant's), else no state class."""
    return SensorStateClass.MEASUREMENT if unit in MEASUREMENT_UNITS else None


def restored_value(state: Any, unit: str | None) -> Decimal | str | None:
    """A restored state shown again: a number as it was; text only where no unit is expected."""
    if isinstance(state, (Decimal, int, float)) and not isinstance(state, bool):
        return Decimal(str(state))
    return state if isinstance(state, str) and unit is None else None


class GenericObisEntities:
    """Create, remember and restore the generic sensors of one meter."""

    def __init__(
        self,
        entry: DsmrConfigEntry,
        async_add_entities: AddConfigEntryEntitiesCallback,
        device_info: DeviceInfo,
        serial: str,
    ) -> None:
        """For one entry: sensors on the meter's device `serial`."""
        self.entry = entry
        self.coordinator: DsmrCoordinator = entry.runtime_data.coordinator
        self.async_add_entities = async_add_entities
        self.device_info = device_info
        self.serial = serial
        self.codes: set[str] = set()
        self._full_logged = False

    def restore(self) -> list[SensorEntity]:
        """Entities for the codes seen before (before any telegram: they restore their state)."""
        entities: list[SensorEntity] = []
        for known in self.entry.data.get(CONF_GENERIC_OBIS, []):
            code = known["code"]
            if code not in self.codes:
                self.codes.add(code)
                entities.append(GenericObisSensor(self, code, known.get("unit")))
        return entities

    @callback
    def update(self) -> None:
        """Add an entity for each code the snapshot carries first."""
        snapshot = self.coordinator.data
        if snapshot is None:
            return
        lines = snapshot.unknown_lines
        new = [code for code in snapshot.sure_codes if code not in self.codes]
        if not new:
            return
        room = MAX_CODES - len(self.codes)
        if len(new) > room:
            if not self._full_logged:
                self._full_logged = True
                LOGGER.warning(
                    "%s sends more than %s OBIS lines without a specification; no sensors for %s",
                    self.entry.title,
                    MAX_CODES,
                    ", ".join(new[room:]),
                )
            new = new[:room]
            if not new:
                return
        records = {code: line_value(lines[code], None)[1] for code in new}
        self.codes.update(records)
        LOGGER.debug("New OBIS lines without a specification: %s", ", ".join(records))
        self.remember(records)
        self.async_add_entities(
            [GenericObisSensor(self, code, unit) for code, unit in records.items()]
        )

    def unit_changed(self, entity_id: str, code: str, unit: str | None, was: str | None) -> None:
        """The meter now sends `code` in `unit` (its entity showed `was`): logged, remembered."""
        LOGGER.info("%s: the meter now sends %s in %s (was %s)", entity_id, code, unit, was)
        self.remember({code: unit})

    def remember(self, records: Mapping[str, str | None]) -> None:
        """Store codes (and the unit their entity has) in the entry's data, for the next start."""
        before: list[Mapping[str, Any]] = self.entry.data.get(CONF_GENERIC_OBIS, [])
        known = [
            {"code": k["code"], "unit": records[k["code"]]} if k["code"] in records else k
            for k in before
        ]
        seen = {k["code"] for k in before}
        known.extend({"code": c, "unit": u} for c, u in records.items() if c not in seen)
        if known != before:
            self.coordinator.hass.config_entries.async_update_entry(
                self.entry, data={**self.entry.data, CONF_GENERIC_OBIS: known}
            )


class GenericObisSensor(DsmrEntity, RestoreSensor):
    """One OBIS line that no specification names, as the meter sends it."""

    _unrecorded_attributes = frozenset({"raw"})
    _written: tuple[bool, Any, str | None] | None = None
    _line: str | None = None

    def __init__(self, manager: GenericObisEntities, code: str, unit: str | None) -> None:
        """For an OBIS code, in the unit it was last seen with."""
        description = obis_description(code)
        unique_id = f"{manager.serial}_{description.key}"
        super().__init__(manager.coordinator, description, manager.device_info, unique_id)
        self.code = code
        self._manager = manager
        self._attr_extra_state_attributes = {"obis_code": code}
        self._set_unit(unit)

    def _set_unit(self, unit: str | None) -> None:
        self._unit = unit
        self._attr_native_unit_of_measurement = HA_UNITS.get(ha_unit(unit) or "", ha_unit(unit))
        self._attr_state_class = state_class_of(self._attr_native_unit_of_measurement)

    async def async_added_to_hass(self) -> None:
        """Restore the last value before the first telegram arrives."""
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = restored_value(last.native_value, self._unit)
        await super().async_added_to_hass()
        if self.coordinator.data is not None:
            self._handle_coordinator_update()

    @callback
    def _handle_coordinator_update(self) -> None:
        snapshot = self.coordinator.data
        available = self.coordinator.last_update_success
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
        if written != self._written:
            self._written = written
            self._attr_native_value = value
            self.async_write_ha_state()
