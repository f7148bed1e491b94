"""The one sensor class (entity.py): the meter's number in the unit its line carries, the device
class that unit implies, restored in the meter's unit."""

from __future__ import annotations

from homeassistant.components.sensor import SensorDeviceClass as Dc, SensorStateClass as Sc
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    mock_restore_cache_with_extra_data,
)

from custom_components.dsmr.entity import device_class_for
from custom_components.dsmr.p1.telegram import ha_unit
from dsmr_sim.meter import Meter
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for
from .telegrams import SAGEMCOM_T210_D_R, ReplayMeter, austrian_entry, dsmr5

KEY = "00112233445566778899AABBCCDDEEFF"
TOTAL = "sensor.electricity_meter_energy_consumption_total"
POWER = "sensor.electricity_meter_power_consumption"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("Wh", "Wh"),
        ("kWh", "kWh"),
        ("m3", "m³"),
        ("GJ", "GJ"),
        ("kVAh", "kVAh"),
        ("", None),
        ("kVAr", "kvar"),  # Kamstrup Omnia (Sweden) writes reactive units capitalised
        ("kVArh", "kvarh"),
        ("VAr", "var"),
        ("mWh", "mWh"),  # not MWh: other units stay case-sensitive
    ],
)
def test_ha_unit(written: str, shown: str | None) -> None:
    """HA's constant where one is the unit (reactive units in any case); else as written."""
    assert ha_unit(written) == shown


@pytest.mark.parametrize(
    ("unit", "described", "state_class", "expected"),
    [
        ("Wh", Dc.ENERGY, Sc.TOTAL_INCREASING, Dc.ENERGY),
        ("MWh", Dc.ENERGY, Sc.TOTAL_INCREASING, Dc.ENERGY),
        ("W", Dc.POWER, Sc.MEASUREMENT, Dc.POWER),
        ("GJ", Dc.GAS, Sc.TOTAL_INCREASING, Dc.ENERGY),  # a gas meter in GJ: energy, as core
        ("MJ", Dc.GAS, Sc.TOTAL_INCREASING, Dc.ENERGY),
        ("m³", Dc.GAS, Sc.TOTAL_INCREASING, Dc.GAS),
        ("m³", Dc.WATER, Sc.TOTAL_INCREASING, Dc.WATER),
        ("m³", Dc.ENERGY, Sc.TOTAL_INCREASING, Dc.VOLUME),  # a heat meter's volume
        ("varh", Dc.ENERGY, Sc.TOTAL_INCREASING, Dc.REACTIVE_ENERGY),
        ("var", Dc.POWER, Sc.MEASUREMENT, Dc.REACTIVE_POWER),
        ("kVA", Dc.POWER, Sc.MEASUREMENT, Dc.APPARENT_POWER),
        ("kWh", Dc.POWER, Sc.MEASUREMENT, None),  # energy is never a measurement
        ("kVAh", Dc.ENERGY, Sc.TOTAL_INCREASING, None),  # no class takes it
        (None, Dc.ENUM, None, Dc.ENUM),
        ("A", None, None, None),  # a value described without a class keeps none
    ],
)
def test_device_class_follows_the_unit(
    unit: str | None, described: Dc | None, state_class: Sc | None, expected: Dc | None
) -> None:
    assert device_class_for(unit, described, state_class) == expected


async def test_a_unit_without_a_constant_is_kept(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    """A line in a unit Home Assistant has no constant for: that unit, and no device class."""
    server = TcpServer(ReplayMeter("5", dsmr5("1-0:1.8.1(001234.567*kVAh)")))
    servers.append(server)
    await server.start()
    await setup_meter(hass, server)
    state = hass.states.get("sensor.electricity_meter_energy_consumption_tarif_1")
    assert state.state == "1234.567"
    assert state.attributes["unit_of_measurement"] == "kVAh"
    assert "device_class" not in state.attributes


async def test_q3d_power_in_w(hass: HomeAssistant, servers: list[BaseServer]) -> None:
    server = TcpServer(Meter("Q3D", seed=2))
    servers.append(server)
    await server.start()
    await setup_meter(hass, server)
    power = hass.states.get(POWER)
    sent = server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"]
    assert float(power.state) == pytest.approx(float(sent))
    assert (power.attributes["unit_of_measurement"], power.attributes["device_class"]) == (
        "W",
        "power",
    )


async def test_restored_in_the_meters_unit_without_flip_flop(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    """After a restart the entity starts in the unit the meter sent, not the specification's."""
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(TOTAL, "6545000.0"),
                {"native_value": 6545000.0, "native_unit_of_measurement": "Wh"},
            )
        ],
    )
    server = TcpServer(ReplayMeter("SAGEMCOM_T210_D_R", SAGEMCOM_T210_D_R, key=KEY))
    servers.append(server)
    await server.start()
    entry = await austrian_entry(hass, server, {"time_between_update": 0})
    units: list[str | None] = []

    def changed(event: Event[EventStateChangedData]) -> None:
        if event.data["entity_id"] == TOTAL and (state := event.data["new_state"]) is not None:
            units.append(state.attributes.get("unit_of_measurement"))

    hass.bus.async_listen("state_changed", changed)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(TOTAL).state == "6545000.0"
    assert er.async_get(hass).async_get(TOTAL).unit_of_measurement == "Wh"
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    assert hass.states.get(TOTAL).state == "6545766.0"
    assert set(units) == {"Wh"}
    assert await hass.config_entries.async_unload(entry.entry_id)
