"""A real `hass` with this integration installed, as a user meets it (issue 8, items 1-4).

One `hass` serves the module, with three simulated DSMR 5 meters (gas and water on M-Bus):
one added through the config flow as a network bridge, one through the config flow on a pty
serial port, one from YAML. Module fixtures do the adding; the tests check what the user
gets, and restart `hass` where a user would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
import re
from typing import Any

import pytest

from .harness import (
    HassClient,
    HassProcess,
    Simulator,
    async_wait_until,
    entities_of,
    entity_by_translation_key,
    entity_by_unique_suffix,
    registry_snapshot,
    run_async,
    shift_recorder_history,
)

YAML_BLOCK = """\
sensor:
  - platform: dsmr
    host: 127.0.0.1
    port: {port}
    dsmr_version: "5"
    reconnect_interval: 5
    precision: {precision}
"""
UNAVAILABLE = {"unknown", "unavailable"}
# The meter's registers the tests read, by the suffix of their unique id (the M-Bus gas and
# water meters are found by translation key: their unique id is the M-Bus identifier).
ENERGY_KEYS = {
    "import_1": "_electricity_used_tariff_1",
    "import_2": "_electricity_used_tariff_2",
    "export_1": "_electricity_delivered_tariff_1",
    "export_2": "_electricity_delivered_tariff_2",
    "power": "_current_electricity_usage",
}


@dataclass
class Meter:
    """A meter as the tests know it: its simulator, its config entry, its entities."""

    sim: Simulator
    entry_id: str
    title: str
    flow: list[dict[str, Any]]  # every flow result, in order (empty for YAML)
    entities: dict[str, str]  # ENERGY_KEYS + "gas", "water" -> entity id

    def all_entity_ids(self) -> list[str]:
        """The entity ids the tests read."""
        return list(self.entities.values())


@dataclass
class World:
    """The module's `hass` and meters."""

    hass: HassProcess
    network_sim: Simulator
    serial_sim: Simulator
    yaml_sim: Simulator

    def write_configuration(self, precision: int) -> None:
        """configuration.yaml with the YAML meter at this precision."""
        self.hass.write_configuration(
            YAML_BLOCK.format(port=self.yaml_sim.port, precision=precision)
        )


@pytest.fixture(scope="module")
def world(
    e2e_dir: Path,
    simulators: Callable[..., Simulator],
    hass_processes: Callable[[str], HassProcess],
) -> World:
    """A fresh config dir with the integration copied in, three meters, onboarding done."""
    world = World(
        hass=hass_processes("custom"),
        network_sim=simulators(seed=1),
        serial_sim=simulators(seed=2, tcp_port=None, link=e2e_dir / "ttyDSMR0"),
        yaml_sim=simulators(seed=3),
    )
    world.hass.install_integration()
    world.write_configuration(precision=3)
    world.hass.start()
    world.hass.onboard()
    return world


async def _meter_entities(api: HassClient, entry_id: str) -> dict[str, str]:
    async def probe() -> dict[str, str] | None:
        registry = await api.entity_registry()
        names = {e["translation_key"] for e in entities_of(registry, entry_id).values()}
        if not {"gas_meter_reading", "water_meter_reading"} <= names:
            return None  # M-Bus entities appear with the first telegram that carries them
        found = {
            key: entity_by_unique_suffix(registry, entry_id, s) for key, s in ENERGY_KEYS.items()
        }
        found["gas"] = entity_by_translation_key(registry, entry_id, "gas_meter_reading")
        found["water"] = entity_by_translation_key(registry, entry_id, "water_meter_reading")
        return found

    return await async_wait_until(probe, 30, f"the entities of {entry_id}")


async def _add_through_flow(
    hass: HassProcess, sim: Simulator, choice: str, user_input: dict[str, Any]
) -> Meter:
    """Settings -> Devices & services -> Add integration -> DSMR -> `choice` -> the form."""
    async with hass.client() as api:
        menu = await api.flow_start("dsmr")
        form = await api.flow_next(menu["flow_id"], {"next_step_id": choice})
        done = await api.flow_next(form["flow_id"], user_input)
        assert done["type"] == "create_entry", done
        entry_id = done["result"]["entry_id"]
        return Meter(
            sim, entry_id, done["title"], [menu, form, done], await _meter_entities(api, entry_id)
        )


@pytest.fixture(scope="module")
def network_meter(world: World) -> Meter:
    """The network-bridge meter, added through the config flow's REST endpoints."""
    sim = world.network_sim
    user_input = {"host": sim.host, "port": sim.port, "dsmr_version": "5", "rfxtrx": False}
    return run_async(_add_through_flow(world.hass, sim, "network", user_input))


@pytest.fixture(scope="module")
def serial_meter(world: World) -> Meter:
    """The serial meter (a pty behind a stable symlink), added through the config flow."""
    sim = world.serial_sim
    user_input = {"port": str(sim.link), "dsmr_version": "5", "rfxtrx": False}
    return run_async(_add_through_flow(world.hass, sim, "serial", user_input))


@pytest.fixture(scope="module")
def yaml_meter(world: World) -> Meter:
    """The meter from `sensor: - platform: dsmr`, imported into an entry at start-up."""

    async def find() -> Meter:
        async with world.hass.client() as api:
            title = f"127.0.0.1:{world.yaml_sim.port}"

            async def probe() -> dict[str, Any] | None:
                found = [e for e in await api.entries() if e["title"] == title]
                return found[0] if found and found[0]["state"] == "loaded" else None

            entry = await async_wait_until(probe, 30, "the YAML meter's entry")
            assert entry["source"] == "import"
            entities = await _meter_entities(api, entry["entry_id"])
            return Meter(world.yaml_sim, entry["entry_id"], title, [], entities)

    return run_async(find())


async def _numeric_states(api: HassClient, meter: Meter) -> dict[str, dict[str, Any]]:
    """Wait until every entity of the meter the tests read has a number; return the states."""

    async def probe() -> dict[str, dict[str, Any]] | None:
        states = {}
        for entity_id in meter.all_entity_ids():
            state = await api.state(entity_id)
            if state is None or state["state"] in UNAVAILABLE:
                return None
            states[entity_id] = state
        return states

    states = await async_wait_until(probe, 30, f"numeric states of {meter.title}")
    for state in states.values():
        float(state["state"])
    return states


def _assert_units(meter: Meter, states: dict[str, dict[str, Any]]) -> None:
    units = {
        key: states[entity_id]["attributes"].get("unit_of_measurement")
        for key, entity_id in meter.entities.items()
    }
    assert units == {
        "import_1": "kWh",
        "import_2": "kWh",
        "export_1": "kWh",
        "export_2": "kWh",
        "power": "kW",
        "gas": "m³",
        "water": "m³",
    }
    classes = {
        key: states[entity_id]["attributes"].get("state_class")
        for key, entity_id in meter.entities.items()
    }
    assert classes == {**dict.fromkeys(classes, "total_increasing"), "power": "measurement"}


def _decimals(value: str) -> int:
    return len(value.partition(".")[2])


async def test_network_meter_through_config_flow(world: World, network_meter: Meter) -> None:
    """Item 1 (TCP): the frontend's flow, then states over REST and websocket, updates live."""
    menu, form, done = network_meter.flow
    assert menu["type"] == "menu"
    assert menu["step_id"] == "user"
    assert menu["menu_options"] == ["serial", "network"]
    assert form["type"] == "form"
    assert form["step_id"] == "network"
    assert {"host", "port", "dsmr_version", "rfxtrx"} <= {f["name"] for f in form["data_schema"]}
    assert done["title"] == f"127.0.0.1:{network_meter.sim.port}"
    assert done["result"]["state"] == "loaded"
    assert done["result"]["source"] == "user"
    # The entity ids a user of core's dsmr knows (the YAML meter, imported at start-up,
    # holds the plain ones; this meter's carry a number).
    expected = {
        "power": "sensor.electricity_meter_power_consumption",
        "import_1": "sensor.electricity_meter_energy_consumption_tarif_1",
        "gas": "sensor.gas_meter_gas_consumption",
        "water": "sensor.water_meter_water_consumption",
    }
    for key, entity_id in expected.items():
        assert re.fullmatch(rf"{entity_id}(_[23])?", network_meter.entities[key])

    async with world.hass.client() as api:
        rest = await _numeric_states(api, network_meter)
        _assert_units(network_meter, rest)
        ws_states = {s["entity_id"]: s for s in await api.ws("get_states")}
        for entity_id, state in rest.items():
            assert ws_states[entity_id]["attributes"] == state["attributes"]
            assert ws_states[entity_id]["state"] not in UNAVAILABLE
        devices = [
            d for d in await api.device_registry() if network_meter.entry_id in d["config_entries"]
        ]
        assert sorted(d["name"] for d in devices) == [
            "Electricity Meter",
            "Gas Meter",
            "Water Meter",
        ]

        # Options: publish every telegram (the default is at most every 30 s), then watch
        # state changes arrive over the websocket, as the frontend's subscription shows them.
        options = await api.post(
            "/api/config/config_entries/options/flow", {"handler": network_meter.entry_id}
        )
        assert options["type"] == "form"
        saved = await api.post(
            f"/api/config/config_entries/options/flow/{options['flow_id']}",
            {"time_between_update": 0},
        )
        assert saved["type"] == "create_entry"
        power = network_meter.entities["power"]
        updates = await api.subscribe("subscribe_entities", entity_ids=[power])
        first = await asyncio.wait_for(updates.get(), 10)
        assert power in first["a"]
        seen: list[str] = []
        async with asyncio.timeout(20):
            while len(set(seen)) < 3:
                event = await updates.get()
                change = event.get("c", {}).get(power, {}).get("+", {})
                if "s" in change:
                    seen.append(change["s"])
        assert all(value not in UNAVAILABLE for value in seen)
    assert world.hass.dsmr_errors() == []


async def test_serial_meter_through_config_flow(world: World, serial_meter: Meter) -> None:
    """Item 1 (serial): a pty from the simulator, added on the serial step (DSMR 5)."""
    menu, form, done = serial_meter.flow
    assert menu["menu_options"] == ["serial", "network"]
    assert form["step_id"] == "serial"
    assert {"port", "dsmr_version", "rfxtrx"} <= {f["name"] for f in form["data_schema"]}
    port_field = next(f for f in form["data_schema"] if f["name"] == "port")
    assert "serial_port" in port_field["selector"]  # the frontend's serial port picker
    assert done["title"] == str(serial_meter.sim.link)
    assert done["result"]["state"] == "loaded"
    async with world.hass.client() as api:
        rest = await _numeric_states(api, serial_meter)
        _assert_units(serial_meter, rest)
        ws_states = {s["entity_id"]: s["state"] for s in await api.ws("get_states")}
        assert all(ws_states[entity_id] not in UNAVAILABLE for entity_id in rest)
        devices = [
            d for d in await api.device_registry() if serial_meter.entry_id in d["config_entries"]
        ]
        serials = {d["name"]: d["serial_number"] for d in devices}
        assert sorted(serials) == ["Electricity Meter", "Gas Meter", "Water Meter"]
        assert all(serials.values())
    assert world.hass.dsmr_errors() == []


async def test_yaml_meter_follows_the_yaml(world: World, yaml_meter: Meter) -> None:
    """Item 2: `sensor: - platform: dsmr` becomes an entry; an edit + restart updates it."""
    async with world.hass.client() as api:
        before = await _numeric_states(api, yaml_meter)
        assert all(_decimals(s["state"]) <= 3 for s in before.values())
        assert any(
            _decimals(before[yaml_meter.entities[k]]["state"]) == 3
            for k in ("import_1", "import_2", "export_1", "export_2")
        )
        entries_before = await api.entries()
        snapshot_before = registry_snapshot(
            await api.entity_registry(), await api.device_registry()
        )
        diagnostics = await api.get(f"/api/diagnostics/config_entry/{yaml_meter.entry_id}")
        assert diagnostics["data"]["entry"]["data"]["precision"] == 3

    # The user edits configuration.yaml and restarts Home Assistant.
    world.write_configuration(precision=1)
    await asyncio.to_thread(world.hass.restart)

    async with world.hass.client() as api:
        # Power is a measurement: the first telegram after the restart shows the new precision.
        # (Energy registers are total_increasing: a value rounded down looks like a decrease,
        # which the integration holds back for a few telegrams; not checked here.)
        async def rounded() -> dict[str, dict[str, Any]] | None:
            states = await _numeric_states(api, yaml_meter)
            return states if _decimals(states[yaml_meter.entities["power"]]["state"]) <= 1 else None

        after = await async_wait_until(rounded, 30, "the power at the new precision")
        assert set(after) == set(before)
        entries_after = await api.entries()
        assert [e["entry_id"] for e in entries_after] == [e["entry_id"] for e in entries_before]
        yaml_entries = [e for e in entries_after if e["source"] == "import"]
        assert [e["entry_id"] for e in yaml_entries] == [yaml_meter.entry_id]
        diagnostics = await api.get(f"/api/diagnostics/config_entry/{yaml_meter.entry_id}")
        assert diagnostics["data"]["entry"]["data"]["precision"] == 1
        snapshot_after = registry_snapshot(await api.entity_registry(), await api.device_registry())
        assert snapshot_after == snapshot_before
    assert world.hass.dsmr_errors() == []


async def _statistics(
    api: HassClient, statistic_ids: list[str], since: datetime
) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = await api.ws(
        "recorder/statistics_during_period",
        start_time=since.isoformat(),
        statistic_ids=statistic_ids,
        period="5minute",
        types=["state", "sum", "change", "mean"],
    )
    return result


async def test_energy_dashboard_accepts_the_meter(world: World, network_meter: Meter) -> None:
    """Item 3: grid import/export, gas and water in the Energy dashboard; validation is clean.

    `energy/validate` reports `statistics_not_defined` for any sensor the recorder has not
    compiled statistics for yet, which happens every 5 minutes. The test stops `hass`, moves
    the recorded history 15 minutes back (see `shift_recorder_history`) and starts it again:
    the recorder's catch-up compiles those periods, as it would after a real 15-minute stop.
    """
    meter = network_meter
    ids = meter.entities
    async with world.hass.client() as api:
        await _numeric_states(api, meter)
        await asyncio.sleep(2)  # the recorder commits every second
    await asyncio.to_thread(
        world.hass.restart, lambda: shift_recorder_history(world.hass.db_file, 15)
    )

    wanted = [ids[k] for k in ("import_1", "import_2", "export_1", "export_2", "gas", "water")]
    since = datetime.now(UTC) - timedelta(hours=2)
    async with world.hass.client() as api:

        async def compiled() -> dict[str, list[dict[str, Any]]] | None:
            stats = await _statistics(api, wanted, since)
            return stats if all(stats.get(i) for i in wanted) else None

        stats = await async_wait_until(compiled, 60, "the recorder to compile statistics")
        for statistic_id in wanted:
            sums = [row["sum"] for row in stats[statistic_id]]
            assert sums == sorted(sums), (statistic_id, sums)  # registers only go up

        listed = {
            s["statistic_id"]: s
            for s in await api.ws("recorder/list_statistic_ids", statistic_type="sum")
        }
        for statistic_id in wanted:
            assert listed[statistic_id]["source"] == "recorder"
            assert listed[statistic_id]["has_sum"] is True
        assert listed[ids["import_1"]]["statistics_unit_of_measurement"] == "kWh"
        assert listed[ids["gas"]]["statistics_unit_of_measurement"] == "m³"

        prefs = {
            "energy_sources": [
                {
                    "type": "grid",
                    "stat_energy_from": ids["import_1"],
                    "stat_energy_to": ids["export_1"],
                    "cost_adjustment_day": 0,
                },
                {
                    "type": "grid",
                    "stat_energy_from": ids["import_2"],
                    "stat_energy_to": ids["export_2"],
                    "cost_adjustment_day": 0,
                },
                {"type": "gas", "stat_energy_from": ids["gas"]},
                {"type": "water", "stat_energy_from": ids["water"]},
            ],
            "device_consumption": [],
        }
        await api.ws("energy/save_prefs", **prefs)
        saved = await api.ws("energy/get_prefs")
        assert [s.get("stat_energy_from") for s in saved["energy_sources"]] == [
            ids["import_1"],
            ids["import_2"],
            ids["gas"],
            ids["water"],
        ]
        validation = await api.ws("energy/validate")
        assert validation["energy_sources"] == [[], [], [], []], validation
        assert validation["device_consumption"] == []
    assert world.hass.dsmr_errors() == []


async def _live_states(api: HassClient, entity_ids: list[str]) -> dict[str, str]:
    states = {s["entity_id"]: s["state"] for s in await api.ws("get_states")}
    return {entity_id: states[entity_id] for entity_id in entity_ids}


async def test_restart_restores_states_without_duplicates(
    world: World, network_meter: Meter, serial_meter: Meter, yaml_meter: Meter
) -> None:
    """Item 4: after a restart the last values show before any telegram; registries unchanged.

    The meters go quiet before the restart: every simulator is stopped (the entities go
    unavailable) and, while `hass` is down, started again with the `stall` fault, so the
    bridge accepts the connection and the pty opens but no telegram comes. What `hass` shows
    then is what it restored. Then the meters talk again and fresh values replace them.
    """
    meters = [network_meter, serial_meter, yaml_meter]
    watched = [entity_id for meter in meters for entity_id in meter.all_entity_ids()]
    async with world.hass.client() as api:
        for meter in meters:
            await _numeric_states(api, meter)
        snapshot_before = registry_snapshot(
            await api.entity_registry(), await api.device_registry()
        )
        # Follow the states as the frontend does while the meters stop talking.
        updates = await api.subscribe("subscribe_entities", entity_ids=watched)
        first = await asyncio.wait_for(updates.get(), 10)
        last_seen = {entity_id: first["a"][entity_id]["s"] for entity_id in watched}
        current = dict(last_seen)
        for meter in meters:
            await asyncio.to_thread(meter.sim.stop)
        async with asyncio.timeout(30):
            while any(current[e] != "unavailable" for e in watched):
                event = await updates.get()
                for entity_id, change in event.get("c", {}).items():
                    if "s" in change.get("+", {}):
                        current[entity_id] = change["+"]["s"]
                        if current[entity_id] not in UNAVAILABLE:
                            last_seen[entity_id] = current[entity_id]
    assert all(value not in UNAVAILABLE for value in last_seen.values()), last_seen

    def quiet_meters() -> None:
        for meter in meters:
            meter.sim.restart(faults=("stall",))

    await asyncio.to_thread(world.hass.restart, quiet_meters)
    async with world.hass.client() as api:
        restored = await _live_states(api, watched)
        assert restored == last_seen
        await asyncio.sleep(3)  # still no telegram: still the restored values, still available
        assert await _live_states(api, watched) == last_seen
        snapshot_after = registry_snapshot(await api.entity_registry(), await api.device_registry())
        assert snapshot_after == snapshot_before

        # The meters talk again: fresh telegrams replace the restored values.
        for meter in meters:
            await asyncio.to_thread(meter.sim.restart, faults=())

        async def fresh() -> bool:
            live = await _live_states(api, watched)
            power = [live[m.entities["power"]] for m in meters]
            return all(v not in UNAVAILABLE for v in live.values()) and power != [
                last_seen[m.entities["power"]] for m in meters
            ]

        await async_wait_until(fresh, 60, "fresh telegrams after the restart")
    assert world.hass.dsmr_errors() == []
