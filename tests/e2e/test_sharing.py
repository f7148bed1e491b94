"""Sharing the meter between real Home Assistants (issue 18).

The first `hass` reads a simulated DSMR 5 meter (gas and water on M-Bus) on a pty and shares
it on 127.0.0.1:PORT, turned on in its options flow. A second `hass` adds this integration
through the config flow as a network bridge at that address, a third runs core's own `dsmr`
on it: both show what the first shows (REST), and the first counts them as clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .harness import (
    HassClient,
    HassProcess,
    Simulator,
    async_wait_until,
    entities_of,
    free_port,
    run_async,
)

UNAVAILABLE = {"unknown", "unavailable"}
CLIENTS = "_rebroadcast_clients"
FLOW = "_flow"


async def _options(api: HassClient, entry_id: str, user_input: dict[str, Any]) -> None:
    """Settings -> the meter -> Configure: the form sent as the frontend sends it."""
    form = await api.post("/api/config/config_entries/options/flow", {"handler": entry_id})
    assert form["type"] == "form", form
    saved = await api.post(f"/api/config/config_entries/options/flow/{form['flow_id']}", user_input)
    assert saved["type"] == "create_entry", saved


async def _add(api: HassClient, choice: str | None, user_input: dict[str, Any]) -> str:
    """Add a meter through the config flow (ours has a menu first; core's has not)."""
    form = await api.flow_start("dsmr")
    if choice is not None:
        form = await api.flow_next(form["flow_id"], {"next_step_id": choice})
    done = await api.flow_next(form["flow_id"], user_input)
    assert done["type"] == "create_entry", done
    entry_id: str = done["result"]["entry_id"]

    async def set_up() -> bool:  # (core's reload while it sets up logs duplicate unique ids)
        registry = entities_of(await api.entity_registry(), entry_id)
        return any([await api.state(entity_id) for entity_id in registry])

    await async_wait_until(set_up, 60, f"the entities of {entry_id}")
    await _options(api, entry_id, {"time_between_update": 0})  # every telegram, as the first
    return entry_id


async def _states(api: HassClient, entry_id: str) -> dict[str, str]:
    """unique id -> state of the entry's enabled entities, once all have a value."""

    async def probe() -> dict[str, str] | None:
        found = {}
        registry = entities_of(await api.entity_registry(), entry_id)
        for entity_id, reg in registry.items():
            # Flows need two sub-meter captures (5 minutes apart by the meter's clock) after a
            # reader starts: a reader that has just started shows them unknown, rightly.
            if reg.get("disabled_by") or reg["unique_id"].endswith((CLIENTS, FLOW)):
                continue
            state = await api.state(entity_id)
            if state is None or state["state"] in UNAVAILABLE:
                return None
            found[reg["unique_id"]] = state["state"]
        names = {r.get("translation_key") for r in registry.values()}
        return found if {"gas_meter_reading", "water_meter_reading"} <= names else None

    return await async_wait_until(probe, 60, f"the states of {entry_id}")


async def _clients(api: HassClient, entry_id: str, count: int) -> None:
    async def probe() -> bool:
        registry = entities_of(await api.entity_registry(), entry_id)
        found = [e for e, reg in registry.items() if reg["unique_id"].endswith(CLIENTS)]
        state = await api.state(found[0]) if found else None
        return state is not None and state["state"] == str(count)

    await async_wait_until(probe, 60, f"{count} re-broadcast client(s)")


def test_other_home_assistants_read_the_shared_meter(
    e2e_dir: Path,
    simulators: Callable[..., Simulator],
    hass_processes: Callable[[str], HassProcess],
) -> None:
    sim = simulators(seed=41, tcp_port=None, link=e2e_dir / "ttyDSMR-shared", interval=5.0)
    first = hass_processes("share-first")
    first.install_integration()
    first.write_configuration()
    first.start()
    first.onboard()
    port = free_port()
    shared = {"host": "127.0.0.1", "port": port, "dsmr_version": "5"}

    async def share() -> str:
        async with first.client() as api:
            entry_id = await _add(api, "serial", {"port": str(sim.link), "dsmr_version": "5"})
            section = {
                "rebroadcast": True,
                "rebroadcast_host": "127.0.0.1",
                "rebroadcast_port": port,
                "rebroadcast_max_clients": 5,
            }
            user_input = {"time_between_update": 0, "rebroadcast": section}
            await _options(api, entry_id, user_input)
            await _clients(api, entry_id, 0)
            return entry_id

    first_entry = run_async(share())

    def compare(label: str, choice: str | None, user_input: dict[str, Any], ours: bool) -> None:
        other = hass_processes(label)
        if ours:
            other.install_integration()
        other.write_configuration()  # without custom_components/dsmr: core's own dsmr
        other.start()
        other.onboard()

        async def run() -> None:
            async with other.client() as api, first.client() as api_first:
                entry_id = await _add(api, choice, user_input)
                await _clients(api_first, first_entry, 1)
                # Both take each telegram within milliseconds; a telegram every 5 s leaves
                # time to read both sides between two (a read that straddles one is repeated).
                for _ in range(10):
                    theirs = await _states(api, entry_id)
                    mine = await _states(api_first, first_entry)
                    common = theirs.keys() & mine.keys()
                    if all(theirs[k] == mine[k] for k in common):
                        break
                    await asyncio.sleep(1)
                assert len(common) >= 9, (theirs, mine)  # DSMR 5 defaults (core's), gas, water
                assert {k: theirs[k] for k in common} == {k: mine[k] for k in common}
                if ours:
                    assert theirs.keys() <= mine.keys()

        run_async(run())
        other.stop()
        run_async(_check_no_clients(first, first_entry))

    compare("share-ours", "network", shared | {"rfxtrx": False}, ours=True)
    compare("share-core", None, {"port": f"socket://127.0.0.1:{port}", "dsmr_version": "5"}, False)


async def _check_no_clients(first: HassProcess, entry_id: str) -> None:
    async with first.client() as api:
        await _clients(api, entry_id, 0)
