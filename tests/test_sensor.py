"""The whole pipeline, per version: simulator -> real socket or tty -> reader -> entities."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from syrupy.assertion import SnapshotAssertion

from custom_components.dsmr.descriptions import NOT_ENTITIES, SENSORS, spec_value_names
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .helpers import entity_snapshot, send, setup_meter

VERSIONS = [
    "2.2",
    "4",
    "4+",
    "5",
    "5B",
    "5L",
    "5S",
    "Q3D",
    "5EONHU",
    "ISKRA_IE",
    "MSn",
    "SAGEMCOM_T210_D_R",
]
KEY = "00112233445566778899AABBCCDDEEFF"
SEVEN_BIT = {"2.2", "4", "4+"}  # opened once on a pty: see helpers.identified


def make_meter(version: str) -> Meter:
    key = KEY if version in {"MSn", "SAGEMCOM_T210_D_R"} else None
    return Meter(version, seed=1, key=key)


@pytest.fixture
async def tcp_server(request: pytest.FixtureRequest) -> AsyncIterator[TcpServer]:
    server = TcpServer(make_meter(request.param))
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_every_value_has_an_entity_or_a_reason(version: str) -> None:
    covered = {d.obis_name for d in SENSORS} | set(NOT_ENTITIES)
    assert spec_value_names(version) - covered == set()


@pytest.mark.parametrize("tcp_server", VERSIONS, indirect=True)
async def test_entities_over_tcp(
    hass: HomeAssistant, tcp_server: TcpServer, snapshot: SnapshotAssertion
) -> None:
    entry = await setup_meter(hass, tcp_server)
    await send(entry, tcp_server, 2)
    assert entity_snapshot(hass, entry) == snapshot
    devices = sorted(
        (d.name, d.model, d.serial_number is not None)
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    )
    assert devices == snapshot(name="devices")
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("version", VERSIONS)
async def test_power_over_a_real_tty(hass: HomeAssistant, version: str, tmp_path: Path) -> None:
    server = PtyServer(make_meter(version), link=tmp_path / "ttyP1")
    await server.start()
    try:
        entry = await setup_meter(hass, server, validate=version not in SEVEN_BIT)
        rendered = server.last_rendered
        assert rendered is not None
        state = hass.states.get("sensor.electricity_meter_power_consumption")
        assert state is not None
        expected = rendered.values["CURRENT_ELECTRICITY_USAGE"]
        assert float(state.state) == pytest.approx(float(expected))
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


@pytest.mark.parametrize("tcp_server", ["5"], indirect=True)
async def test_unavailable_when_the_bridge_goes_away(
    hass: HomeAssistant, tcp_server: TcpServer
) -> None:
    entry = await setup_meter(hass, tcp_server)
    entity_id = "sensor.electricity_meter_power_consumption"
    assert hass.states.get(entity_id).state != STATE_UNAVAILABLE
    await tcp_server.stop()
    from .helpers import wait_for

    await wait_for(lambda: hass.states.get(entity_id).state == STATE_UNAVAILABLE)
    await tcp_server.start()
    await wait_for(lambda: entry.runtime_data.reader.connected, timeout=10)
    await send(entry, tcp_server)
    assert hass.states.get(entity_id).state != STATE_UNAVAILABLE
    assert er.async_get(hass).async_get(entity_id) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
