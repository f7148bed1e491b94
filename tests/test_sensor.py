"""The sensor platform: every version's values through the whole pipeline (simulator -> real
socket or tty -> connection -> coordinator -> entities), the platform snapshot, and the life of
a value: restored, written only when it changed, values the meter does not send, bad telegrams,
the update window's mean, the values beyond energy and power. (The register rules: decrease
hold, new cycle, one write per statistics period: tests/test_registers.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.const import (
    EVENT_STATE_CHANGED,
    EVENT_STATE_REPORTED,
    STATE_UNAVAILABLE,
    Platform,
)
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    mock_restore_cache_with_extra_data,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.dsmr.coordinator import DsmrCoordinator, Health
from custom_components.dsmr.p1.telegram import value_names
from custom_components.dsmr.sensor import NOT_SENSORS, SENSORS, version_sensors
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .helpers import (
    enable_all,
    entity_snapshot,
    restored_power_entry,
    send,
    setup_meter,
    wait_for,
)
from .telegrams import ReplayMeter, dsmr5

POWER = "sensor.electricity_meter_power_consumption"

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
    covered = {d.obis_name for d in SENSORS} | set(NOT_SENSORS)
    assert value_names(version) - covered == set()


def test_version_sensors() -> None:
    """A version's values; a value name keyed per version only under that version's key."""
    belgian = {d.key for d in version_sensors("5B")}
    hungarian = {d.key for d in version_sensors("5EONHU")}
    assert {"belgium_max_power_per_phase", "belgium_max_current_per_phase"} <= belgian
    assert {"actual_threshold_electricity", "fuse_threshold_l1"}.isdisjoint(belgian)
    assert {"actual_threshold_electricity", "fuse_threshold_l1"} <= hungarian
    assert "belgium_max_power_per_phase" not in hungarian
    assert "fuse_threshold_l1" not in {d.key for d in version_sensors("5")}  # not sent
    assert "hourly_gas_meter_reading" in {d.key for d in version_sensors("4")}
    assert "hourly_gas_meter_reading" not in {d.key for d in version_sensors("5")}  # M-Bus
    for version in VERSIONS:
        names = value_names(version)
        assert all(d.obis_name in names or names & set(d.sums) for d in version_sensors(version))
        described = version_sensors(version)
        assert tuple(d for d in SENSORS if d in described) == described  # in SENSORS' order


def test_enabled_in() -> None:
    """Totals are on where meters send them (elsewhere the tariffs' sum, off by default)."""
    by_key = {d.key: d for d in SENSORS}
    total = by_key["electricity_imported_total"]
    assert total.enabled_in("5L")
    assert not total.enabled_in("5")
    assert "electricity_imported_total" in {d.key for d in version_sensors("5B")}  # no 1.8.0
    assert by_key["electricity_used_tariff_1"].enabled_in("5")
    assert not by_key["belgium_max_power_per_phase"].enabled_in("5B")  # a diagnostic


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
    await wait_for(lambda: hass.states.get(entity_id).state == STATE_UNAVAILABLE)
    await tcp_server.start()
    await wait_for(lambda: entry.runtime_data.connection.connected, timeout=10)
    await send(entry, tcp_server)
    assert hass.states.get(entity_id).state != STATE_UNAVAILABLE
    assert er.async_get(hass).async_get(entity_id) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_sensor_platform(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor of a DSMR 5 meter with gas and water, all enabled, after two telegrams.

    The health sensors show a fixed `Health` here (their values follow the clock; how they
    follow the counters: tests/test_faults.py).
    """
    server = TcpServer(Meter("5", seed=1, mbus=("gas", "water"), extra_lines=["0-0:96.50.1(X)"]))
    await server.start()
    health = Health(
        connected=True,
        telegrams_per_minute=2,
        skipped_telegrams=0,
        last_telegram=datetime(2024, 1, 15, 11, 0, 20, tzinfo=UTC),
        meter_clock_offset=0.4,
    )
    try:
        with (
            patch("custom_components.dsmr.PLATFORMS", [Platform.SENSOR]),
            patch.object(DsmrCoordinator, "health", return_value=health),
        ):
            entry = await setup_meter(hass, server)
            await send(entry, server)
            await hass.async_block_till_done()
            await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
            assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_restored_value_shown_while_connecting(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=1))
    await server.start()
    try:
        entry = restored_power_entry(hass, {"host": "127.0.0.1", "port": server.port})
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert hass.states.get(POWER).state == "1.234"
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server)
        assert float(hass.states.get(POWER).state) == float(
            server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"]
        )
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


NO_EXPORT = dsmr5("1-0:1.8.1(000100.000*kWh)", "1-0:1.7.0(00.123*kW)")  # no total, no export


async def test_values_never_sent_are_disabled_once(hass: HomeAssistant) -> None:
    """A Luxembourg entry enables the export total; a meter without export lines hides it."""
    server = TcpServer(ReplayMeter("5", NO_EXPORT))
    await server.start()
    try:
        entry = await setup_meter(hass, server, validate=False, dsmr_version="5L")
        total = "sensor.electricity_meter_energy_production_total"
        registry = er.async_get(hass)
        assert registry.async_get(total).disabled_by is None
        await send(entry, server, 3)
        await hass.async_block_till_done()
        assert registry.async_get(total).disabled_by is er.RegistryEntryDisabler.INTEGRATION
        # The user enables it again: it stays enabled.
        registry.async_update_entity(total, disabled_by=None)
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server, 4)
        await hass.async_block_till_done()
        assert registry.async_get(total).disabled_by is None
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_bad_crc_is_counted_and_changes_nothing(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=4))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        before = hass.states.get(POWER)
        server.faults.set("bad_crc")
        await send(entry, server, 3)
        stats = entry.runtime_data.coordinator.counters
        assert stats.crc_errors == 3
        after = hass.states.get(POWER)
        assert after.state == before.state
        assert after.last_updated == before.last_updated
        server.faults.clear()
        await send(entry, server)
        assert hass.states.get(POWER).state == str(
            float(server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"])
        )
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_window_publishes_the_true_mean(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=6))
    await server.start()
    try:
        entry = await setup_meter(hass, server, {"time_between_update": 1})
        er.async_get(hass).async_update_entity(
            "sensor.electricity_meter_net_power", disabled_by=None
        )
        assert await hass.config_entries.async_reload(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server, 2)  # the first two after connecting are published at once
        coordinator = entry.runtime_data.coordinator
        published = coordinator.published
        samples = []
        registers = {float(server.last_rendered.values["ELECTRICITY_USED_TARIFF_1"])}
        for _ in range(5):
            await send(entry, server)
            samples.append(float(server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"]))
            registers.add(float(server.last_rendered.values["ELECTRICITY_USED_TARIFF_1"]))
        assert coordinator.published == published  # still inside the window
        await wait_for(lambda: coordinator.published == published + 1, timeout=3)
        await hass.async_block_till_done()
        state = hass.states.get(POWER)
        assert float(state.state) == round(sum(samples) / len(samples), 3)
        assert state.attributes["min"] == min(samples)
        assert state.attributes["max"] == max(samples)
        assert state.attributes["samples"] == 5
        # Registers publish a telegram's value, not a mean (which one: tests/test_registers.py).
        tariff = hass.states.get("sensor.electricity_meter_energy_consumption_tarif_1")
        assert float(tariff.state) in registers
        net = hass.states.get("sensor.electricity_meter_net_power")
        assert float(net.state) == round(sum(samples) / len(samples), 3)  # no export in this window
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_a_value_is_written_only_when_it_changed(hass: HomeAssistant) -> None:
    """A value the telegrams do not move (the hourly gas reading) is not written again; one
    that moves (the power) is written on every publish."""
    server = TcpServer(Meter("5", seed=4, mbus=("gas",)))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        await send(entry, server)
        gas = "sensor.gas_meter_gas_consumption"
        before = hass.states.get(gas)
        written: dict[str, int] = {}

        @callback
        def count(event: Event[Any]) -> None:
            entity_id = event.data["entity_id"]
            written[entity_id] = written.get(entity_id, 0) + 1

        hass.bus.async_listen(EVENT_STATE_CHANGED, count)
        # The same state written again is reported, not changed.
        hass.bus.async_listen(EVENT_STATE_REPORTED, count, event_filter=callback(lambda _: True))
        await send(entry, server, 4)
        await hass.async_block_till_done()
        assert written.get(POWER) == 4  # the meter's power moves every telegram
        assert gas not in written  # the hourly gas reading did not move
        assert hass.states.get(gas).last_updated == before.last_updated
        assert hass.states.get(gas).last_reported == before.last_reported
        rendered = server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"]
        assert hass.states.get(POWER).state == str(float(rendered))
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_a_mean_that_stays_zero_is_not_written_again(hass: HomeAssistant) -> None:
    """No sun, no export: the production's mean stays 0 while its samples vary per window."""
    server = TcpServer(Meter("5", seed=6, solar_kwp=0.0))
    await server.start()
    try:
        entry = await setup_meter(hass, server, {"time_between_update": 1})
        await send(entry, server, 2)  # the first two after connecting are published at once
        coordinator = entry.runtime_data.coordinator
        production = "sensor.electricity_meter_power_production"
        written: list[State] = []

        @callback
        def count(event: Event[Any]) -> None:
            if event.data["entity_id"] in (production, POWER):
                written.append(event.data["new_state"])

        hass.bus.async_listen(EVENT_STATE_CHANGED, count)
        for telegrams in (1, 3, 2):  # windows of different sizes
            published = coordinator.published
            await send(entry, server, telegrams)
            await wait_for(lambda p=published: coordinator.published == p + 1, timeout=3)
            await hass.async_block_till_done()
        assert [s.entity_id for s in written].count(POWER) == 3
        assert [s.entity_id for s in written].count(production) == 0
        assert hass.states.get(production).state == "0.0"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_net_power_follows_the_export_while_the_import_stays(hass: HomeAssistant) -> None:
    """Net power reads two lines: an import line that does not move does not hold it."""
    meter = ReplayMeter("5", dsmr5("1-0:1.7.0(00.000*kW)", "1-0:2.7.0(01.000*kW)"))
    server = TcpServer(meter)
    await server.start()
    try:
        entry = await setup_meter(hass, server, {"time_between_update": 0})
        net = "sensor.electricity_meter_net_power"
        er.async_get(hass).async_update_entity(net, disabled_by=None)
        assert await hass.config_entries.async_reload(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server)
        await hass.async_block_till_done()
        assert hass.states.get(net).state == "-1.0"
        meter.text = dsmr5("1-0:1.7.0(00.000*kW)", "1-0:2.7.0(02.500*kW)")
        await send(entry, server)
        await hass.async_block_till_done()
        assert hass.states.get(net).state == "-2.5"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_a_value_shown_before_is_never_disabled(hass: HomeAssistant) -> None:
    """A value with a state (restored from the last run) is not disabled for being absent."""
    total = "sensor.electricity_meter_energy_production_total"
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(total, "1234.5"),
                {"native_value": 1234.5, "native_unit_of_measurement": "kWh"},
            )
        ],
    )
    server = TcpServer(ReplayMeter("5", NO_EXPORT))
    await server.start()
    try:
        entry = await setup_meter(hass, server, validate=False, dsmr_version="5L")
        registry = er.async_get(hass)
        await send(entry, server, 5)
        await hass.async_block_till_done()
        assert registry.async_get(total).disabled_by is None
        assert hass.states.get(total).state == "1234.5"
        assert registry.async_get(total).unique_id not in entry.data["auto_disabled"]
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


DEMAND_FAILURES_AND_TEXTS = (
    "current_average_demand",
    "maximum_demand_current_month",
    "average_monthly_peak_demand_12_months",
    "power_failure_log",
    "long_power_failure_count",
    "short_power_failure_count",
    "text_message",
    "text_message_code",
    "timestamp",
)


@pytest.mark.parametrize("version", ["5B", "5", "4", "2.2"])
async def test_demand_failure_and_text_values(
    hass: HomeAssistant, snapshot: SnapshotAssertion, version: str
) -> None:
    """The values beyond energy and power: Belgian capacity tariff, power failures, texts."""
    server = TcpServer(Meter(version, seed=51, text_message="Storing gepland 03:00"))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        await enable_all(hass, entry)
        await send(entry, server)
        shown = {}
        for key in DEMAND_FAILURES_AND_TEXTS:
            state = hass.states.get(f"sensor.electricity_meter_{key}")
            if state is not None:
                shown[key] = {
                    "state": state.state,
                    **{
                        k: v
                        for k, v in state.attributes.items()
                        if k not in {"friendly_name", "icon"}
                    },
                }
        assert shown == snapshot
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


PHASES = (
    "1-0:31.7.0(010*A)",  # L1 takes 2.3 kW
    "1-0:51.7.0(005*A)",  # L2 gives 1.15 kW (solar)
    "1-0:71.7.0(000*A)",
    "1-0:21.7.0(02.300*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:41.7.0(00.000*kW)",
    "1-0:42.7.0(01.150*kW)",
    "1-0:61.7.0(00.000*kW)",
    "1-0:62.7.0(00.000*kW)",
)


async def test_currents_are_signed_and_the_fuse_leaves_what_is_available(
    hass: HomeAssistant,
) -> None:
    """L1 importing 10 A, L2 exporting 5 A, a 25 A main fuse: 15 A and 30 A left, the least 15 A."""
    meter = ReplayMeter(
        "5", dsmr5("1-0:1.8.1(000100.000*kWh)", "1-0:1.8.2(000020.500*kWh)", *PHASES)
    )
    server = TcpServer(meter)
    await server.start()
    try:
        entry = await setup_meter(hass, server, {"time_between_update": 0, "main_fuse": 25})
        for name in ("current_phase_l1", "current_phase_l2", "energy_consumption_total"):
            er.async_get(hass).async_update_entity(
                f"sensor.electricity_meter_{name}", disabled_by=None
            )
        assert await hass.config_entries.async_reload(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.connection.connected)
        await send(entry, server)
        await hass.async_block_till_done()
        states = {
            name: hass.states.get(f"sensor.electricity_meter_{name}").state
            for name in (
                "current_phase_l1",
                "current_phase_l2",
                "available_current_phase_l1",
                "available_current_phase_l2",
                "available_current_phase_l3",
                "available_current",
                "energy_consumption_total",
            )
        }
        assert states == {
            "current_phase_l1": "10.0",
            "current_phase_l2": "-5.0",
            "available_current_phase_l1": "15.0",
            "available_current_phase_l2": "30.0",
            "available_current_phase_l3": "25.0",
            "available_current": "15.0",
            "energy_consumption_total": "120.5",  # no 1-0:1.8.0: the tariffs' sum
        }
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()
