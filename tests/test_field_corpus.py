"""Every value a real meter sends is shown: the field corpus, end to end over TCP.

Each telegram of tests/fixtures/field is served as recorded by the simulator's `Replay` meter on
a real socket; the integration is set up on it (all entities enabled) and, for every value that
dsmr_parser reads from the telegram (M-Bus devices included) and every line no specification
names (our generic sensors), some entity must show the meter's number, in the meter's unit (as
Home Assistant's constant for it; a unit HA has no constant for is kept as written), with the
device class the unit calls for. Value names in `sensor.NOT_SENSORS` are identifiers and the
like, deliberately not entities.

What fails today is in `KNOWN_GAPS`, per file, with the reason. The check is strict both ways:
a new problem fails, and so does a listed one that no longer occurs (remove it then).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser
from homeassistant.components.sensor import DEVICE_CLASS_UNITS, SensorDeviceClass
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNKNOWN,
    UnitOfVolume,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.connection import CannotCommunicate
from custom_components.dsmr.const import CONF_SERIAL_ID, CONF_SERIAL_ID_GAS
from custom_components.dsmr.detect import async_validated
from custom_components.dsmr.entity import DsmrSensorEntityDescription
from custom_components.dsmr.generic import obis_key, parse_value
from custom_components.dsmr.p1.snapshot import Snapshot, Window
from custom_components.dsmr.p1.telegram import (
    TelegramReader,
    decrypt,
    gas_identifier,
    identifier,
)
from custom_components.dsmr.sensor import NOT_SENSORS, SENSORS
from custom_components.dsmr.submeters import KINDS
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .field_corpus import CORPUS, Recording
from .field_known_gaps import KNOWN_GAPS, NOT_IDENTIFIED
from .helpers import enable_all, entry_data, send, setup_meter

# Home Assistant's units (of any device class), by their text; the meter's unit is mapped to the
# one that is exactly it (a different spelling of the same unit, e.g. "kVArh", maps when unambiguous).
_HA_UNITS = {str(unit) for units in DEVICE_CLASS_UNITS.values() for unit in units if unit}
_CLASS_OF_UNIT: dict[str, SensorDeviceClass] = {
    **dict.fromkeys(["Wh", "kWh", "MWh", "GJ", "MJ"], SensorDeviceClass.ENERGY),
    **dict.fromkeys(["W", "kW"], SensorDeviceClass.POWER),
    **dict.fromkeys(["var", "kvar"], SensorDeviceClass.REACTIVE_POWER),
    **dict.fromkeys(["varh", "kvarh"], SensorDeviceClass.REACTIVE_ENERGY),
    **dict.fromkeys(["VA", "kVA"], SensorDeviceClass.APPARENT_POWER),
    "V": SensorDeviceClass.VOLTAGE,
    "A": SensorDeviceClass.CURRENT,
    "Hz": SensorDeviceClass.FREQUENCY,
}
# M-Bus device types whose m³ reading is water (EN 13757-3: 6 warm water, 7 water).
_WATER_TYPES = {6, 7}


def ha_unit(unit: str) -> str:
    """Home Assistant's constant for a unit as a meter writes it (else the unit as written)."""
    if unit == "m3":
        return UnitOfVolume.CUBIC_METERS
    if unit in _HA_UNITS:
        return unit
    same = [known for known in _HA_UNITS if known.lower() == unit.lower()]
    return same[0] if len(same) == 1 else unit


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class Shown:
    """What the entry's entities show, looked up by unique id."""

    def __init__(self, hass: HomeAssistant, entry: MockConfigEntry) -> None:
        """Index the entry's entities."""
        self.hass = hass
        self.by_unique_id = {
            reg.unique_id: reg.entity_id
            for reg in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        }
        data = entry.data
        self.serial = data.get(CONF_SERIAL_ID) or entry.entry_id
        self.gas_serial = data.get(CONF_SERIAL_ID_GAS) or entry.entry_id
        self.problems: dict[str, str] = {}

    def check(
        self,
        label: str,
        unique_ids: list[str],
        expected: Any,
        unit: str | None,
        device_class: SensorDeviceClass | None,
    ) -> None:
        """Record a problem unless an entity shows `expected` in `unit` with `device_class`."""
        entity_ids = [self.by_unique_id[u] for u in unique_ids if u in self.by_unique_id]
        if not entity_ids:
            self.problems[label] = f"no entity (unique id {' or '.join(unique_ids)})"
            return
        state = self.hass.states.get(entity_ids[0])
        if state is None:
            self.problems[label] = f"{entity_ids[0]} is not enabled"
            return
        shown_unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
        shown_class = state.attributes.get(ATTR_DEVICE_CLASS)
        said = f"meter says {expected} {unit or ''}".rstrip()
        wrong = []
        if not _same_value(state.state, expected):
            wrong.append(f"shows {state.state}")
        if unit is not None and shown_unit != ha_unit(unit):
            wrong.append(f"unit {shown_unit} (want {ha_unit(unit)})")
        if device_class is not None and shown_class != device_class:
            wrong.append(f"device class {shown_class} (want {device_class})")
        if wrong:
            self.problems[label] = f"{entity_ids[0]}: {', '.join(wrong)}; {said}"


def _same_value(state: str, expected: Any) -> bool:
    if expected is None or expected == "":
        return state in {STATE_UNKNOWN, ""}
    if isinstance(expected, datetime):
        return state != STATE_UNKNOWN and datetime.fromisoformat(state) == expected
    if (number := _number(expected)) is not None and not isinstance(expected, str):
        return _number(state) == number
    return state == str(expected)


def _values(telegram: Telegram) -> Iterator[tuple[str, Any, int | None, int | None]]:
    """(value name, object, M-Bus channel, M-Bus device type) for everything dsmr_parser read."""
    for name, obj in telegram:
        if name != "MBUS_DEVICES":
            yield name, obj, None, None
            continue
        for device in obj:
            type_obj = getattr(device, "MBUS_DEVICE_TYPE", None)
            device_type = _number(getattr(type_obj, "value", None))
            for item_name, item in device:
                typed = int(device_type) if device_type is not None else None
                yield item_name, item, device.channel_id, typed


def _shows_its_line(description: DsmrSensorEntityDescription) -> bool | None:
    """Whether the description shows its line's value as sent (a number, a text, a time).

    False: a conversion of it (a tariff, a decoded text, the average of the peaks); None: a
    value made from other lines too (net power), which no line of the meter says.
    """
    shown = description.value_fn
    if isinstance(shown, partial) and shown.func in (Snapshot.number, Snapshot.value):
        return True if shown.keywords.get("name") == description.obis_name else None
    return shown.__qualname__ == "_plain.<locals>.value"  # sensor.py's number or text


def _unit_of(description: DsmrSensorEntityDescription, obj: Any) -> str | None:
    """The unit the meter gave the value this description shows (None: not a unit value)."""
    if isinstance(obj, list):  # Belgian monthly peaks: each carries its unit
        units = {peak.unit for peak in obj if peak.value is not None}
        return units.pop() if len(units) == 1 else None
    if not _shows_its_line(description):
        return None
    unit = getattr(obj, "unit", None)
    return unit if isinstance(unit, str) and unit else None


def _snapshot(telegram: Telegram, version: str) -> Snapshot:
    """The snapshot of one telegram, as the coordinator publishes it."""
    window = Window(version, ())
    window.add(telegram)
    return window.publish(None, 0.0, fresh=True, replaced=False)


def _class_for(unit: str | None, *, gas: bool) -> SensorDeviceClass | None:
    if unit is None:
        return None
    if unit == "m3":
        return SensorDeviceClass.GAS if gas else SensorDeviceClass.WATER
    return _CLASS_OF_UNIT.get(ha_unit(unit))


def check_telegram(shown: Shown, telegram: Telegram, version: str) -> None:
    """Check every value dsmr_parser read from `telegram`."""
    snapshot = _snapshot(telegram, version)
    for name, obj, channel, device_type in _values(telegram):
        label = name if channel is None else f"{name}@{channel}"
        if name == "MBUS_METER_READING":
            _check_mbus_reading(shown, telegram, label, obj, channel, device_type)
            continue
        if name in NOT_SENSORS:
            continue
        descriptions = [
            d
            for d in SENSORS
            if d.obis_name == name
            and _shows_its_line(d) is not None
            and (d.versions is None or version in d.versions)
        ]
        if not descriptions:
            shown.problems[label] = "no description shows this value"
        for description in descriptions:
            serial = shown.gas_serial if description.is_gas else shown.serial
            unit = _unit_of(description, obj)
            shown.check(
                label if len(descriptions) == 1 else f"{label} ({description.key})",
                [f"{serial}_{description.key}"],
                obj.value if _shows_its_line(description) else description.value_fn(snapshot),
                unit,
                _class_for(unit, gas=True),
            )


def _check_mbus_reading(
    shown: Shown,
    telegram: Telegram,
    label: str,
    obj: Any,
    channel: int | None,
    device_type: int | None,
) -> None:
    if device_type not in KINDS:
        shown.problems[label] = f"M-Bus device type {device_type} has no sensor"
        return
    device = telegram.get_mbus_device_by_channel(channel)
    ident = getattr(getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None), "value", None)
    serials = {shown.gas_serial, shown.serial}
    unique_ids = ([str(ident)] if ident else []) + [f"{s}_{channel}" for s in sorted(serials)]
    unit = obj.unit or None
    gas = device_type not in _WATER_TYPES
    shown.check(label, unique_ids, obj.value, unit, _class_for(unit, gas=gas))


def check_generic(shown: Shown, unknown_lines: dict[str, str]) -> None:
    """Check every line no specification names (the generic sensors, a number or text)."""
    for code, rest in unknown_lines.items():
        parsed = parse_value(rest)
        expected, unit = parsed if isinstance(parsed, tuple) else (parsed, None)
        shown.check(f"obis {code}", [f"{shown.serial}_{obis_key(code)}"], expected, unit, None)


async def shown_problems(
    hass: HomeAssistant, servers: list[BaseServer], recording: Recording, expect: Recording
) -> dict[str, str]:
    """Serve `recording`, show everything, and check what `expect` says the meter sent."""
    server = TcpServer(recording.replay())
    await server.start()
    servers.append(server)
    # Encrypted frames are identified by the config flow's own validation (the test helper
    # reads plain telegrams only); test_validation covers the flow for every recording.
    entry = await setup_meter(hass, server, validate=recording.key is not None)
    # Lines no specification names count from their second telegram on meters without CRC.
    await send(entry, server)
    await enable_all(hass, entry)
    await send(entry, server)
    shown = Shown(hass, entry)
    check_telegram(shown, dsmr_parsers_reading(expect), expect.version)
    check_generic(
        shown, dict(TelegramReader(expect.specification()).read(plain(expect)).unknown_lines)
    )
    return shown.problems


def plain(recording: Recording) -> str:
    """The telegram's text, decrypted (without checking the tag) as the reader decrypts it."""
    if recording.key is None:
        return recording.text
    return decrypt(recording.frame, recording.key, None)


def dsmr_parsers_reading(recording: Recording) -> Telegram:
    """The telegram as dsmr_parser's own parser reads it."""
    spec = recording.specification()
    if recording.key is not None:
        keys = {"encryption_key": recording.key, "authentication_key": None}
        return TelegramParser(spec).parse(recording.frame.hex(), **keys)
    return TelegramParser(spec).parse(recording.text)


@pytest.mark.parametrize("recording", CORPUS, ids=lambda recording: recording.name)
async def test_every_value_is_shown(
    hass: HomeAssistant, servers: list[BaseServer], recording: Recording
) -> None:
    """Some entity shows each value the meter sent, in its unit, with the right device class."""
    problems = await shown_problems(hass, servers, recording, recording)
    known = KNOWN_GAPS.get(recording.name, {})
    new = {label: problem for label, problem in problems.items() if label not in known}
    assert not new, "\n".join(f"{label}: {problem}" for label, problem in new.items())
    gone = sorted(set(known) - set(problems))
    assert not gone, f"no longer a problem, remove from KNOWN_GAPS: {gone}"


@pytest.mark.parametrize("recording", CORPUS, ids=lambda recording: recording.name)
async def test_validation(
    hass: HomeAssistant, servers: list[BaseServer], recording: Recording
) -> None:
    """The config flow's validation identifies each meter from its telegram (or knowingly not)."""
    server = TcpServer(recording.replay(), interval=0.05)
    await server.start()
    servers.append(server)
    if recording.name in NOT_IDENTIFIED:
        with pytest.raises(CannotCommunicate):
            await async_validated(entry_data(server), 1)
        return
    data = await async_validated(entry_data(server), 10)
    telegram, version = dsmr_parsers_reading(recording), recording.version
    assert data[CONF_SERIAL_ID] == identifier(telegram, version)
    assert data[CONF_SERIAL_ID_GAS] == gas_identifier(telegram, version)


async def test_a_wrong_expectation_is_caught(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    """The check is not vacuous: another meter's values (same version and lines) are caught."""
    served, expected = (
        next(r for r in CORPUS if r.name == name)
        for name in ("nl-kaifa-dsmr42-gas.txt", "nl-kaifa-dsmr42-export-gas.txt")
    )
    problems = await shown_problems(hass, servers, served, expected)
    assert problems["ELECTRICITY_USED_TARIFF_1"] == (
        "sensor.electricity_meter_energy_consumption_tarif_1: shows 6285.065; "
        "meter says 4726.494 kWh"
    )
    assert problems["HOURLY_GAS_METER_READING@1"] == (
        "sensor.gas_meter_gas_consumption: shows 4836.851; meter says 5359.919 m3"
    )
    assert len(problems) >= 15
