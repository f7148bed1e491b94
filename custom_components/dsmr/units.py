"""A telegram line's unit as Home Assistant shows it, and the device class that unit implies.

A value is the meter's number in the meter's unit: `1-0:1.8.0(000326641*Wh)` is 326641 Wh, not
326641 kWh. The unit comes from the line; a unit Home Assistant has a constant for is that
constant (`m3` is `m³`), any other unit is kept as written. The device class follows the unit:
the description's class where that class takes the unit (gas or water for m³ from the M-Bus
device type), else the class the unit belongs to (a gas reading in GJ is energy, as in core),
else none, so that Home Assistant never sees a unit its device class forbids.
"""

from __future__ import annotations

from typing import Final

from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.components.sensor.const import DEVICE_CLASS_STATE_CLASSES, DEVICE_CLASS_UNITS

from .const import METER_UNITS

# The classes a unit can imply, first match wins (m³ of an energy meter is a volume).
UNIT_DEVICE_CLASSES: Final = (
    SensorDeviceClass.ENERGY,
    SensorDeviceClass.POWER,
    SensorDeviceClass.REACTIVE_ENERGY,
    SensorDeviceClass.REACTIVE_POWER,
    SensorDeviceClass.APPARENT_POWER,
    SensorDeviceClass.VOLTAGE,
    SensorDeviceClass.CURRENT,
    SensorDeviceClass.FREQUENCY,
    SensorDeviceClass.VOLUME,
    SensorDeviceClass.DURATION,
)


# Reactive units are written in several capitalisations by real meters (Kamstrup: `kVAr`,
# `kVArh`); each spelling is unambiguous, so it maps to Home Assistant's one constant. (Other
# units are case-sensitive: `mWh` and `MWh` are not the same unit.)
_REACTIVE: Final = {unit.lower(): unit for unit in ("var", "kvar", "varh", "kvarh")}


def ha_unit(unit: str | None) -> str | None:
    """A line's unit as Home Assistant's constant for it, or as written; None for none."""
    if not unit:
        return None
    if (found := METER_UNITS.get(unit)) is not None:
        return found
    if (reactive := _REACTIVE.get(unit.lower())) is not None:
        return METER_UNITS[reactive]
    return unit


def device_class_for(
    unit: str | None,
    default: SensorDeviceClass | None,
    state_class: SensorStateClass | str | None,
) -> SensorDeviceClass | None:
    """The device class of a value in `unit` (HA's constant) whose description says `default`.

    Values without a unit, and descriptions without a unit-bearing class (counters, texts,
    tariffs, timestamps), keep the description's class.
    """
    if unit is None or default is None or default not in DEVICE_CLASS_UNITS:
        return default
    if unit in DEVICE_CLASS_UNITS[default]:
        return default
    for device_class in UNIT_DEVICE_CLASSES:
        if unit in DEVICE_CLASS_UNITS[device_class]:
            # A class that forbids the value's state class would be refused by HA: none then.
            if state_class is None or state_class in DEVICE_CLASS_STATE_CLASSES[device_class]:
                return device_class
            return None
    return None
