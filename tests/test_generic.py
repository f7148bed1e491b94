"""Generic sensors for OBIS lines no specification names: simulator -> TCP -> reader -> entities."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from homeassistant.components.sensor import SensorStateClass
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache_with_extra_data,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.dsmr.const import CONF_GENERIC_OBIS
from custom_components.dsmr.generic import (
    MAX_CODES,
    line_value,
    obis_description,
    parse_value,
    restored_value,
    state_class_of,
)
from dsmr_sim.meter import Meter
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .helpers import entity_snapshot, identified, send, setup_meter, wait_for

# Lines a DSMR 5 meter may send that its specification does not name.
EXTRA = [
    "1-0:3.8.0(000123.456*kvarh)",  # a register: a number, no state class
    "1-0:3.7.0(00.381*kvar)",  # instantaneous: a number, state class measurement
    "1-0:9.8.0(000042.000*kVAh)",  # a unit Home Assistant has no constant for: kept as sent
    "0-0:96.3.10(1)",  # a number without a unit
    "0-0:96.50.1(Xemex)",  # text
    "1-1:31.4.0(00200*A)(00200*A)",  # several groups: text
    "0-0:96.13.2()",  # empty: no value
]
CODES = [line[: line.index("(")] for line in EXTRA]
ENTITY_IDS = {
    code: "sensor.electricity_meter_obis_" + code.translate(str.maketrans("-:.", "___"))
    for code in CODES
}


@pytest.fixture
async def server(servers: list[BaseServer]) -> TcpServer:
    """A DSMR 5 meter with the extra lines; stopped after the entries reading it are unloaded."""
    server = TcpServer(Meter("5", seed=7, extra_lines=EXTRA))
    await server.start()
    servers.append(server)
    return server


def generic_rows(hass: HomeAssistant, entry: MockConfigEntry) -> list[dict[str, Any]]:
    return [row for row in entity_snapshot(hass, entry) if "_obis_" in row["unique_id"]]


async def enable_generic(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Enable the generic entities and reload the entry (what the UI does, without the delay)."""
    registry = er.async_get(hass)
    for reg in er.async_entries_for_config_entry(registry, entry.entry_id):
        if "_obis_" in reg.unique_id:
            registry.async_update_entity(reg.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected)


def test_parse_value() -> None:
    assert parse_value("(000123.456*kvarh)") == (Decimal("123.456"), "kvarh")
    assert str(parse_value("(000123.456*kvarh)")[0]) == "123.456"  # type: ignore[index]
    assert parse_value("(1)") == (Decimal(1), None)
    assert parse_value("(-0.5*kW)") == (Decimal("-0.5"), "kW")
    assert parse_value("(Xemex)") == "Xemex"
    assert parse_value("(00200*A)(00200*A)") == "00200*A 00200*A"
    assert parse_value("(240108060000W)") == "240108060000W"
    assert parse_value("()") is None
    assert parse_value("(1.2.3)") == "1.2.3"
    assert parse_value("(" + "x" * 300 + ")") == "x" * 255


def test_obis_description() -> None:
    description = obis_description("1-0:3.8.0")
    assert description.key == "obis_1_0_3_8_0"
    assert description.translation_key == "generic_obis"
    assert description.translation_placeholders == {"code": "1-0:3.8.0"}
    assert description.entity_registry_enabled_default is False  # a user enables the ones wanted


def test_line_value() -> None:
    """A number brings its unit; text is a value only on a line without one."""
    assert line_value("(000123.456*kvarh)", "kvarh") == (Decimal("123.456"), "kvarh")
    assert line_value("(1.5*kW)", "W") == (Decimal("1.5"), "kW")  # the meter's unit changed
    assert line_value("(1)", "kW") == (Decimal(1), None)  # so did this one: now no unit
    assert line_value("(Xemex)", None) == ("Xemex", None)
    assert line_value("(Xemex)", "kW") == (None, "kW")  # text where a number in kW belongs
    assert line_value("()", None) == (None, None)


def test_state_class_of() -> None:
    """Only instantaneous units get long-term statistics; registers and text do not."""
    assert state_class_of("kvar") is SensorStateClass.MEASUREMENT
    assert state_class_of("V") is SensorStateClass.MEASUREMENT
    assert state_class_of("kvarh") is None
    assert state_class_of("m³") is None
    assert state_class_of(None) is None


def test_restored_value() -> None:
    assert restored_value(123.456, "kvarh") == Decimal("123.456")
    assert str(restored_value(123.456, "kvarh")) == "123.456"  # no float digits added
    assert restored_value(Decimal("0.381"), "kvar") == Decimal("0.381")
    assert restored_value(7, None) == Decimal(7)
    assert restored_value("Xemex", None) == "Xemex"
    assert restored_value("Xemex", "kW") is None  # text only where no unit is expected
    assert restored_value(True, None) is None
    assert restored_value(None, None) is None


async def test_generic_entities(
    hass: HomeAssistant, server: TcpServer, snapshot: SnapshotAssertion
) -> None:
    entry = await setup_meter(hass, server)
    # Created on the first telegram, disabled, and remembered for the next start.
    created = generic_rows(hass, entry)
    assert {row["entity_id"] for row in created} == set(ENTITY_IDS.values())
    assert all(row["disabled_by"] is er.RegistryEntryDisabler.INTEGRATION for row in created)
    assert all(hass.states.get(entity_id) is None for entity_id in ENTITY_IDS.values())
    assert entry.data[CONF_GENERIC_OBIS] == [
        {"code": "1-0:3.8.0", "unit": "kvarh"},
        {"code": "1-0:3.7.0", "unit": "kvar"},
        {"code": "1-0:9.8.0", "unit": "kVAh"},
        {"code": "0-0:96.3.10", "unit": None},
        {"code": "0-0:96.50.1", "unit": None},
        {"code": "1-1:31.4.0", "unit": None},
        {"code": "0-0:96.13.2", "unit": None},
    ]
    assert created == snapshot(name="disabled")

    await enable_generic(hass, entry)
    await send(entry, server)
    assert generic_rows(hass, entry) == snapshot(name="enabled")
    states = {code: hass.states.get(entity_id) for code, entity_id in ENTITY_IDS.items()}
    assert states["1-0:3.8.0"].state == "123.456"
    assert states["1-0:3.8.0"].attributes["unit_of_measurement"] == "kvarh"
    assert "state_class" not in states["1-0:3.8.0"].attributes
    assert states["1-0:3.7.0"].attributes["state_class"] == "measurement"
    assert states["1-0:9.8.0"].attributes["unit_of_measurement"] == "kVAh"
    assert states["0-0:96.50.1"].state == "Xemex"
    assert states["1-1:31.4.0"].state == "00200*A 00200*A"
    assert states["0-0:96.13.2"].state == STATE_UNKNOWN
    assert states["0-0:96.13.2"].attributes["raw"] == "()"
    assert states["1-0:3.8.0"].attributes["friendly_name"] == "Electricity Meter OBIS 1-0:3.8.0"

    # Values follow the meter.
    server.meter.extra_lines = [
        line.replace("000123.456", "000124.000").replace("Xemex", "Other") for line in EXTRA
    ]
    await send(entry, server)
    assert hass.states.get(ENTITY_IDS["1-0:3.8.0"]).state == "124.000"
    assert hass.states.get(ENTITY_IDS["0-0:96.50.1"]).state == "Other"
    assert hass.states.get(ENTITY_IDS["1-0:3.8.0"]).attributes["raw"] == "(000124.000*kvarh)"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_restored_after_a_reload_before_any_telegram(
    hass: HomeAssistant, server: TcpServer
) -> None:
    entry = await setup_meter(hass, server)
    await enable_generic(hass, entry)
    await send(entry, server)
    before = {e: hass.states.get(e).state for e in ENTITY_IDS.values()}
    assert before[ENTITY_IDS["1-0:3.8.0"]] == "123.456"
    assert before[ENTITY_IDS["0-0:96.50.1"]] == "Xemex"

    sent = server.telegrams_sent
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected)
    assert entry.runtime_data.coordinator.data is None  # nothing received since the reload
    assert server.telegrams_sent == sent
    after = {e: hass.states.get(e).state for e in ENTITY_IDS.values()}
    assert after == before
    state = hass.states.get(ENTITY_IDS["1-0:3.8.0"])
    assert state.attributes["unit_of_measurement"] == "kvarh"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_restored_at_setup_after_a_restart(hass: HomeAssistant, server: TcpServer) -> None:
    """A restart: the entry remembers the code; the entity exists before the first telegram."""
    data = identified(server)
    serial = data["serial_id"]
    data[CONF_GENERIC_OBIS] = [
        {"code": "1-0:99.99.9", "unit": "kW"},
        {"code": "0-0:96.50.1", "unit": None},
    ]
    entry = MockConfigEntry(
        domain="dsmr", data=data, unique_id=serial, options={"time_between_update": 0}
    )
    entry.add_to_hass(hass)
    registry = er.async_get(hass)
    for key in ("obis_1_0_99_99_9", "obis_0_0_96_50_1"):  # enabled by the user before
        registry.async_get_or_create(
            "sensor",
            "dsmr",
            f"{serial}_{key}",
            config_entry=entry,
            suggested_object_id=f"electricity_meter_{key}",
        )
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.electricity_meter_obis_1_0_99_99_9", "12.5"),
                {
                    "native_value": {
                        "__type": "<class 'decimal.Decimal'>",
                        "decimal_str": "12.5",
                    },
                    "native_unit_of_measurement": "kW",
                },
            ),
            (
                State("sensor.electricity_meter_obis_0_0_96_50_1", "Xemex"),
                {"native_value": "Xemex", "native_unit_of_measurement": None},
            ),
        ],
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator.data is None
    state = hass.states.get("sensor.electricity_meter_obis_1_0_99_99_9")
    assert state is not None
    assert state.state == "12.5"
    assert state.attributes["unit_of_measurement"] == "kW"
    assert state.attributes["state_class"] == "measurement"
    assert hass.states.get("sensor.electricity_meter_obis_0_0_96_50_1").state == "Xemex"
    # The meter's telegram replaces the text; the line it does not send keeps its value.
    await wait_for(lambda: entry.runtime_data.connection.connected)
    server.meter.extra_lines = ["0-0:96.50.1(Other)"]
    await send(entry, server)
    assert hass.states.get("sensor.electricity_meter_obis_0_0_96_50_1").state == "Other"
    assert hass.states.get("sensor.electricity_meter_obis_1_0_99_99_9").state == "12.5"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_code_is_created_once(
    hass: HomeAssistant, server: TcpServer, caplog: pytest.LogCaptureFixture
) -> None:
    creates: list[str] = []

    @callback
    def created(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        if event.data["action"] == "create":
            creates.append(event.data["entity_id"])

    hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, created)
    entry = await setup_meter(hass, server)
    # A code whose entity is enabled already (a registry entry the entry data does not know).
    later = "0-0:96.50.9"
    registry = er.async_get(hass)
    registry.async_get_or_create(
        "sensor",
        "dsmr",
        f"{entry.data['serial_id']}_obis_0_0_96_50_9",
        config_entry=entry,
        suggested_object_id="electricity_meter_obis_0_0_96_50_9",
    )
    server.meter.extra_lines = [*EXTRA, f"{later}(one)"]
    await send(entry, server)
    assert hass.states.get("sensor.electricity_meter_obis_0_0_96_50_9").state == "one"
    server.meter.extra_lines = [*EXTRA, f"{later}(two)"]
    await send(entry, server, 2)
    assert hass.states.get("sensor.electricity_meter_obis_0_0_96_50_9").state == "two"
    server.meter.extra_lines = EXTRA
    await send(entry, server, 3)
    server.meter.extra_lines = EXTRA[:1]  # a line goes away ...
    await send(entry, server)
    server.meter.extra_lines = [EXTRA[0].replace("123", "124"), *EXTRA[1:]]  # ... and comes back
    await send(entry, server, 2)
    await enable_generic(hass, entry)
    await send(entry, server, 2)
    await hass.async_block_till_done()
    generic = [e for e in creates if "_obis_" in e]
    assert sorted(generic) == sorted(
        [*ENTITY_IDS.values(), "sensor.electricity_meter_obis_0_0_96_50_9"]
    )
    codes = [k["code"] for k in entry.data[CONF_GENERIC_OBIS]]
    assert sorted(codes) == sorted([*CODES, later])
    assert "does not generate unique IDs" not in caplog.text
    assert "already exists" not in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_new_code_later_is_added(hass: HomeAssistant, server: TcpServer) -> None:
    server.meter.extra_lines = []
    entry = await setup_meter(hass, server)
    assert generic_rows(hass, entry) == []
    server.meter.extra_lines = ["1-0:3.8.0(000123.456*kvarh)"]
    await send(entry, server)
    rows = generic_rows(hass, entry)
    assert [r["entity_id"] for r in rows] == [ENTITY_IDS["1-0:3.8.0"]]
    assert entry.data[CONF_GENERIC_OBIS] == [{"code": "1-0:3.8.0", "unit": "kvarh"}]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unit_changes_and_text_on_a_numeric_line(
    hass: HomeAssistant, server: TcpServer
) -> None:
    entry = await setup_meter(hass, server)
    await enable_generic(hass, entry)
    await send(entry, server)
    entity_id = ENTITY_IDS["1-0:3.8.0"]
    server.meter.extra_lines = ["1-0:3.8.0(ERR)"]
    await send(entry, server)
    assert hass.states.get(entity_id).state == STATE_UNKNOWN  # not a number in kvarh
    assert hass.states.get(entity_id).attributes["unit_of_measurement"] == "kvarh"
    assert hass.states.get(ENTITY_IDS["0-0:96.50.1"]).state == "Xemex"  # a missing line: kept
    server.meter.extra_lines = ["1-0:3.8.0(000001.500*varh)"]
    await send(entry, server)
    state = hass.states.get(entity_id)
    assert (state.state, state.attributes["unit_of_measurement"]) == ("1.500", "varh")
    assert entry.data[CONF_GENERIC_OBIS][0] == {"code": "1-0:3.8.0", "unit": "varh"}
    assert [k["code"] for k in entry.data[CONF_GENERIC_OBIS]] == CODES
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_meter_without_extra_lines_has_none(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    server = TcpServer(Meter("5", seed=7))
    await server.start()
    servers.append(server)
    entry = await setup_meter(hass, server)
    await send(entry, server, 2)
    assert generic_rows(hass, entry) == []
    assert CONF_GENERIC_OBIS not in entry.data
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_without_crc_a_code_counts_from_its_second_telegram(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    """DSMR 2.2 has no CRC: a line error can look like a new code; one telegram is not enough."""
    server = TcpServer(Meter("2.2", seed=7))
    await server.start()
    servers.append(server)
    entry = await setup_meter(hass, server)
    server.meter.extra_lines = ["1-0:1.8.7(000123.456*kWh)"]  # a garbled 1-0:1.8.1, say
    await send(entry, server)
    server.meter.extra_lines = []
    await send(entry, server, 2)
    assert generic_rows(hass, entry) == []  # seen once: nothing created
    server.meter.extra_lines = ["1-0:3.8.0(000123.456*kvarh)"]
    await send(entry, server)
    assert generic_rows(hass, entry) == []
    await send(entry, server)  # the same code in the next telegram too (the same mapping)
    rows = generic_rows(hass, entry)
    assert [r["entity_id"] for r in rows] == [ENTITY_IDS["1-0:3.8.0"]]
    assert entry.data[CONF_GENERIC_OBIS] == [{"code": "1-0:3.8.0", "unit": "kvarh"}]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_codes_are_bounded(
    hass: HomeAssistant, servers: list[BaseServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A meter sending more unnamed codes than any real one gets sensors for MAX_CODES of them."""
    lines = [f"1-0:99.{n}.0({n}*W)" for n in range(MAX_CODES + 50)]
    server = TcpServer(Meter("5", seed=7, extra_lines=lines))
    await server.start()
    servers.append(server)
    entry = await setup_meter(hass, server)
    await send(entry, server, 3)
    assert len(generic_rows(hass, entry)) == MAX_CODES
    assert len(entry.data[CONF_GENERIC_OBIS]) == MAX_CODES
    assert caplog.text.count(f"more than {MAX_CODES} OBIS lines") == 1
    assert "1-0:99.149.0" in caplog.text  # which ones got none
    assert await hass.config_entries.async_unload(entry.entry_id)
