"""Base entities (device, unique id, availability; fed by the coordinator) and meter devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.components.sensor import SensorEntity, SensorEntityDescription
from homeassistant.core import callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import (
    CONF_DSMR_VERSION,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DEVICE_NAME_ELECTRICITY,
    DEVICE_NAME_GAS,
    DOMAIN,
)
from .coordinator import DsmrConfigEntry, DsmrCoordinator
from .derived import Derived
from .health import REFRESH
from .units import device_class_for, ha_unit
from .upgrade import UnitUpgrade


class DsmrEntity(CoordinatorEntity[DsmrCoordinator]):
    """An entity fed by a DsmrCoordinator's snapshots.

    Available while the meter is connected (and, after a restart, until proven not). An
    update that fails is counted by the coordinator and logged; the other entities update.
    """

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: DsmrCoordinator,
        description: EntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
    ) -> None:
        """Initialize the entity."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_device_info = device_info
        self._attr_unique_id = unique_id

    async def async_added_to_hass(self) -> None:
        """Subscribe, and show the snapshot published before this entity was added."""
        await super().async_added_to_hass()
        if self.coordinator.data is not None:
            self._handle_coordinator_update()

    @callback
    def _handle_coordinator_update(self) -> None:
        """Take the coordinator's snapshot; a failure is counted, never raised."""
        try:
            self._update()
        except Exception as err:  # counted and logged; the other entities are updated
            self.coordinator.failed(err, f"entity {self.entity_id}")

    def _update(self) -> None:
        """Show the snapshot (subclasses decide what to write)."""
        self.async_write_ha_state()


class RefreshingEntity(DsmrEntity):
    """Shows the coordinator's `Health`: on pushes and every REFRESH, when it changed.

    With `_every_push` off, a push refreshes only the first value and an outage: the timer
    does the rest (a number that changes with every telegram is not written that often).
    """

    _last: Any = None
    _known = False
    _every_push = True

    async def async_added_to_hass(self) -> None:
        """Also refresh on a timer."""
        await super().async_added_to_hass()
        self.async_on_remove(async_track_time_interval(self.hass, self._refresh, REFRESH))

    @property
    def available(self) -> bool:
        """Health is known even while the meter is not."""
        return True

    @callback
    def _handle_coordinator_update(self) -> None:
        coordinator = self.coordinator
        if (
            self._every_push
            or not self._known
            or coordinator.data is None
            or not coordinator.last_update_success
        ):
            super()._handle_coordinator_update()

    @callback
    def _refresh(self, _now: datetime) -> None:
        super()._handle_coordinator_update()

    def _current(self) -> Any:
        raise NotImplementedError

    def _update(self) -> None:
        current = self._current()
        if not self._known or current != self._last:
            self._known = True
            self._last = current
            self.async_write_ha_state()


class LineUnitEntity(DsmrEntity, SensorEntity):
    """Shows values in the unit their line carries, with the device class that unit implies.

    Statistics an earlier release recorded under the specification's unit may need relabelling
    before values in the line's unit are shown: the entity's `UnitUpgrade` decides when.
    """

    entity_description: SensorEntityDescription
    _registry_unit: tuple[str | None, str | None] | None = None
    _written: tuple[bool, Any, str | None] | None = None  # (available, value, unit) written
    _followed: str | None = None  # the unit last sent, shown as it is (see `_follow_unit`)

    def __init__(
        self,
        entry: DsmrConfigEntry,
        description: SensorEntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
        unit: str | None,
    ) -> None:
        """Initialize in `unit`, the meter's as sent if known (else the specification's)."""
        super().__init__(entry.runtime_data.coordinator, description, device_info, unique_id)
        self._set_unit(ha_unit(unit) or description.native_unit_of_measurement)
        self._upgrade = UnitUpgrade(
            description.native_unit_of_measurement,
            description.state_class is not None,
            entry,
            show=self._show_unit,
            done=self._handle_coordinator_update,
        )

    def _set_unit(self, unit: str | None) -> None:
        """Show values in `unit`, with the device class that unit implies."""
        description = self.entity_description
        self._followed = None
        self._attr_native_unit_of_measurement = unit
        self._attr_device_class = device_class_for(
            unit, description.device_class, description.state_class
        )

    def _restore_unit(self, unit: str | None) -> None:
        """Show the unit of the restored state (the registry's too), until a line says another."""
        if unit is not None:
            self._set_unit(unit)
            self._sync_registry()

    def _follow_unit(self, sent: str | None, value: Any) -> bool:
        """Show the unit a line `sent` with `value`; False while an upgrade decides when."""
        if sent is not None and sent == self._followed:
            return True  # the unit shown, and no upgrade can wait for it any more
        if (unit := ha_unit(sent)) is None:
            return True
        upgrade = self._upgrade
        if upgrade.needed(self.hass, unit):
            upgrade.start(self.hass, self.entity_id, unit, value)
            return False
        if unit != self._attr_native_unit_of_measurement:
            self._set_unit(unit)
        if upgrade.checked or unit == upgrade.label:
            self._followed = sent
        return True

    def _show_unit(self, unit: str, relabel: bool) -> None:
        """Show `unit`; unknown while relabelled statistics are compiled (upgrade.py)."""
        self._set_unit(unit)
        if relabel:  # no value in the old label may meet the relabelled statistics
            self._write(True, None)

    def _write(self, available: bool, value: Any) -> None:
        """Write `value` in the unit shown, and give the registry that unit."""
        self._written = (available, value, self._attr_native_unit_of_measurement)
        self._attr_native_value = value
        self.async_write_ha_state()
        self._sync_registry()

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


class DerivedEntity(DsmrEntity):
    """Shows the snapshot's derived values; writes only when they (or availability) changed."""

    _shown: Any = None
    _needs: str | None = None  # what it shows, for the coordinator (e.g. FORECAST)

    def __init__(
        self,
        coordinator: DsmrCoordinator,
        description: EntityDescription,
        device_info: DeviceInfo,
        unique_id: str,
    ) -> None:
        """Initialize without attributes: a value may never come (a gas meter in GJ)."""
        super().__init__(coordinator, description, device_info, unique_id)
        self._attr_extra_state_attributes = {}

    async def async_added_to_hass(self) -> None:
        """Tell the coordinator what is shown: only what is shown is derived."""
        if self._needs is not None:
            self.async_on_remove(self.coordinator.async_show(self._needs))
        await super().async_added_to_hass()

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


def readable(identifier: str) -> str:
    """Meters send their equipment id as hex-encoded ASCII; show the text when it is that.

    Unique ids keep the hex form (core's), only the device's serial number is decoded.
    """
    try:
        text = bytes.fromhex(identifier).decode("ascii")
    except ValueError:
        return identifier
    return text if text.isprintable() and text.strip() else identifier


def main_device(entry: DsmrConfigEntry, *, gas: bool = False) -> tuple[DeviceInfo, str]:
    """Return the electricity (or DSMR 2.2/4 gas) meter's device and its serial, as core."""
    if gas:
        serial, name = entry.data.get(CONF_SERIAL_ID_GAS), DEVICE_NAME_GAS
    else:
        serial, name = entry.data.get(CONF_SERIAL_ID), DEVICE_NAME_ELECTRICITY
    serial = serial or entry.entry_id
    info = DeviceInfo(identifiers={(DOMAIN, serial)}, name=name)
    if not gas:
        info["model"] = f"DSMR {entry.data[CONF_DSMR_VERSION]}"
        if entry.data.get(CONF_SERIAL_ID):
            info["serial_number"] = readable(entry.data[CONF_SERIAL_ID])
    return info, serial
