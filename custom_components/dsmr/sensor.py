"""Sensors for every value a DSMR telegram carries.

One table (`SENSORS`) describes the electricity meter's values by dsmr_parser value name; a
second (`MBUS_SENSORS`) describes the sub-meters (gas, water, heat, cooling) on M-Bus channels.
Entities for the configured version exist from setup on and restore their last state; M-Bus
entities are added whenever a channel first shows up and remembered for the next start. A value
is the meter's number in the unit its line carries (see `units`); a register never goes down
without a reason (see `cycles`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from dsmr_parser.objects import Telegram
from homeassistant.components.sensor import (
    RestoreSensor,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import (
    AddConfigEntryEntitiesCallback,
    AddEntitiesCallback,
)
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType, StateType

from . import DsmrConfigEntry
from .const import (
    CONF_DSMR_VERSION,
    CONF_PRECISION,
    CONF_SERIAL_ID_GAS,
    LOGGER,
)
from .coordinator import DsmrCoordinator
from .cycles import DecreaseHold, Verdict
from .descriptions import SENSORS, DsmrSensorEntityDescription, spec_value_names
from .entity import DsmrEntity, main_device
from .generic import generic_obis_entities
from .health import health_entities
from .mbus import MbusEntities
from .rebroadcast import RebroadcastServer
from .repairs import async_register_new_cycle
from .units import device_class_for, ha_unit
from .upgrade import async_relabel_when_compiled, async_statistics_mislabelled, recorder_running
from .yaml_import import PLATFORM_SCHEMA as YAML_PLATFORM_SCHEMA

PLATFORM_SCHEMA = YAML_PLATFORM_SCHEMA
PARALLEL_UPDATES = 0  # push: entities never poll
_LOOK_UP: Any = object()  # _raw's default: find the object in the telegram
# A value the meter has not sent in this many telegrams in a row (and never sent) is disabled.
ABSENT_TELEGRAMS_BEFORE_DISABLE = 3
CONF_AUTO_DISABLED = "auto_disabled"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: DsmrConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create the meter's entities now, and M-Bus entities as their channels appear."""
    coordinator = entry.runtime_data
    version = entry.data[CONF_DSMR_VERSION]
    names = spec_value_names(version)
    entities: list[SensorEntity] = [
        _main_entity(entry, description)
        for description in SENSORS
        if description.obis_name in names
        and (description.versions is None or version in description.versions)
        and (not description.is_gas or CONF_SERIAL_ID_GAS in entry.data)
    ]
    mbus = MbusEntities(hass, entry, async_add_entities, partial(DsmrSensor, entry))
    entities.extend(mbus.restore())
    entities.extend(health_entities(coordinator, *main_device(entry)))
    # OBIS lines no specification names: remembered ones now, new ones as they appear.
    entities.extend(generic_obis_entities(entry, async_add_entities, *main_device(entry)))
    if coordinator.rebroadcast is not None:
        entities.append(RebroadcastClientsSensor(coordinator.rebroadcast, *main_device(entry)))
    async_add_entities(entities)
    entry.async_on_unload(coordinator.async_add_mbus_listener(mbus.found))


async def async_setup_platform(
    hass: HomeAssistant,
    config: ConfigType,
    async_add_entities: AddEntitiesCallback,
    discovery_info: DiscoveryInfoType | None = None,
) -> None:
    """Accept a validated `sensor: - platform: dsmr` block.

    The block itself is turned into a config entry by the integration's `async_setup`, which
    sees every block at once (and so can remove entries whose block was deleted); the entry
    creates the entities.
    """


def _main_entity(entry: DsmrConfigEntry, description: DsmrSensorEntityDescription) -> DsmrSensor:
    device, serial = main_device(entry, gas=description.is_gas)
    return DsmrSensor(entry, description, device, f"{serial}_{description.key}")


class DsmrSensor(DsmrEntity, RestoreSensor):
    """One value of a meter; writes its state only when that value changed."""

    entity_description: DsmrSensorEntityDescription
    coordinator: DsmrCoordinator
    _unrecorded_attributes = frozenset({"min", "max", "samples"})

    def __init__(
        self,
        entry: DsmrConfigEntry,
        description: DsmrSensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
        *,
        channel: int | None = None,
        mbus_id: str | None = None,
        unit: str | None = None,
    ) -> None:
        """Initialize the sensor; `unit` is the meter's, if known (else the specification's)."""
        super().__init__(entry.runtime_data, description, device_info, unique_id)
        self._entry = entry
        self._version: str = entry.data[CONF_DSMR_VERSION]
        # Decimals to round to when the user asked for it (YAML `precision`); else the meter's own.
        precision = entry.data.get(CONF_PRECISION)
        self._precision: int | None = None if precision is None else int(precision)
        self._channel = channel
        self._mbus_id = mbus_id
        self._seen = False
        self._absent = 0
        self._decrease = DecreaseHold()
        self._last_obj: Any = None
        self._written: tuple[bool, Any, str | None] | None = None
        self._set_unit(ha_unit(unit) or description.native_unit_of_measurement)
        self._registry_unit: tuple[str | None, str | None] | None = None
        # Set while a statistics upgrade decides when the meter's unit may be shown (upgrade.py).
        self._unit_pending = False
        self._unit_checked = False
        self._written_period = 0
        enabled = description.entity_registry_enabled_default
        if description.enabled_versions is not None:
            enabled = enabled and self._version in description.enabled_versions
        self._attr_entity_registry_enabled_default = enabled

    async def async_added_to_hass(self) -> None:
        """Restore the last value before the first telegram arrives."""
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = last.native_value
            self._seen = last.native_value is not None
            if last.native_unit_of_measurement is not None:
                self._set_unit(last.native_unit_of_measurement)
                self._sync_registry()
        await super().async_added_to_hass()

    def _set_unit(self, unit: str | None) -> None:
        """Show values in `unit`, with the device class that unit implies."""
        description = self.entity_description
        self._attr_native_unit_of_measurement = unit
        self._attr_device_class = device_class_for(
            unit, description.device_class, description.state_class
        )

    def _sync_registry(self) -> None:
        """Give the registry the unit and class shown (it describes the entity while unloaded).

        Only once the state shows a value in that unit: a registry update writes the state.
        """
        shown = (self._attr_native_unit_of_measurement, self._attr_device_class)
        if shown == self._registry_unit:
            return  # the usual case: nothing changed since the last write
        self._registry_unit = shown
        reg = self.registry_entry
        if reg is not None and (
            reg.unit_of_measurement != self.unit_of_measurement
            or reg.original_device_class != self.device_class
        ):
            er.async_get(self.hass).async_update_entity(
                self.entity_id,
                unit_of_measurement=self.unit_of_measurement,
                original_device_class=self.device_class,
            )

    def _dsmr_object(self, telegram: Telegram) -> Any:
        name = self.entity_description.obis_name
        if self._channel is None:
            return getattr(telegram, name, None)
        for device in getattr(telegram, "MBUS_DEVICES", ()):
            ident = getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None)
            if (self._mbus_id and ident is not None and str(ident.value) == self._mbus_id) or (
                not self._mbus_id and device.channel_id == self._channel
            ):
                return getattr(device, name, None)
        return None

    def handle_mbus_discovery(self) -> None:
        """Take the value from the telegram that announced this M-Bus device."""
        if self.hass is not None and self.coordinator.telegram is not None:
            self._handle_coordinator_update()

    def _raw(self, telegram: Telegram, obj: Any = _LOOK_UP) -> tuple[Any, Any]:
        """Return the value's dsmr_parser object (None when derived) and its raw value."""
        description = self.entity_description
        if description.telegram_fn is not None:
            return None, description.telegram_fn(telegram)
        if obj is _LOOK_UP:
            obj = self._dsmr_object(telegram)
        return obj, None if obj is None else description.value_fn(obj, self._version)

    @callback
    def _handle_coordinator_update(self) -> None:
        if self._unit_pending:
            return
        coordinator = self.coordinator
        available = coordinator.available
        telegram = coordinator.telegram
        value = self._attr_native_value
        if available and telegram is not None:
            description = self.entity_description
            obj = _LOOK_UP
            if (
                description.telegram_fn is None
                and len(coordinator.window_telegrams) <= 1
                and self._decrease.since is None
                and self._written is not None
                and self._written[0]
            ):
                # The parser hands out the very same object for a line that did not change.
                obj = self._dsmr_object(telegram)
                if obj is not None and obj is self._last_obj:
                    return
                self._last_obj = obj
            obj, raw = self._raw(telegram, obj)  # looked up once per telegram
            if raw is None and obj is None:
                self._value_absent()
            else:
                self._seen = True
                if (unit := self._line_unit(telegram, obj, raw)) is not None:
                    if self._upgrading_unit(unit, raw):
                        return  # shown once the statistics upgrade allows it
                    if unit != self._attr_native_unit_of_measurement:
                        self._set_unit(unit)
                if description.average and len(coordinator.window_telegrams) > 1:
                    value = self._mean(coordinator.window_telegrams)
                else:
                    value = self._value(raw)
                if obj is not None and description.attributes_fn is not None:
                    self._attr_extra_state_attributes = description.attributes_fn(obj) or {}
        written = (available, value, self._attr_native_unit_of_measurement)
        if self._written == written:
            return
        if self._held_for_period(value):
            self._last_obj = None  # look again on the next push, changed or not
            return
        self._written = written
        # Written in a period's last window, the value also stands for the next one's start.
        self._written_period = coordinator.period + coordinator.closes_period
        self._attr_native_value = value
        self.async_write_ha_state()
        self._sync_registry()

    def _line_unit(self, telegram: Telegram, obj: Any, raw: Any) -> str | None:
        """The unit the telegram line of a numeric value carries (HA's constant for it)."""
        if not isinstance(raw, Decimal):
            return None
        if self.entity_description.telegram_fn is not None:
            obj = getattr(telegram, self.entity_description.obis_name, None)
        if isinstance(obj, list):  # the Belgian 13-month peak history: one unit for all
            obj = next(iter(obj), None)
        return ha_unit(getattr(obj, "unit", None))

    def _upgrading_unit(self, unit: str, raw: Any) -> bool:
        """Whether a statistics upgrade decides when values in the line's `unit` are shown.

        Statistics recorded by an earlier release under the specification's unit may need
        relabelling first: checked once per start, for the first line in another unit (also
        when the restored unit is already the meter's: a restart may have cut an upgrade short).
        """
        label = self.entity_description.native_unit_of_measurement
        if (
            self._unit_checked
            or label is None
            or unit == label
            or self.entity_description.state_class is None
            or not recorder_running(self.hass)
        ):
            return False
        self._unit_checked = self._unit_pending = True
        self._last_obj = None
        self._entry.async_create_background_task(
            self.hass,
            self._async_upgrade_unit(label, unit, float(raw)),
            f"dsmr unit of {self.entity_id}",
        )
        return True

    async def _async_upgrade_unit(self, label: str, unit: str, value: float) -> None:
        """Relabel statistics mislabelled by an earlier release, then show the meter's unit."""
        try:
            relabel = await async_statistics_mislabelled(
                self.hass, self.entity_id, label, unit, value
            )
            LOGGER.debug(
                "%s: the meter sends %s; statistics recorded as %s to relabel: %s",
                self.entity_id,
                unit,
                label,
                relabel,
            )
            self._set_unit(unit)
            if relabel:
                # No value in the old label may meet the relabelled statistics (upgrade.py).
                self._attr_native_value = None
                self._written = (True, None, unit)
                self.async_write_ha_state()
                self._sync_registry()
                await async_relabel_when_compiled(self.hass, self.entity_id, unit)
        finally:
            self._unit_pending = False
        self._handle_coordinator_update()

    def _held_for_period(self, value: Any) -> bool:
        """Whether a grown register waits for the last publish of its statistics period.

        Long-term statistics take a register's last state of each 5-minute period, so one
        write per period, made in the period's last update window, gives the same statistics
        as a write every window with a tenth of the writes. Anything else (a first value, a
        decrease, unavailability, M-Bus registers, which change every 5 minutes anyway) is
        written at once, and so is everything when the user asked for every telegram
        (`time_between_update` 0).
        """
        written = self._written
        if (
            not self.coordinator.window
            or written is None
            or not written[0]
            or self._channel is not None
            or self.entity_description.state_class is not SensorStateClass.TOTAL_INCREASING
            or not isinstance(value, float)
            or not isinstance(written[1], float)
            or value <= written[1]
        ):
            return False
        coordinator = self.coordinator
        return coordinator.period == self._written_period and not coordinator.closes_period

    def _mean(self, telegrams: list[Telegram]) -> float | None:
        """The mean over the window's telegrams; min, max and count as (unrecorded) attributes."""
        raws = [raw for t in telegrams if isinstance(raw := self._raw(t)[1], Decimal)]
        if not raws:
            return None
        samples = [float(raw) for raw in raws]
        # The mean as precise as the meter's own values (or as the user's `precision`).
        digits = self._precision
        if digits is None:
            digits = max(-int(raw.as_tuple().exponent) for raw in raws)
        self._attr_extra_state_attributes = {
            "min": round(min(samples), digits),
            "max": round(max(samples), digits),
            "samples": len(samples),
        }
        return round(sum(samples) / len(samples), digits)

    def _value(self, value: StateType | datetime | Decimal) -> StateType | datetime | Decimal:
        description = self.entity_description
        if not isinstance(value, Decimal):
            return value
        number = float(value) if self._precision is None else round(float(value), self._precision)
        if description.state_class is not SensorStateClass.TOTAL_INCREASING:
            return number
        shown = self._attr_native_value
        if not isinstance(shown, float):
            shown = None
        elif self._precision is not None:
            shown = round(shown, self._precision)  # a lowered precision is no decrease
        first = self._decrease.since is None
        verdict = self._decrease.verdict(shown, number, replaced=self.coordinator.meter_replaced)
        if verdict is Verdict.HOLD:
            if first:
                self.coordinator.reader.stats.fault(
                    "decrease",
                    "%s went down from %s to %s; showing %s until the lower value lasts an hour"
                    " or the meter reports another equipment identifier",
                    self.entity_id,
                    shown,
                    number,
                    shown,
                )
            return shown
        if verdict is Verdict.NEW_CYCLE:
            unit = self._attr_native_unit_of_measurement or ""
            async_register_new_cycle(
                self.hass, self._entry, self.entity_id, f"{shown} {unit}", f"{number} {unit}"
            )
        return number

    def _value_absent(self) -> None:
        if self._seen or self._channel is not None:
            return
        self._absent += 1
        if self._absent != ABSENT_TELEGRAMS_BEFORE_DISABLE or self.registry_entry is None:
            return
        auto_disabled: list[str] = list(self._entry.data.get(CONF_AUTO_DISABLED, []))
        if self.registry_entry.disabled_by is not None or self.unique_id in auto_disabled:
            return  # disabled already, or the user enabled it again after we disabled it once
        LOGGER.info("%s: the meter does not send this value; disabling the entity", self.entity_id)
        self.hass.config_entries.async_update_entry(
            self._entry,
            data={**self._entry.data, CONF_AUTO_DISABLED: [*auto_disabled, str(self.unique_id)]},
        )
        er.async_get(self.hass).async_update_entity(
            self.entity_id, disabled_by=er.RegistryEntryDisabler.INTEGRATION
        )


REBROADCAST_CLIENTS = SensorEntityDescription(
    key="rebroadcast_clients",
    translation_key="rebroadcast_clients",
    state_class=SensorStateClass.MEASUREMENT,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class RebroadcastClientsSensor(SensorEntity):
    """How many programs read the meter through the re-broadcast (only while it is shared).

    Not fed by the coordinator: the count is not meter data and changes while no telegram
    comes. No attributes: the clients' addresses are not shown.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description = REBROADCAST_CLIENTS

    def __init__(self, server: RebroadcastServer, device_info: DeviceInfo, serial: str) -> None:
        """Count the clients of `server`, on the meter's device."""
        self._server = server
        self._attr_device_info = device_info
        self._attr_unique_id = f"{serial}_{REBROADCAST_CLIENTS.key}"

    async def async_added_to_hass(self) -> None:
        """Write the count whenever it changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._server.add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> int:
        """Connected clients."""
        return self._server.clients
