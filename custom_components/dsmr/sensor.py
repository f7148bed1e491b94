"""Sensors: every value a telegram carries, what follows from them, and the connection's health.

Entities for the configured version exist from setup on and restore their last state; keys (so
unique ids) of the values core `dsmr` has are core's. Sub-meters and lines no specification names
get their entities as they appear (submeters.py, generic.py).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import cache, partial
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass as Class,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass as State,
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
    UnitOfTime,
    UnitOfVolume,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import yaml_import
from .const import (
    CONF_AUTO_DISABLED,
    CONF_DSMR_VERSION,
    CONF_MAIN_FUSE,
    CONF_SERIAL_ID_GAS,
    LOGGER,
)
from .coordinator import DsmrConfigEntry, signal
from .entity import (
    ClientsSensor,
    DsmrSensor,
    DsmrSensorEntityDescription,
    HealthSensor,
    Value,
    main_device,
)
from .generic import GenericObisEntities
from .p1 import values
from .p1.snapshot import MAIN_GAS, MAIN_GAS_READINGS, NET_POWER, SIGNED_CURRENTS, Snapshot
from .p1.telegram import has_demand, value_names
from .submeters import GAS_FLOW, HourlyStatistics, Submeters, flow

PARALLEL_UPDATES = 0  # push: entities never poll
PLATFORM_SCHEMA = yaml_import.PLATFORM_SCHEMA  # `sensor: - platform: dsmr`, made an entry
async_setup_platform = yaml_import.async_setup_platform
ABSENT_PUBLISHES: Final = 3  # a value missing from this many publishes is disabled, once


def _sensor(
    name: str, key: str | None = None, tk: str | None = None, **kw: Any
) -> DsmrSensorEntityDescription:
    key = key or name.lower()
    kw.setdefault("value_fn", partial(Snapshot.number, name=name))
    kw.setdefault("line_fn", partial(Snapshot.line, name=name))
    return DsmrSensorEntityDescription(key=key, obis_name=name, translation_key=tk or key, **kw)


def _energy(
    name: str, key: str | None = None, tk: str | None = None, **kw: Any
) -> DsmrSensorEntityDescription:
    kw.setdefault("device_class", Class.ENERGY)
    kw.setdefault("native_unit_of_measurement", UnitOfEnergy.KILO_WATT_HOUR)
    kw.setdefault("state_class", State.TOTAL_INCREASING)
    return _sensor(name, key, tk, **kw)


def _total(name: str, direction: str) -> DsmrSensorEntityDescription:
    """A total register; the tariffs' sum when the meter sends none (off: a write a period)."""
    parts = tuple(f"ELECTRICITY_{direction}_TARIFF_{n}" for n in (1, 2, 3, 4))
    return _energy(
        name,
        sums=parts,
        enabled_versions=TOTALS_SENT_BY,
        value_fn=partial(Snapshot.total, name=name, parts=parts),
        line_fn=partial(Snapshot.total_line, name=name, parts=parts),
        line_only=False,
    )


def available_current(fuse: float) -> list[DsmrSensorEntityDescription]:
    """What each phase has left under the main fuse, and the least of them."""
    signed = tuple(SIGNED_CURRENTS)
    made = [(n, f"available_current_l{n}", signed[n - 1 : n]) for n in L123]
    return [
        _measure(
            f"INSTANTANEOUS_CURRENT_L{n}",
            Class.CURRENT,
            A,
            key,
            average=None,
            value_fn=partial(Snapshot.available, phases=phases, fuse=fuse),
            line_only=False,
            **ON,
        )
        for n, key, phases in [*made, (1, "available_current", signed)]
    ]


def _reactive(name: str) -> DsmrSensorEntityDescription:
    return _energy(
        name,
        device_class=Class.REACTIVE_ENERGY,
        native_unit_of_measurement=KVARH,
        entity_registry_enabled_default=False,
    )


def _measure(
    name: str,
    cls: Class | None,
    unit: str | None,
    key: str | None = None,
    tk: str | None = None,
    **kw: Any,
) -> DsmrSensorEntityDescription:
    kw.setdefault("entity_registry_enabled_default", False)
    kw.setdefault("average", name)
    kw.update(device_class=cls, state_class=State.MEASUREMENT, native_unit_of_measurement=unit)
    return _sensor(name, key, tk, **kw)


def _diagnostic(
    name: str, key: str | None = None, tk: str | None = None, **kw: Any
) -> DsmrSensorEntityDescription:
    kw.setdefault("entity_registry_enabled_default", False)
    kw.setdefault("value_fn", _plain(name))
    return _sensor(name, key, tk, entity_category=EntityCategory.DIAGNOSTIC, **kw)


def _plain(name: str) -> Callable[[Snapshot], Value]:
    def value(snapshot: Snapshot) -> Value:
        raw = snapshot.value(name)
        return snapshot.number(name) if isinstance(raw, Decimal) else raw

    return value


def _keyed(key: str, state_class: State | None = None, **kw: Any) -> SensorEntityDescription:
    return SensorEntityDescription(key=key, translation_key=key, state_class=state_class, **kw)


def _text(name: str, key: str | None = None) -> DsmrSensorEntityDescription:
    return _diagnostic(name, key, value_fn=lambda s: values.text(s.line(name)))


KW = UnitOfPower.KILO_WATT
KVAR = UnitOfReactivePower.KILO_VOLT_AMPERE_REACTIVE
KVARH = UnitOfReactiveEnergy.KILO_VOLT_AMPERE_REACTIVE_HOUR
KVA = UnitOfApparentPower.KILO_VOLT_AMPERE
A, V = UnitOfElectricCurrent.AMPERE, UnitOfElectricPotential.VOLT
L123 = (1, 2, 3)
TOTALS_SENT_BY = frozenset({"5L", "5S", "Q3D", "5EONHU", "MSn", "SAGEMCOM_T210_D_R"})
BE = frozenset({"5B"})
NOT_BE = frozenset(
    {"2.2", "5EONHU", "MSn", "4", "4+", "5", "5L", "5S", "Q3D", "ISKRA_IE", "SAGEMCOM_T210_D_R"}
)
ON: dict[str, Any] = {"entity_registry_enabled_default": True}
# The meter's own averages: on; shown to 3 decimals, as the capacity-tariff entities beside them.
AS_SENT_ON: dict[str, Any] = {"average": None, "suggested_display_precision": 3, **ON}
DIAGNOSTIC: dict[str, Any] = {"entity_category": EntityCategory.DIAGNOSTIC, "average": None}
PEAKS = "BELGIUM_MAXIMUM_DEMAND_13_MONTHS"
MONTH_PEAK = "BELGIUM_MAXIMUM_DEMAND_MONTH"
FAILURE_LOG = "POWER_EVENT_FAILURE_LOG"

SENSORS: tuple[DsmrSensorEntityDescription, ...] = (
    _diagnostic(
        "P1_MESSAGE_TIMESTAMP",
        "timestamp",
        device_class=Class.TIMESTAMP,
        value_fn=partial(Snapshot.value, name="P1_MESSAGE_TIMESTAMP"),
    ),
    _measure("CURRENT_ELECTRICITY_USAGE", Class.POWER, KW, **ON),
    _measure("CURRENT_ELECTRICITY_DELIVERY", Class.POWER, KW, **ON),
    # Off by default: it would add a state write per window to every installation.
    _measure(
        "CURRENT_ELECTRICITY_USAGE",
        Class.POWER,
        KW,
        "net_power",
        average=NET_POWER,
        value_fn=partial(Snapshot.number, name=NET_POWER),
        line_only=False,  # export too
    ),
    _sensor(
        "ELECTRICITY_ACTIVE_TARIFF",
        device_class=Class.ENUM,
        options=["low", "normal"],
        value_fn=Snapshot.tariff,
    ),
    *(_energy(f"ELECTRICITY_{d}_TARIFF_{n}") for d in ("USED", "DELIVERED") for n in (1, 2, 3, 4)),
    *(
        _total(f"ELECTRICITY_{way}_TOTAL", d)
        for way, d in (("IMPORTED", "USED"), ("EXPORTED", "DELIVERED"))
    ),
    *(
        _measure(f"INSTANTANEOUS_ACTIVE_POWER_L{n}_{d}", Class.POWER, KW)
        for n in L123
        for d in ("POSITIVE", "NEGATIVE")
    ),
    _diagnostic("SHORT_POWER_FAILURE_COUNT", state_class=State.TOTAL_INCREASING),
    _diagnostic("LONG_POWER_FAILURE_COUNT", state_class=State.TOTAL_INCREASING),
    _diagnostic(
        FAILURE_LOG,
        "power_failure_log",
        value_fn=lambda s: None if (log := s.line(FAILURE_LOG)) is None else int(log.buffer_length),
        attributes_fn=lambda s: values.failures(s.line(FAILURE_LOG)),
    ),
    *(
        _diagnostic(f"VOLTAGE_{e}_L{n}_COUNT", state_class=State.TOTAL_INCREASING)
        for e in ("SAG", "SWELL")
        for n in L123
    ),
    *(_measure(f"INSTANTANEOUS_VOLTAGE_L{n}", Class.VOLTAGE, V) for n in L123),
    *(
        _measure(
            f"INSTANTANEOUS_CURRENT_L{n}",
            Class.CURRENT,
            A,
            average=f"SIGNED_CURRENT_L{n}",
            value_fn=partial(Snapshot.number, name=f"SIGNED_CURRENT_L{n}"),
            line_only=False,  # signed by the phase's power lines
        )
        for n in L123
    ),
    # Belgium (e-MUCS): thresholds and the capacity tariff.
    _measure(
        "ACTUAL_TRESHOLD_ELECTRICITY",
        Class.POWER,
        KW,
        "belgium_max_power_per_phase",
        "max_power_per_phase",
        versions=BE,
        **DIAGNOSTIC,
    ),
    _measure(
        "ACTUAL_TRESHOLD_ELECTRICITY",
        Class.POWER,
        KW,
        "actual_threshold_electricity",
        versions=NOT_BE,
        **DIAGNOSTIC,
    ),
    _measure(
        "FUSE_THRESHOLD_L1",
        Class.CURRENT,
        A,
        "belgium_max_current_per_phase",
        "max_current_per_phase",
        versions=BE,
        **DIAGNOSTIC,
    ),
    *(
        _measure(f"FUSE_THRESHOLD_L{n}", Class.CURRENT, A, versions=NOT_BE, **DIAGNOSTIC)
        for n in L123
    ),
    _measure(
        "BELGIUM_CURRENT_AVERAGE_DEMAND",
        Class.POWER,
        KW,
        tk="current_average_demand",
        **AS_SENT_ON,
    ),
    _measure(
        MONTH_PEAK,
        Class.POWER,
        KW,
        "belgium_maximum_demand_current_month",
        "maximum_demand_current_month",
        attributes_fn=lambda s: values.peak_time(s.line(MONTH_PEAK)),
        **AS_SENT_ON,
    ),
    _measure(
        PEAKS,
        Class.POWER,
        KW,
        "belgium_maximum_demand_13_months",
        "maximum_demand_average_12_months",
        value_fn=lambda s: values.average_peak(s.line(PEAKS)),
        attributes_fn=lambda s: values.peak_history(s.line(PEAKS)),
        **AS_SENT_ON,
    ),
    # DSMR 2.2 and 4: the gas meter's reading on the main telegram (its own device, as core).
    *(
        _energy(
            name,
            tk="gas_meter_reading",
            device_class=Class.GAS,
            native_unit_of_measurement=UnitOfVolume.CUBIC_METERS,
            is_gas=True,
        )
        for name in MAIN_GAS_READINGS
    ),
    _diagnostic("DEVICE_TYPE", "gas_device_type", is_gas=True),
    _diagnostic("VALVE_POSITION_GAS", "gas_valve_position", is_gas=True),
    # E.ON Hungary (core's keys).
    _energy(
        "ELECTRICITY_COMBINED",
        "eon_hu_electricity_combined",
        "electricity_combined",
        state_class=State.TOTAL,
    ),
    *(
        _measure(
            f"INSTANTANEOUS_POWER_FACTOR_{p}",
            Class.POWER_FACTOR,
            None,
            f"eon_hu_instantaneous_power_factor_{p.lower()}",
            f"instantaneous_power_factor_{p.lower()}",
            entity_category=EntityCategory.DIAGNOSTIC,
        )
        for p in ("TOTAL", "L1", "L2", "L3")
    ),
    _measure(
        "FREQUENCY",
        Class.FREQUENCY,
        UnitOfFrequency.HERTZ,
        "eon_hu_frequency",
        "frequency",
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    # Reactive and apparent energy and power (Sweden, Hungary, Luxembourg, Austria).
    *(
        _reactive(f"ELECTRICITY_REACTIVE_{d}_{t}")
        for d in ("IMPORTED", "EXPORTED")
        for t in ("TOTAL", "TARIFF_1", "TARIFF_2")
    ),
    *(_reactive(f"ELECTRICITY_REACTIVE_TOTAL_Q{q}") for q in (1, 2, 3, 4)),
    _measure("CURRENT_REACTIVE_IMPORTED", Class.REACTIVE_POWER, KVAR),
    _measure("CURRENT_REACTIVE_EXPORTED", Class.REACTIVE_POWER, KVAR),
    *(
        _measure(f"INSTANTANEOUS_REACTIVE_POWER_L{n}_{d}", Class.REACTIVE_POWER, KVAR)
        for n in L123
        for d in ("POSITIVE", "NEGATIVE")
    ),
    *(
        _measure(f"INSTANTANEOUS_REACTIVE_POWER_Q{q}", Class.REACTIVE_POWER, KVAR)
        for q in (1, 2, 3, 4)
    ),
    *(
        _measure(
            f"MSN_INSTANTANEOUS_APPARENT_POWER_{d}",
            Class.APPARENT_POWER,
            KVA,
            f"apparent_power_{d.lower()}",
        )
        for d in ("POSITIVE", "NEGATIVE")
    ),
    # Texts, switches and versions.
    _text("TEXT_MESSAGE"),
    _text("TEXT_MESSAGE_CODE"),
    *(_text(f"MSN_TEXT_MESSAGE_{n}", f"text_message_{n}") for n in (2, 3, 4, 5)),
    _diagnostic("ACTUAL_SWITCH_POSITION"),
    _diagnostic("MSN_MBUS_SWITCH_POSITION", "mbus_switch_position"),
    _diagnostic("MSN_CT_RATIO", "ct_ratio"),
    _diagnostic("Q3D_EQUIPMENT_STATE", "equipment_state"),
    _diagnostic("P1_MESSAGE_HEADER", "p1_version"),
    _diagnostic("BELGIUM_VERSION_INFORMATION", tk="p1_version"),
)
# Value names without a sensor of their own: identifiers name the devices and unique ids, and
# the M-Bus lines are the sub-meters' (MBUS_VALVE_POSITION: DSMR 5 meters report no actions).
NOT_SENSORS: Final = frozenset(
    {
        "EQUIPMENT_IDENTIFIER",
        "BELGIUM_EQUIPMENT_IDENTIFIER",
        "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
        "Q3D_EQUIPMENT_IDENTIFIER",
        "COSEM_LOGICAL_DEVICE_NAME",
        "EQUIPMENT_SERIAL_NUMBER",
        "Q3D_EQUIPMENT_SERIALNUMBER",
        "EQUIPMENT_IDENTIFIER_GAS",
        "MBUS_DEVICE_TYPE",
        "MBUS_EQUIPMENT_IDENTIFIER",
        "MBUS_METER_READING",
        "MBUS_VALVE_POSITION",
    }
)


def _kw(value: float | None) -> float | None:
    """A power to the meter's three decimals (kW): no float noise in a state or attribute."""
    return None if value is None else round(value, 3)


def _forecast(s: Snapshot) -> float | None:
    return None if s.forecast is None else _kw(s.forecast.forecast_kw)


def _forecast_attributes(s: Snapshot) -> dict[str, Any]:
    if (quarter := s.forecast) is None:
        return {}
    return {  # (times shown local by the entity)
        "quarter_start": quarter.quarter_start,
        "quarter_end": quarter.quarter_end,
        "demand_so_far": _kw(quarter.average_kw),
        "previous_quarter": _kw(quarter.previous_quarter_kw),
    }


def _headroom(s: Snapshot) -> float | None:
    return None if s.forecast is None else _kw(s.forecast.headroom_kw(s.threshold_kw))


def _headroom_attributes(s: Snapshot) -> dict[str, Any]:
    quarter = s.forecast
    return {
        "limit": None if quarter is None else _kw(quarter.limit_kw(s.threshold_kw)),
        "month_peak": None if quarter is None else _kw(quarter.month_peak_kw),
        "threshold": s.threshold_kw,
    }


DEMAND_SENSORS: Final = tuple(
    DsmrSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=Class.POWER,
        state_class=State.MEASUREMENT,
        native_unit_of_measurement=KW,
        suggested_display_precision=3,
        value_fn=value_fn,
        attributes_fn=attributes_fn,
    )
    for key, value_fn, attributes_fn in (
        ("quarter_hour_forecast", _forecast, _forecast_attributes),
        ("peak_headroom", _headroom, _headroom_attributes),
    )
)
HEALTH_SENSORS: Final = (
    _keyed("telegrams_per_minute", State.MEASUREMENT, native_unit_of_measurement="telegrams/min"),
    _keyed("skipped_telegrams", State.TOTAL_INCREASING),
    _keyed("last_telegram", device_class=Class.TIMESTAMP),
    _keyed(
        "meter_clock_offset",
        State.MEASUREMENT,
        device_class=Class.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
    ),
)
CLIENTS: Final = _keyed(
    "rebroadcast_clients", State.MEASUREMENT, entity_category=EntityCategory.DIAGNOSTIC
)


@cache
def version_sensors(version: str) -> tuple[DsmrSensorEntityDescription, ...]:
    """The sensors of a version's values (the DSMR 2.2/4 gas meter's among them)."""
    names = value_names(version)
    return tuple(
        d
        for d in SENSORS
        if (d.obis_name in names or names.intersection(d.sums))
        and (d.versions is None or version in d.versions)
    )


def averaged(version: str) -> frozenset[str]:
    """What the update window averages for a version's sensors."""
    return frozenset(d.average for d in version_sensors(version) if d.average)


async def async_setup_entry(
    hass: HomeAssistant, entry: DsmrConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """The meter's entities now; sub-meters' and unnamed lines' as they appear."""
    coordinator = entry.runtime_data.coordinator
    version = entry.data[CONF_DSMR_VERSION]
    gas = CONF_SERIAL_ID_GAS in entry.data  # a DSMR 2.2/4 gas meter on the main telegram
    device, serial = main_device(entry)
    gas_device, gas_serial = main_device(entry, gas=True)
    described = [d for d in version_sensors(version) if gas or not d.is_gas]
    meter = [
        DsmrSensor(entry, d, gas_device, f"{gas_serial}_{d.key}")
        if d.is_gas
        else DsmrSensor(entry, d, device, f"{serial}_{d.key}")
        for d in described
    ]
    if fuse := float(entry.options.get(CONF_MAIN_FUSE, 0)):  # (a phase never sent: disabled)
        names = value_names(version)
        fused = [d for d in available_current(fuse) if d.obis_name in names]
        meter += [DsmrSensor(entry, d, device, f"{serial}_{d.key}") for d in fused]
    entities: list[SensorEntity] = [*meter]
    entities += [HealthSensor(coordinator, d, device, f"{serial}_{d.key}") for d in HEALTH_SENSORS]
    if has_demand(version):
        entities += [DsmrSensor(entry, d, device, f"{serial}_{d.key}") for d in DEMAND_SENSORS]
    entities += [
        DsmrSensor(entry, flow(GAS_FLOW, MAIN_GAS), gas_device, f"{gas_serial}_{d.key}_flow")
        for d in described
        if d.obis_name in MAIN_GAS_READINGS
    ]

    submeters = Submeters(entry, async_add_entities)
    generic = GenericObisEntities(entry, async_add_entities, device, serial)
    entities += [*submeters.restore(), *generic.restore()]
    if (server := entry.runtime_data.rebroadcast) is not None:
        entities.append(ClientsSensor(server, CLIENTS, device, f"{serial}_{CLIENTS.key}"))
    async_add_entities(entities)
    for update in (submeters.update, generic.update):
        entry.async_on_unload(async_dispatcher_connect(hass, signal(entry.entry_id, "new"), update))
        update()  # a telegram may have come while setup opened the port
    statistics = HourlyStatistics(entry)
    entry.async_on_unload(
        async_dispatcher_connect(hass, signal(entry.entry_id, "reading"), statistics.update)
    )
    statistics.update()
    _disable_absent(entry, meter)


def _disable_absent(entry: DsmrConfigEntry, meter: list[DsmrSensor]) -> None:
    """After the first publishes: disable (once) the values the meter never sent."""
    coordinator = entry.runtime_data.coordinator
    waiting = set(meter)
    publishes: set[int] = set()

    @callback
    def update() -> None:
        snapshot = coordinator.data
        if snapshot is None:
            return
        publishes.add(snapshot.published)
        waiting.difference_update(
            [e for e in waiting if snapshot.line(str(e.entity_description.obis_name)) is not None]
        )
        if len(publishes) < ABSENT_PUBLISHES:
            return
        stop()
        registry = er.async_get(coordinator.hass)
        done: list[str] = list(entry.data.get(CONF_AUTO_DISABLED, []))
        for entity in (e for e in waiting if e.entity_id and e.native_value is None):  # never sent
            reg = registry.async_get(entity.entity_id)
            if reg is None or reg.disabled_by or reg.unique_id in done:
                continue  # disabled, or enabled again by the user after we did
            LOGGER.info("%s: the meter does not send this value; disabling it", entity.entity_id)
            done.append(reg.unique_id)
            registry.async_update_entity(
                entity.entity_id, disabled_by=er.RegistryEntryDisabler.INTEGRATION
            )
        if done != entry.data.get(CONF_AUTO_DISABLED, []):
            coordinator.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_AUTO_DISABLED: done}
            )

    remove: list[Callable[[], None]] = [coordinator.async_add_listener(update)]

    @callback
    def stop() -> None:
        while remove:
            remove.pop()()

    entry.async_on_unload(stop)
    update()
