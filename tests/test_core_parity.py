"""Core parity: what core `dsmr` shows for a telegram, ours shows too (ids, units, classes, devices).

Each test serves one telegram over real TCP to core's integration (as installed, in a second
Home Assistant; see `parity.run_core`) and then to ours, with the same entry and the same
entity registry, and compares what the user gets. Expected values are not written down here:
they are what core makes of the telegram. Where we deliberately differ (a zero register is 0,
not unknown), the test says so.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.const import DOMAIN
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import identified, send, wait_for
from .parity import Before, Observed, entry_for, observe, run_core
from .telegrams import (
    ELECTRICITY_ID,
    GAS_ID,
    SAGEMCOM_T210_D_R,
    WATER_ID,
    ReplayMeter,
    dsmr5,
)

KEY = "00112233445566778899AABBCCDDEEFF"
GAS_GJ = (
    "1-0:1.8.1(000123.456*kWh)",
    "1-0:1.8.2(000234.567*kWh)",
    "1-0:1.7.0(00.321*kW)",
    "0-1:24.1.0(003)",
    f"0-1:96.1.0({GAS_ID})",
    "0-1:24.2.1(240115120000W)(00012.345*GJ)",
)


@pytest.fixture(params=["alone", "after_core"])
def after_core(request: pytest.FixtureRequest) -> bool:
    """Ours alone (a new user), or on the registry core left (a user switching from core)."""
    return bool(request.param == "after_core")


async def _serve(servers: list[TcpServer], meter: Meter) -> TcpServer:
    server = TcpServer(meter)
    servers.append(server)
    await server.start()
    return server


def _replay(meter: Meter) -> ReplayMeter:
    """The meter's current telegram, sent again and again: core and ours read the same."""
    key = meter.key_hex or None
    return ReplayMeter(meter.version, meter.telegram(), key=key)


async def _setup_ours(
    hass: HomeAssistant,
    server: TcpServer,
    core_entry: ConfigEntry,
    *,
    before: Before | None = None,
    core: Observed | None = None,
) -> ConfigEntry:
    """Our entry, set up on an empty registry, on `before`'s, or on the one `core` left."""
    entry = entry_for(server, core_entry.data["dsmr_version"], **dict(core_entry.data))
    entry.add_to_hass(hass)
    if core is not None:
        core.handover(hass, entry)
    elif before is not None:
        before(hass, entry)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server, 2)  # a sub-meter: named by two telegrams in a row
    await hass.async_block_till_done()
    return entry


async def _ours(
    hass: HomeAssistant,
    server: TcpServer,
    core_entry: ConfigEntry,
    *,
    before: Before | None = None,
    core: Observed | None = None,
) -> Observed:
    entry = await _setup_ours(hass, server, core_entry, before=before, core=core)
    observed = observe(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    return observed


def assert_parity(core: Observed, ours: Observed, *, zeros: set[str] = frozenset()) -> None:
    """Every entity core shows, ours shows alike; the devices are core's, exactly.

    `zeros` are entities whose register reads 0: core shows them as unknown, we show 0. Core
    rounds numbers to 3 decimals; we keep every decimal the meter sends, so a number of ours,
    rounded as core rounds, is core's.
    """
    assert core.entities, "core made no entities"
    for entity_id, theirs in core.entities.items():
        mine = ours.entities.get(entity_id)
        assert mine is not None, f"{entity_id}: core has it, ours does not"
        assert mine.unique_id == theirs.unique_id, entity_id
        assert mine.device == theirs.device, entity_id
        assert mine.unit == theirs.unit, entity_id
        assert mine.device_class == theirs.device_class, entity_id
        assert mine.state_class == theirs.state_class, entity_id
        if entity_id in zeros:
            assert theirs.state == "unknown", entity_id
            assert float(str(mine.state)) == 0, entity_id
        elif theirs.state is not None and theirs.state.replace(".", "", 1).isdigit():
            assert round(float(str(mine.state)), 3) == float(theirs.state), entity_id
    assert ours.devices == core.devices


async def test_w_power_line_q3d(
    hass: HomeAssistant, servers: list[TcpServer], after_core: bool
) -> None:
    """The EasyMeter Q3D sends power in W: core shows W, so do we."""
    server = await _serve(servers, _replay(Meter("Q3D", seed=4)))
    entry = entry_for(server, "Q3D", **identified(server))
    core = await run_core(server, entry)
    ours = await _ours(hass, server, entry, core=core if after_core else None)
    assert_parity(core, ours)
    power = ours.entities["sensor.electricity_meter_power_consumption"]
    assert (power.unit, power.device_class) == ("W", "power")


async def test_austrian_encrypted_frame(
    hass: HomeAssistant, servers: list[TcpServer], after_core: bool
) -> None:
    """dsmr_parser's Sagemcom T210-D-r test frame, encrypted: 6545766 Wh, 286 W, zeros shown."""
    server = await _serve(servers, ReplayMeter("SAGEMCOM_T210_D_R", SAGEMCOM_T210_D_R, key=KEY))
    # No equipment identifier in this version: the entry's serial ids are None (as core's flow).
    entry = entry_for(
        server, "SAGEMCOM_T210_D_R", serial_id=None, serial_id_gas=None, encryption_key=KEY
    )
    core = await run_core(server, entry)
    ours = await _ours(hass, server, entry, core=core if after_core else None)
    zeros = {"sensor.electricity_meter_energy_production_tarif_1"}
    assert_parity(core, ours, zeros=zeros)
    total = ours.entities["sensor.electricity_meter_energy_consumption_total"]
    assert (total.state, total.unit, total.device_class) == ("6545766.0", "Wh", "energy")
    power = ours.entities["sensor.electricity_meter_power_consumption"]
    assert (power.state, power.unit) == ("286.0", "W")


async def test_gj_gas_reading(
    hass: HomeAssistant, servers: list[TcpServer], after_core: bool
) -> None:
    """A gas meter on M-Bus that reads in GJ: energy in GJ, as core."""
    server = await _serve(servers, ReplayMeter("5", dsmr5(*GAS_GJ)))
    entry = entry_for(server, "5", serial_id=ELECTRICITY_ID, serial_id_gas=None)
    core = await run_core(server, entry)
    ours = await _ours(hass, server, entry, core=core if after_core else None)
    assert_parity(core, ours)
    gas = ours.entities["sensor.gas_meter_gas_consumption"]
    assert (gas.state, gas.unit, gas.device_class) == ("12.345", "GJ", "energy")
    assert gas.unique_id == GAS_ID


async def test_mbus_channel_without_reading(
    hass: HomeAssistant, servers: list[TcpServer], after_core: bool
) -> None:
    """A channel with a type and an identifier but no reading: no entity, no device (as core).

    Ours adds it as soon as the meter sends its first reading.
    """
    announced = (*GAS_GJ, "0-2:24.1.0(007)", f"0-2:96.1.0({WATER_ID})")
    meter = ReplayMeter("5", dsmr5(*announced))
    server = await _serve(servers, meter)
    entry = entry_for(server, "5", serial_id=ELECTRICITY_ID, serial_id_gas=None)
    core = await run_core(server, entry)
    ours_entry = await _setup_ours(hass, server, entry, core=core if after_core else None)
    assert_parity(core, observe(hass, ours_entry))
    assert not [e for e in core.entities if "water" in e]
    assert "mbus_devices" not in ours_entry.data or all(
        d["id"] != WATER_ID for d in ours_entry.data["mbus_devices"]
    )
    # The first reading: the water meter and its entity appear.
    meter.text = dsmr5(*announced, "0-2:24.2.1(240115120000W)(00456.789*m3)")
    await send(ours_entry, server)
    await hass.async_block_till_done()
    water = hass.states.get("sensor.water_meter_water_consumption")
    assert water is not None
    assert (water.state, water.attributes["unit_of_measurement"]) == ("456.789", "m³")
    assert water.attributes["device_class"] == "water"
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, WATER_ID), ours_entry.entry_id
    )
    assert device is not None and device.name == "Water Meter"
    assert await hass.config_entries.async_unload(ours_entry.entry_id)


async def test_luxembourg_5l(
    hass: HomeAssistant, servers: list[TcpServer], after_core: bool
) -> None:
    """A Luxembourg Smarty (5L) with its gas meter."""
    server = await _serve(servers, _replay(Meter("5L", seed=5)))
    entry = entry_for(server, "5L", **identified(server))
    core = await run_core(server, entry)
    ours = await _ours(hass, server, entry, core=core if after_core else None)
    assert_parity(core, ours)


async def test_dsmr5_gas_on_channel_1(
    hass: HomeAssistant, servers: list[TcpServer], after_core: bool
) -> None:
    """A Dutch DSMR 5 meter with its gas meter on M-Bus channel 1."""
    server = await _serve(servers, _replay(Meter("5", seed=6, mbus=("gas",))))
    entry = entry_for(server, "5", **identified(server))
    core = await run_core(server, entry)
    ours = await _ours(hass, server, entry, core=core if after_core else None)
    assert_parity(core, ours)
    assert "sensor.gas_meter_gas_consumption" in core.entities


def _mbus_id(meter: Meter) -> str:
    factory = meter.telegram_specification()
    from dsmr_parser.parsers import TelegramParser

    parsed = TelegramParser(factory).parse(meter.telegram())
    return str(parsed.MBUS_DEVICES[0].MBUS_EQUIPMENT_IDENTIFIER.value)


@pytest.mark.parametrize(
    ("version", "gas_serial", "suffix"),
    [
        ("5B", "mbus", "belgium_5min_gas_meter_reading"),
        ("5", "mbus", "hourly_gas_meter_reading"),
        ("5", None, "hourly_gas_meter_reading"),
    ],
)
async def test_gas_to_mbus_migration(
    hass: HomeAssistant,
    servers: list[TcpServer],
    after_core: bool,
    version: str,
    gas_serial: str | None,
    suffix: str,
) -> None:
    """A gas entity from before 2024 moves to its M-Bus identifier: the devices core leaves.

    Before 2024 core keyed gas `<gas serial>_<suffix>` on a device named by the entry's
    `serial_id_gas` (the entry id when that was None).
    """
    meter = _replay(Meter(version, seed=7, mbus=("gas",)))
    server = await _serve(servers, meter)
    gas_id = _mbus_id(meter)
    data = identified(server) | {"serial_id_gas": gas_id if gas_serial else None}
    entry = entry_for(server, version, **data)

    def before(hass: HomeAssistant, entry: ConfigEntry) -> None:
        """The registry as core before 2024 left it."""
        devices, entities = dr.async_get(hass), er.async_get(hass)
        serial = entry.data["serial_id"]
        main = devices.async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={(DOMAIN, serial)},
            name="Electricity Meter",
        )
        entities.async_get_or_create(
            "sensor",
            DOMAIN,
            f"{serial}_current_electricity_usage",
            suggested_object_id="electricity_meter_power_consumption",
            config_entry=entry,
            device_id=main.id,
        )
        gas_serial = entry.data["serial_id_gas"] or entry.entry_id
        gas = devices.async_get_or_create(
            config_entry_id=entry.entry_id, identifiers={(DOMAIN, gas_serial)}, name="Gas Meter"
        )
        entities.async_get_or_create(
            "sensor",
            DOMAIN,
            f"{gas_serial}_{suffix}",
            suggested_object_id="gas_meter_gas_consumption",
            config_entry=entry,
            device_id=gas.id,
            original_device_class="gas",
            translation_key="gas_meter_reading",
        )

    core = await run_core(server, entry, before=before)
    ours = await _ours(hass, server, entry, before=before, core=core if after_core else None)
    assert_parity(core, ours)
    assert core.entities["sensor.gas_meter_gas_consumption"].unique_id == gas_id
    assert not [e for e in ours.entities if e.startswith("sensor.gas_meter_gas_consumption_")]


async def test_channel_without_reading_remembered_earlier_is_not_restored(
    hass: HomeAssistant,
    silent_port: str,
) -> None:
    """An earlier release remembered channels that never sent a reading: no entity for them."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={
            "port": silent_port,
            "dsmr_version": "5",
            "serial_id": ELECTRICITY_ID,
            "serial_id_gas": None,
            "mbus_devices": [
                {"channel": 1, "type": 3, "id": GAS_ID, "unit": "m3"},
                {"channel": 2, "type": 7, "id": WATER_ID, "unit": None},
            ],
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    unique_ids = {
        reg.unique_id
        for reg in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    assert GAS_ID in unique_ids
    assert WATER_ID not in unique_ids
    assert await hass.config_entries.async_unload(entry.entry_id)
