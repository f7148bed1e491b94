"""What each value of a telegram becomes in Home Assistant: the sensor description table.

Keys (and so unique ids) of values that core `dsmr` exposes are core's, so its entities carry on.
Every value name in a version's dsmr_parser telegram specification is either in `SENSORS`, handled
by the M-Bus devices (`MBUS_SENSORS`), or listed in `NOT_ENTITIES` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, partial
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    EntityCategory,
    UnitOfApparentPower,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfReactiveEnergy,
    UnitOfReactivePower,
    UnitOfVolume,
)
from homeassistant.helpers.typing import StateType

from . import line_values as lv
from .const import (
    DEVICE_NAME_COOLING,
    DEVICE_NAME_GAS,
    DEVICE_NAME_HEAT,
    DEVICE_NAME_WATER,
    MBUS_TYPE_COOLING_INLET,
    MBUS_TYPE_COOLING_OUTLET,
    MBUS_TYPE_GAS,
    MBUS_TYPE_HEAT,
    MBUS_TYPE_HEAT_COOLING,
    MBUS_TYPE_HEAT_INLET,
    MBUS_TYPE_WARM_WATER,
    MBUS_TYPE_WATER,
)
from .dsmr_library import version_setup
from .snapshot import Reading, Snapshot

type Value = StateType | datetime | Decimal


@dataclass(frozen=True, kw_only=True)
class DsmrSensorEntityDescription(SensorEntityDescription):
    """A telegram value (by dsmr_parser value name) as a sensor."""

    obis_name: str
    # Create only for these versions (a value name that has different keys per version).
    versions: frozenset[str] | None = None
    # Enabled by default only for these versions (where meters actually send the value).
    enabled_versions: frozenset[str] | None = None
    # DSMR 2.2/4 gas on the main telegram: a separate device keyed by `serial_id_gas`.
    is_gas: bool = False
    # The line's dsmr_parser object -> the value (None: its value; a Decimal becomes a float).
    convert_fn: Callable[[Any, str], Value] | None = None
    attributes_fn: Callable[[Any], dict[str, Any] | None] | None = None
    # A value computed from the whole telegram instead of one object (derived sensors).
    telegram_fn: Callable[[Any], Value] | None = None
    # Publish the mean over the update window instead of the latest value.
    average: bool = False
    # The snapshot -> this value's reading (the main meter's values: by key).
    value_fn: Callable[[Snapshot], Reading | None] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        """Read the value from the snapshot by key, unless told otherwise."""
        by_key: Any = self.value_fn
        if by_key is None:
            object.__setattr__(self, "value_fn", partial(_by_key, self.key))

    def enabled_in(self, version: str) -> bool:
        """Whether the entity is enabled by default on a meter of `version`."""
        versions = self.enabled_versions
        return self.entity_registry_enabled_default and (versions is None or version in versions)


def _by_key(key: str, snapshot: Snapshot) -> Reading | None:
    return snapshot.readings.get(key)


def _energy(key: str, obis: str, tk: str | None = None, **kw: Any) -> DsmrSensorEntityDescription:
    return DsmrSensorEntityDescription(
        key=key,
        obis_name=obis,
        translation_key=tk or key,
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        **kw,
    )


def _measure(
    key: str,
    obis: str,
    device_class: SensorDeviceClass | None,
    unit: str | None,
    tk: str | None = None,
    *,
    enabled: bool = False,
    average: bool = True,
    **kw: Any,
) -> DsmrSensorEntityDescription:
    return DsmrSensorEntityDescription(
        key=key,
        obis_name=obis,
        translation_key=tk or key,
        average=average,
        device_class=device_class,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=unit,
        entity_registry_enabled_default=enabled,
        **kw,
    )


def _diagnostic(
    key: str, obis: str, tk: str | None = None, **kw: Any
) -> DsmrSensorEntityDescription:
    kw.setdefault("entity_registry_enabled_default", False)
    return DsmrSensorEntityDescription(
        key=key,
        obis_name=obis,
        translation_key=tk or key,
        entity_category=EntityCategory.DIAGNOSTIC,
        **kw,
    )


def _gas_on_main(key: str, obis: str) -> DsmrSensorEntityDescription:
    return DsmrSensorEntityDescription(
        key=key,
        obis_name=obis,
        translation_key="gas_meter_reading",
        device_class=SensorDeviceClass.GAS,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfVolume.CUBIC_METERS,
        is_gas=True,
    )


def _counter(key: str, obis: str) -> DsmrSensorEntityDescription:
    return _diagnostic(key, obis, state_class=SensorStateClass.TOTAL_INCREASING)


KW, KVAR, KVARH = (
    UnitOfPower.KILO_WATT,
    UnitOfReactivePower.KILO_VOLT_AMPERE_REACTIVE,
    UnitOfReactiveEnergy.KILO_VOLT_AMPERE_REACTIVE_HOUR,
)
POWER, REACTIVE = SensorDeviceClass.POWER, SensorDeviceClass.REACTIVE_POWER
PHASES = (1, 2, 3)
TOTALS_SENT_BY = frozenset({"5L", "5S", "Q3D", "5EONHU", "MSn", "SAGEMCOM_T210_D_R"})
EVERYWHERE_BUT_BELGIUM = frozenset(
    {"2.2", "5EONHU", "MSn", "4", "4+", "5", "5L", "5S", "Q3D", "ISKRA_IE", "SAGEMCOM_T210_D_R"}
)

SENSORS: tuple[DsmrSensorEntityDescription, ...] = (
    _diagnostic("timestamp", "P1_MESSAGE_TIMESTAMP", device_class=SensorDeviceClass.TIMESTAMP),
    _measure("current_electricity_usage", "CURRENT_ELECTRICITY_USAGE", POWER, KW, enabled=True),
    _measure(
        "current_electricity_delivery", "CURRENT_ELECTRICITY_DELIVERY", POWER, KW, enabled=True
    ),
    DsmrSensorEntityDescription(
        key="net_power",
        obis_name="CURRENT_ELECTRICITY_USAGE",
        translation_key="net_power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.KILO_WATT,
        telegram_fn=lv.net_power,
        average=True,
        # Off by default: it would add a state write per window to every installation.
        entity_registry_enabled_default=False,
    ),
    DsmrSensorEntityDescription(
        key="electricity_active_tariff",
        obis_name="ELECTRICITY_ACTIVE_TARIFF",
        translation_key="electricity_active_tariff",
        device_class=SensorDeviceClass.ENUM,
        options=["low", "normal"],
        convert_fn=lv.tariff,
    ),
    *(
        _energy(f"electricity_used_tariff_{n}", f"ELECTRICITY_USED_TARIFF_{n}")
        for n in (1, 2, 3, 4)
    ),
    *(
        _energy(f"electricity_delivered_tariff_{n}", f"ELECTRICITY_DELIVERED_TARIFF_{n}")
        for n in (1, 2, 3, 4)
    ),
    _energy(
        "electricity_imported_total", "ELECTRICITY_IMPORTED_TOTAL", enabled_versions=TOTALS_SENT_BY
    ),
    _energy(
        "electricity_exported_total", "ELECTRICITY_EXPORTED_TOTAL", enabled_versions=TOTALS_SENT_BY
    ),
    *(
        _measure(
            f"instantaneous_active_power_l{n}_positive",
            f"INSTANTANEOUS_ACTIVE_POWER_L{n}_POSITIVE",
            POWER,
            KW,
        )
        for n in PHASES
    ),
    *(
        _measure(
            f"instantaneous_active_power_l{n}_negative",
            f"INSTANTANEOUS_ACTIVE_POWER_L{n}_NEGATIVE",
            POWER,
            KW,
        )
        for n in PHASES
    ),
    _counter("short_power_failure_count", "SHORT_POWER_FAILURE_COUNT"),
    _counter("long_power_failure_count", "LONG_POWER_FAILURE_COUNT"),
    _diagnostic(
        "power_failure_log",
        "POWER_EVENT_FAILURE_LOG",
        convert_fn=lv.event_count,
        attributes_fn=lv.failures,
    ),
    *(_counter(f"voltage_sag_l{n}_count", f"VOLTAGE_SAG_L{n}_COUNT") for n in PHASES),
    *(_counter(f"voltage_swell_l{n}_count", f"VOLTAGE_SWELL_L{n}_COUNT") for n in PHASES),
    *(
        _measure(
            f"instantaneous_voltage_l{n}",
            f"INSTANTANEOUS_VOLTAGE_L{n}",
            SensorDeviceClass.VOLTAGE,
            UnitOfElectricPotential.VOLT,
        )
        for n in PHASES
    ),
    *(
        _measure(
            f"instantaneous_current_l{n}",
            f"INSTANTANEOUS_CURRENT_L{n}",
            SensorDeviceClass.CURRENT,
            UnitOfElectricCurrent.AMPERE,
        )
        for n in PHASES
    ),
    # Belgium (e-MUCS): thresholds and the capacity tariff.
    _measure(
        "belgium_max_power_per_phase",
        "ACTUAL_TRESHOLD_ELECTRICITY",
        POWER,
        KW,
        "max_power_per_phase",
        versions=frozenset({"5B"}),
        entity_category=EntityCategory.DIAGNOSTIC,
        average=False,
    ),
    _measure(
        "actual_threshold_electricity",
        "ACTUAL_TRESHOLD_ELECTRICITY",
        POWER,
        KW,
        versions=EVERYWHERE_BUT_BELGIUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        average=False,
    ),
    _measure(
        "belgium_max_current_per_phase",
        "FUSE_THRESHOLD_L1",
        SensorDeviceClass.CURRENT,
        UnitOfElectricCurrent.AMPERE,
        "max_current_per_phase",
        versions=frozenset({"5B"}),
        entity_category=EntityCategory.DIAGNOSTIC,
        average=False,
    ),
    *(
        _measure(
            f"fuse_threshold_l{n}",
            f"FUSE_THRESHOLD_L{n}",
            SensorDeviceClass.CURRENT,
            UnitOfElectricCurrent.AMPERE,
            versions=EVERYWHERE_BUT_BELGIUM,
            entity_category=EntityCategory.DIAGNOSTIC,
            average=False,
        )
        for n in PHASES
    ),
    _measure(
        "belgium_current_average_demand",
        "BELGIUM_CURRENT_AVERAGE_DEMAND",
        POWER,
        KW,
        "current_average_demand",
        enabled=True,
        average=False,
    ),
    _measure(
        "belgium_maximum_demand_current_month",
        "BELGIUM_MAXIMUM_DEMAND_MONTH",
        POWER,
        KW,
        "maximum_demand_current_month",
        enabled=True,
        attributes_fn=lv.peak_time,
        average=False,
    ),
    _measure(
        "belgium_maximum_demand_13_months",
        "BELGIUM_MAXIMUM_DEMAND_13_MONTHS",
        POWER,
        KW,
        "maximum_demand_average_12_months",
        enabled=True,
        convert_fn=lv.average_peak,
        attributes_fn=lv.peak_history,
        average=False,
    ),
    # DSMR 2.2 and 4: the gas meter's reading on the main telegram (a separate device, as core).
    _gas_on_main("hourly_gas_meter_reading", "HOURLY_GAS_METER_READING"),
    _gas_on_main("gas_meter_reading", "GAS_METER_READING"),
    _diagnostic("gas_device_type", "DEVICE_TYPE", is_gas=True),
    _diagnostic("gas_valve_position", "VALVE_POSITION_GAS", is_gas=True),
    # E.ON Hungary (core's keys).
    DsmrSensorEntityDescription(
        key="eon_hu_electricity_combined",
        obis_name="ELECTRICITY_COMBINED",
        translation_key="electricity_combined",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    ),
    _measure(
        "eon_hu_instantaneous_power_factor_total",
        "INSTANTANEOUS_POWER_FACTOR_TOTAL",
        SensorDeviceClass.POWER_FACTOR,
        None,
        "instantaneous_power_factor_total",
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    *(
        _measure(
            f"eon_hu_instantaneous_power_factor_l{n}",
            f"INSTANTANEOUS_POWER_FACTOR_L{n}",
            SensorDeviceClass.POWER_FACTOR,
            None,
            f"instantaneous_power_factor_l{n}",
            entity_category=EntityCategory.DIAGNOSTIC,
        )
        for n in PHASES
    ),
    _measure(
        "eon_hu_frequency",
        "FREQUENCY",
        SensorDeviceClass.FREQUENCY,
        UnitOfFrequency.HERTZ,
        "frequency",
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    # Reactive and apparent energy and power (Sweden, Hungary, Luxembourg, Austria).
    DsmrSensorEntityDescription(
        key="electricity_reactive_imported_total",
        obis_name="ELECTRICITY_REACTIVE_IMPORTED_TOTAL",
        translation_key="electricity_reactive_imported_total",
        device_class=SensorDeviceClass.REACTIVE_ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=KVARH,
        entity_registry_enabled_default=False,
    ),
    *(
        DsmrSensorEntityDescription(
            key=name.lower(),
            obis_name=name,
            translation_key=name.lower(),
            device_class=SensorDeviceClass.REACTIVE_ENERGY,
            state_class=SensorStateClass.TOTAL_INCREASING,
            native_unit_of_measurement=KVARH,
            entity_registry_enabled_default=False,
        )
        for name in (
            "ELECTRICITY_REACTIVE_EXPORTED_TOTAL",
            "ELECTRICITY_REACTIVE_IMPORTED_TARIFF_1",
            "ELECTRICITY_REACTIVE_IMPORTED_TARIFF_2",
            "ELECTRICITY_REACTIVE_EXPORTED_TARIFF_1",
            "ELECTRICITY_REACTIVE_EXPORTED_TARIFF_2",
            "ELECTRICITY_REACTIVE_TOTAL_Q1",
            "ELECTRICITY_REACTIVE_TOTAL_Q2",
            "ELECTRICITY_REACTIVE_TOTAL_Q3",
            "ELECTRICITY_REACTIVE_TOTAL_Q4",
        )
    ),
    _measure("current_reactive_imported", "CURRENT_REACTIVE_IMPORTED", REACTIVE, KVAR),
    _measure("current_reactive_exported", "CURRENT_REACTIVE_EXPORTED", REACTIVE, KVAR),
    *(
        _measure(
            f"instantaneous_reactive_power_l{n}_{d}",
            f"INSTANTANEOUS_REACTIVE_POWER_L{n}_{d.upper()}",
            REACTIVE,
            KVAR,
        )
        for n in PHASES
        for d in ("positive", "negative")
    ),
    *(
        _measure(
            f"instantaneous_reactive_power_q{q}",
            f"INSTANTANEOUS_REACTIVE_POWER_Q{q}",
            REACTIVE,
            KVAR,
        )
        for q in (1, 2, 3, 4)
    ),
    _measure(
        "apparent_power_positive",
        "MSN_INSTANTANEOUS_APPARENT_POWER_POSITIVE",
        SensorDeviceClass.APPARENT_POWER,
        UnitOfApparentPower.KILO_VOLT_AMPERE,
    ),
    _measure(
        "apparent_power_negative",
        "MSN_INSTANTANEOUS_APPARENT_POWER_NEGATIVE",
        SensorDeviceClass.APPARENT_POWER,
        UnitOfApparentPower.KILO_VOLT_AMPERE,
    ),
    # Texts, switches and versions.
    _diagnostic("text_message", "TEXT_MESSAGE", convert_fn=lv.text),
    _diagnostic("text_message_code", "TEXT_MESSAGE_CODE", convert_fn=lv.text),
    *(
        _diagnostic(f"text_message_{n}", f"MSN_TEXT_MESSAGE_{n}", convert_fn=lv.text)
        for n in (2, 3, 4, 5)
    ),
    _diagnostic("actual_switch_position", "ACTUAL_SWITCH_POSITION"),
    _diagnostic("mbus_switch_position", "MSN_MBUS_SWITCH_POSITION"),
    _diagnostic("ct_ratio", "MSN_CT_RATIO"),
    _diagnostic("equipment_state", "Q3D_EQUIPMENT_STATE"),
    _diagnostic("p1_version", "P1_MESSAGE_HEADER"),
    _diagnostic("belgium_version_information", "BELGIUM_VERSION_INFORMATION", "p1_version"),
)

# Value names that are not sensors of the electricity meter, and why.
NOT_ENTITIES: dict[str, str] = {
    "EQUIPMENT_IDENTIFIER": "identifies the meter: device serial number and unique ids",
    "BELGIUM_EQUIPMENT_IDENTIFIER": "identifies the meter: device serial number and unique ids",
    "LUXEMBOURG_EQUIPMENT_IDENTIFIER": "identifies the meter: device serial number and unique ids",
    "Q3D_EQUIPMENT_IDENTIFIER": "identifies the meter: device serial number and unique ids",
    "COSEM_LOGICAL_DEVICE_NAME": "identifies the meter (E.ON HU uses it as equipment id)",
    "EQUIPMENT_SERIAL_NUMBER": "an identifier, not a measurement (redacted in diagnostics)",
    "Q3D_EQUIPMENT_SERIALNUMBER": "an identifier, not a measurement (redacted in diagnostics)",
    "EQUIPMENT_IDENTIFIER_GAS": "identifies the DSMR 2.2/4 gas meter: its device and unique ids",
    "MBUS_DEVICE_TYPE": "chooses the kind of M-Bus sub-meter device (MBUS_SENSORS)",
    "MBUS_EQUIPMENT_IDENTIFIER": "identifies an M-Bus sub-meter: its device and unique id",
    "MBUS_METER_READING": "the reading sensor of each M-Bus sub-meter (MBUS_SENSORS)",
    "MBUS_VALVE_POSITION": "a sub-meter's valve state; DSMR 5 meters report no valve actions",
}


def _mbus(
    key: str, tk: str, device_class: SensorDeviceClass, unit: str
) -> DsmrSensorEntityDescription:
    return DsmrSensorEntityDescription(
        key=key,
        obis_name="MBUS_METER_READING",
        translation_key=tk,
        device_class=device_class,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=unit,
        is_gas=device_class is SensorDeviceClass.GAS,
    )


_GAS = _mbus("gas_reading", "gas_meter_reading", SensorDeviceClass.GAS, UnitOfVolume.CUBIC_METERS)
_WATER = _mbus(
    "water_reading", "water_meter_reading", SensorDeviceClass.WATER, UnitOfVolume.CUBIC_METERS
)
_HEAT = _mbus(
    "heat_reading", "heat_meter_reading", SensorDeviceClass.ENERGY, UnitOfEnergy.GIGA_JOULE
)
_COOLING = _mbus(
    "cooling_reading", "cooling_meter_reading", SensorDeviceClass.ENERGY, UnitOfEnergy.GIGA_JOULE
)

# EN 13757-3 device type -> the reading's description and the device's name.
MBUS_SENSORS: dict[int, tuple[DsmrSensorEntityDescription, str]] = {
    MBUS_TYPE_GAS: (_GAS, DEVICE_NAME_GAS),
    MBUS_TYPE_HEAT: (_HEAT, DEVICE_NAME_HEAT),
    MBUS_TYPE_HEAT_INLET: (_HEAT, DEVICE_NAME_HEAT),
    MBUS_TYPE_HEAT_COOLING: (_HEAT, DEVICE_NAME_HEAT),
    MBUS_TYPE_WARM_WATER: (_WATER, DEVICE_NAME_WATER),
    MBUS_TYPE_WATER: (_WATER, DEVICE_NAME_WATER),
    MBUS_TYPE_COOLING_OUTLET: (_COOLING, DEVICE_NAME_COOLING),
    MBUS_TYPE_COOLING_INLET: (_COOLING, DEVICE_NAME_COOLING),
}


@cache
def spec_value_names(version: str) -> frozenset[str]:
    """Value names in dsmr_parser's telegram specification for a version token."""
    return frozenset(obj["value_name"] for obj in version_setup(version)[0]["objects"])


def version_sensors(version: str) -> list[DsmrSensorEntityDescription]:
    """The sensors of `version`'s values (the DSMR 2.2/4 gas meter's ones among them)."""
    names = spec_value_names(version)
    return [
        d for d in SENSORS if d.obis_name in names and (d.versions is None or version in d.versions)
    ]


def has_demand(version: str) -> bool:
    """Whether the version sends the quarter-hour demand (1-0:1.4.0): Belgian meters."""
    return "BELGIUM_CURRENT_AVERAGE_DEMAND" in spec_value_names(version)


def spec_has_checksum(version: str) -> bool:
    """Whether the version's telegrams carry a CRC (DSMR 2.2 and 3 do not)."""
    return bool(version_setup(version)[0]["checksum_support"])
