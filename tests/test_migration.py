"""A user who ran core `dsmr` keeps every entity id and unique id after installing ours."""

from __future__ import annotations

from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest

from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.migration import migrated_unique_id
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .conftest import core_entry
from .helpers import send, validated, wait_for


def _core_entity(
    hass: HomeAssistant,
    entry_id: str,
    device_identifier: str,
    device_name: str,
    unique_id: str,
    entity_id: str,
    device_class: str | None = None,
) -> None:
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry_id, identifiers={(DOMAIN, device_identifier)}, name=device_name
    )
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        unique_id,
        suggested_object_id=entity_id.removeprefix("sensor."),
        config_entry=hass.config_entries.async_get_entry(entry_id),
        device_id=device.id,
        original_device_class=device_class,
    )


@pytest.mark.parametrize(
    ("old", "version", "new"),
    [
        ("1234_Power_Consumption", "5", "1234_current_electricity_usage"),
        ("1234_Power_Consumption_Phase_L2", "5", "1234_instantaneous_active_power_l2_positive"),
        ("1234_Energy_Production_(tarif_2)", "4", "1234_electricity_delivered_tariff_2"),
        ("1234_Max_current_per_phase", "5B", "1234_belgium_max_current_per_phase"),
        ("1234_Energy_Consumption_(total)", "5L", "1234_electricity_imported_total"),
        ("5678_Gas_Consumption", "4", "5678_hourly_gas_meter_reading"),
        ("5678_Gas_Consumption", "5B", "5678_belgium_5min_gas_meter_reading"),
        ("5678_Gas_Consumption", "2.2", "5678_gas_meter_reading"),
        ("5678_Gas_Consumption", "5S", None),
        ("1234_current_electricity_usage", "5", None),
    ],
)
def test_migrated_unique_id(old: str, version: str, new: str | None) -> None:
    assert migrated_unique_id(old, version) == new


async def test_dsmr5_with_gas_keeps_entities(hass: HomeAssistant, silent_port: str) -> None:
    """DSMR 5 meter with an M-Bus gas meter, as core left it, incl. one pre-2022 unique id."""
    entry = core_entry(
        {
            "port": silent_port,
            "dsmr_version": "5",
            "protocol": "dsmr_protocol",
            "serial_id": "4530303435303031363238353137313135",
            "serial_id_gas": None,
        }
    )
    entry.add_to_hass(hass)
    serial = "4530303435303031363238353137313135"
    gas = "4730303339303031363532303530323136"
    _core_entity(
        hass,
        entry.entry_id,
        serial,
        "Electricity Meter",
        f"{serial}_current_electricity_usage",
        "sensor.electricity_meter_power_consumption",
    )
    _core_entity(
        hass,
        entry.entry_id,
        serial,
        "Electricity Meter",
        f"{serial}_Power_Production",
        "sensor.power_production",
    )
    _core_entity(
        hass,
        entry.entry_id,
        serial,
        "Electricity Meter",
        f"{serial}_electricity_used_tariff_1",
        "sensor.electricity_meter_energy_consumption_tarif_1",
    )
    _core_entity(
        hass, entry.entry_id, gas, "Gas Meter", gas, "sensor.gas_meter_gas_consumption", "gas"
    )
    before = {
        e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    registry = er.async_get(hass)
    assert (
        registry.async_get("sensor.power_production").unique_id
        == f"{serial}_current_electricity_delivery"
    )
    assert registry.async_get("sensor.gas_meter_gas_consumption").unique_id == gas
    after = {e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)}
    assert before <= after
    for entity_id in before:
        state = hass.states.get(entity_id)
        assert state is not None
        # Claimed by a live entity of ours, not a registry placeholder for a missing one.
        assert "restored" not in state.attributes, entity_id
    # No second device for the same meter.
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert sorted(d.identifiers.pop()[1] for d in devices) == sorted([serial, gas])
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_legacy_network_entry_loads(hass: HomeAssistant, silent_port: str) -> None:
    """An entry from core's old network flow (host + integer port) loads unchanged."""
    port = int(silent_port.rpartition(":")[2])  # a bridge whose meter sends nothing yet
    entry = core_entry(
        {
            "host": "127.0.0.1",
            "port": port,
            "dsmr_version": "2.2",
            "protocol": "dsmr_protocol",
            "serial_id": "1234",
            "serial_id_gas": "5678",
        },
        title=f"127.0.0.1:{port}",
    )
    entry.add_to_hass(hass)
    _core_entity(
        hass,
        entry.entry_id,
        "5678",
        "Gas Meter",
        "5678_gas_meter_reading",
        "sensor.gas_meter_gas_consumption",
        "gas",
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert dict(entry.data)["port"] == port
    state = hass.states.get("sensor.gas_meter_gas_consumption")
    assert state is not None and "restored" not in state.attributes
    assert hass.states.get("sensor.electricity_meter_power_consumption") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


def _mbus_ids(meter: Meter) -> list[str]:
    spec = {"5": telegram_specifications.V5, "5B": telegram_specifications.BELGIUM_FLUVIUS}
    telegram = TelegramParser(spec[meter.version]).parse(meter.telegram())
    return [str(d.MBUS_EQUIPMENT_IDENTIFIER.value) for d in telegram.MBUS_DEVICES]


async def test_belgian_meter_with_two_mbus_devices(hass: HomeAssistant) -> None:
    """5B with gas and water on M-Bus, registry as core left it: ids carry on, no duplicates."""
    server = TcpServer(Meter("5B", seed=7, mbus=("gas", "water")))
    await server.start()
    try:
        data = await validated(server)
        entry = core_entry(data, title="5B")
        entry.add_to_hass(hass)
        serial = data["serial_id"]
        gas_id, water_id = _mbus_ids(server.meter)
        _core_entity(
            hass,
            entry.entry_id,
            serial,
            "Electricity Meter",
            f"{serial}_current_electricity_usage",
            "sensor.electricity_meter_power_consumption",
        )
        _core_entity(
            hass,
            entry.entry_id,
            serial,
            "Electricity Meter",
            f"{serial}_belgium_current_average_demand",
            "sensor.electricity_meter_current_average_demand",
        )
        _core_entity(
            hass,
            entry.entry_id,
            gas_id,
            "Gas Meter",
            gas_id,
            "sensor.gas_meter_gas_consumption",
            "gas",
        )
        _core_entity(
            hass,
            entry.entry_id,
            water_id,
            "Water Meter",
            water_id,
            "sensor.water_meter_water_consumption",
            "water",
        )
        before = {
            e.entity_id: e.unique_id
            for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        }
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server, 2)
        await hass.async_block_till_done()
        registry = er.async_get(hass)
        for entity_id, unique_id in before.items():
            assert registry.async_get(entity_id).unique_id == unique_id
            assert float(hass.states.get(entity_id).state) >= 0
        # No duplicate entities (e.g. water_consumption_2) and no duplicate devices.
        ids = [e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)]
        assert [i for i in ids if "gas_consumption" in i] == ["sensor.gas_meter_gas_consumption"]
        assert [i for i in ids if "water_consumption" in i] == [
            "sensor.water_meter_water_consumption"
        ]
        devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        assert len(devices) == 3
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_pre_mbus_gas_entity_moves_to_the_mbus_device(hass: HomeAssistant) -> None:
    """Core before 2024 keyed DSMR 5 gas `<serial>_hourly_gas_meter_reading`; it moves, keeping its id."""
    server = TcpServer(Meter("5", seed=8, mbus=("gas",)))
    await server.start()
    try:
        data = await validated(server)
        entry = core_entry(data)
        entry.add_to_hass(hass)
        (gas_id,) = _mbus_ids(server.meter)
        # Core keyed its gas device by serial_id_gas, None on DSMR 5, so by the entry id.
        _core_entity(
            hass,
            entry.entry_id,
            entry.entry_id,
            "Gas Meter",
            f"{entry.entry_id}_hourly_gas_meter_reading",
            "sensor.gas_meter_gas_consumption",
            "gas",
        )
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server, 2)  # the M-Bus device: named by two telegrams in a row
        await hass.async_block_till_done()
        moved = er.async_get(hass).async_get("sensor.gas_meter_gas_consumption")
        assert moved.unique_id == gas_id
        device = dr.async_get(hass).async_get(moved.device_id)
        assert (DOMAIN, gas_id) in device.identifiers
        assert float(hass.states.get("sensor.gas_meter_gas_consumption").state) > 0
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("version", "suffix"),
    [("5B", "belgium_5min_gas_meter_reading"), ("5", "hourly_gas_meter_reading")],
)
async def test_pre_mbus_gas_entity_waits_for_its_mbus_identifier(
    hass: HomeAssistant, silent_port: str, version: str, suffix: str
) -> None:
    """Until a telegram names the M-Bus identifier, a pre-2024 gas entity is left alone.

    It is not taken for an M-Bus entity of core's (that made a device keyed by the old unique
    id, which stayed behind after the move); the device registry is untouched.
    """
    gas = "4730303339303031363532303530323136"
    entry = core_entry(
        {
            "port": silent_port,
            "dsmr_version": version,
            "protocol": "dsmr_protocol",
            "serial_id": "1234",
            "serial_id_gas": gas,
        }
    )
    entry.add_to_hass(hass)
    _core_entity(
        hass,
        entry.entry_id,
        gas,
        "Gas Meter",
        f"{gas}_{suffix}",
        "sensor.gas_meter_gas_consumption",
        "gas",
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert sorted(d.identifiers.pop()[1] for d in devices) == sorted(["1234", gas])
    reg = er.async_get(hass).async_get("sensor.gas_meter_gas_consumption")
    assert reg.unique_id == f"{gas}_{suffix}"
    assert await hass.config_entries.async_unload(entry.entry_id)
