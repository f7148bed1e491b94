"""Migration from Home Assistant's built-in `dsmr` to this integration (issue 8, item 5).

A user runs core's `dsmr` for a while, then installs this integration into
`custom_components/` (as HACS does) and restarts. One simulated DSMR 5 meter (gas and water
on M-Bus) keeps sending throughout, as a real meter would. Four runs of `hass` on one config
directory:

A. core `dsmr`, set up through core's own config flow with `socket://127.0.0.1:PORT`;
B. core again: the recorder compiles statistics of A's states (see below);
C. this integration installed: entities, devices and statistics carry on, B compiled;
D. this integration again: C's states compiled, so the statistics series spans the switch.

Between runs the recorded history moves 15 minutes back (`shift_recorder_history`), so that
each start's statistics catch-up compiles the previous run's states, the way it does after a
real 15-minute stop; the recorder compiles 5-minute statistics on its own schedule and no API
forces a compile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .harness import (
    HassClient,
    HassProcess,
    Simulator,
    async_wait_until,
    duplicated_entity_ids,
    entity_by_translation_key,
    entity_by_unique_suffix,
    registry_snapshot,
    shift_recorder_history,
)

UNAVAILABLE = {"unknown", "unavailable"}
# The entity ids core's dsmr gives a DSMR 5 meter with gas and water on M-Bus.
CORE_ENTITY_IDS = {
    "import_1": "sensor.electricity_meter_energy_consumption_tarif_1",
    "import_2": "sensor.electricity_meter_energy_consumption_tarif_2",
    "export_1": "sensor.electricity_meter_energy_production_tarif_1",
    "export_2": "sensor.electricity_meter_energy_production_tarif_2",
    "power": "sensor.electricity_meter_power_consumption",
    "gas": "sensor.gas_meter_gas_consumption",
    "water": "sensor.water_meter_water_consumption",
}
SUM_KEYS = ("import_1", "import_2", "export_1", "export_2", "gas", "water")
SHIFT_MINUTES = 15
# The simulated house uses a few kW at most: a 5-minute period adds well under 1 kWh (or m³).
SPIKE = 1.0


async def _integration(api: HassClient) -> dict[str, Any]:
    manifest: dict[str, Any] = await api.ws("manifest/get", integration="dsmr")
    return manifest


async def _wait_states(api: HassClient, entity_ids: list[str]) -> dict[str, str]:
    async def probe() -> dict[str, str] | None:
        states = {s["entity_id"]: s["state"] for s in await api.ws("get_states")}
        found = {e: states.get(e, "unknown") for e in entity_ids}
        return found if not set(found.values()) & UNAVAILABLE else None

    return await async_wait_until(probe, 45, f"numeric states of {entity_ids}")


async def _statistics(api: HassClient, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = await api.ws(
        "recorder/statistics_during_period",
        start_time=(datetime.now(UTC) - timedelta(hours=3)).isoformat(),
        statistic_ids=ids,
        period="5minute",
        types=["state", "sum", "change"],
    )
    return result


async def _wait_compiled(
    api: HassClient, ids: list[str], rows: int
) -> dict[str, list[dict[str, Any]]]:
    """Wait until every statistic has at least `rows` 5-minute rows."""

    async def probe() -> dict[str, list[dict[str, Any]]] | None:
        stats = await _statistics(api, ids)
        return stats if all(len(stats.get(i, [])) >= rows for i in ids) else None

    return await async_wait_until(probe, 60, f"{rows} compiled 5-minute periods")


async def _metadata(api: HassClient, ids: list[str]) -> dict[str, dict[str, Any]]:
    result = await api.ws("recorder/get_statistics_metadata", statistic_ids=ids)
    return {m["statistic_id"]: m for m in result}


async def test_migration_from_core_dsmr(
    simulators: Callable[..., Simulator], hass_processes: Callable[[str], HassProcess]
) -> None:
    """Item 5: entity ids, unique ids, devices, history and statistics carry on."""
    sim = await asyncio.to_thread(simulators, seed=7)
    hass = hass_processes("core-to-custom")
    hass.write_configuration()  # no custom_components/dsmr: Home Assistant's own dsmr
    await asyncio.to_thread(hass.start)
    await asyncio.to_thread(hass.onboard)
    ids = CORE_ENTITY_IDS
    seen_by_core: dict[str, set[str]] = {key: set() for key in ids}

    # --- A: core's dsmr, through core's config flow -----------------------------------------
    async with hass.client() as api:
        manifest = await _integration(api)
        assert manifest["is_built_in"] is True
        form = await api.flow_start("dsmr")
        assert form["type"] == "form"  # core: one form, no menu
        assert form["step_id"] == "user"
        assert [f["name"] for f in form["data_schema"]] == ["port", "dsmr_version"]
        done = await api.flow_next(
            form["flow_id"], {"port": f"socket://127.0.0.1:{sim.port}", "dsmr_version": "5"}
        )
        assert done["type"] == "create_entry", done
        assert done["title"] == f"socket://127.0.0.1:{sim.port}"
        entry_id = done["result"]["entry_id"]
        # Core publishes a telegram at most every 30 s by default, and its M-Bus entities get
        # their first value only at the second publish; the user sets "every telegram".
        options = await api.post("/api/config/config_entries/options/flow", {"handler": entry_id})
        saved = await api.post(
            f"/api/config/config_entries/options/flow/{options['flow_id']}",
            {"time_between_update": 0},
        )
        assert saved["type"] == "create_entry"
        states = await _wait_states(api, list(ids.values()))
        for key, entity_id in ids.items():
            seen_by_core[key].add(states[entity_id])
        registry = await api.entity_registry()
        assert (
            entity_by_unique_suffix(registry, entry_id, "_electricity_used_tariff_1")
            == ids["import_1"]
        )
        assert entity_by_translation_key(registry, entry_id, "gas_meter_reading") == ids["gas"]
        core_snapshot = registry_snapshot(registry, await api.device_registry())
        core_unique_ids = {
            e["entity_id"]: e["unique_id"] for e in registry if e["platform"] == "dsmr"
        }
    assert hass.dsmr_errors() == []

    # --- B: core again; the recorder compiles A -----------------------------------------
    await asyncio.to_thread(
        hass.restart, lambda: shift_recorder_history(hass.db_file, SHIFT_MINUTES)
    )
    sum_ids = [ids[k] for k in SUM_KEYS]
    async with hass.client() as api:
        assert (await _integration(api))["is_built_in"] is True
        await _wait_compiled(api, sum_ids, 1)
        core_metadata = await _metadata(api, sum_ids)
        assert set(core_metadata) == set(sum_ids)
        states = await _wait_states(api, list(ids.values()))
        for key, entity_id in ids.items():
            seen_by_core[key].add(states[entity_id])
    assert hass.dsmr_errors() == []

    # --- C: the user installs this integration and restarts ---------------------------------
    def install() -> None:
        shift_recorder_history(hass.db_file, SHIFT_MINUTES)
        hass.install_integration()

    await asyncio.to_thread(hass.restart, install)
    async with hass.client() as api:
        manifest = await _integration(api)
        assert manifest["is_built_in"] is False
        assert manifest["version"]
        entries = await api.entries()
        assert [(e["entry_id"], e["state"]) for e in entries] == [(entry_id, "loaded")]
        states = await _wait_states(api, list(ids.values()))
        seen_by_custom = {key: {states[entity_id]} for key, entity_id in ids.items()}
        registry = await api.entity_registry()
        snapshot = registry_snapshot(registry, await api.device_registry())
        # Every entity core made is still there: same entity id, unique id, device, entry.
        assert set(core_snapshot["entities"]) <= set(snapshot["entities"])
        assert set(core_snapshot["devices"]) <= set(snapshot["devices"])
        now_unique_ids = {
            e["entity_id"]: e["unique_id"] for e in registry if e["platform"] == "dsmr"
        }
        assert {k: now_unique_ids.get(k) for k in core_unique_ids} == core_unique_ids
        # Nothing doubled: no `_2` entity, no second device for the same meter.
        assert duplicated_entity_ids(now_unique_ids) == []
        device_names = [d[2] for d in snapshot["devices"]]
        assert sorted(device_names) == ["Electricity Meter", "Gas Meter", "Water Meter"]
        # B's states were compiled by this run, into the statistics core started.
        await _wait_compiled(api, sum_ids, 2)
        metadata = await _metadata(api, sum_ids)
        assert metadata == core_metadata
        listed = await api.ws("recorder/list_statistic_ids", statistic_type="sum")
        dsmr_stats = sorted(
            s["statistic_id"]
            for s in listed
            if s["statistic_id"].startswith(
                ("sensor.electricity_meter", "sensor.gas_meter", "sensor.water_meter")
            )
        )
        assert duplicated_entity_ids(dsmr_stats) == []
    assert hass.dsmr_errors() == []

    # --- D: this integration again; C is compiled: one series across the switch ------------
    await asyncio.to_thread(
        hass.restart, lambda: shift_recorder_history(hass.db_file, SHIFT_MINUTES)
    )
    async with hass.client() as api:
        stats = await _wait_compiled(api, sum_ids, 3)
        assert await _metadata(api, sum_ids) == metadata
        states = await _wait_states(api, list(ids.values()))
        for key, entity_id in ids.items():
            seen_by_custom[key].add(states[entity_id])
        for key in SUM_KEYS:
            rows = stats[ids[key]]
            sums = [row["sum"] for row in rows]
            changes = [row["change"] for row in rows]
            assert sums == sorted(sums), (key, sums)
            assert all(0 <= change < SPIKE for change in changes), (key, changes)
            assert sums[-1] < SPIKE, (key, sums)  # the whole series, core and ours: no jump
            assert rows[-1]["state"] >= max(float(v) for v in seen_by_core[key])

        # The history of each entity is one series: core's values first, then ours.
        since = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
        history = await api.get(
            f"/api/history/period/{since}?filter_entity_id={','.join(ids[k] for k in SUM_KEYS)}"
            "&minimal_response&no_attributes&significant_changes_only=0"
        )
        by_entity = {series[0]["entity_id"]: series for series in history}
        for key in SUM_KEYS:
            values = [s["state"] for s in by_entity[ids[key]] if s["state"] not in UNAVAILABLE]
            assert set(values) & seen_by_core[key], (key, values, seen_by_core[key])
            assert set(values) & seen_by_custom[key], (key, values, seen_by_custom[key])
            numbers = [float(v) for v in values]
            assert numbers == sorted(numbers), (key, values)
    assert hass.dsmr_errors() == []
