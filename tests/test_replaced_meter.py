"""A replaced meter: Reconfigure detects it and moves the entry, its entities and history to it.

A DSMR 4 entry whose bridge now serves a DSMR 5 meter with another identifier keeps its entity
ids; its registers start a new cycle at once, and the hour's long-term statistics show neither a
negative change nor the old register as a spike. The replaced-meter repair moves it the same way.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.const import DOMAIN
from dsmr_sim.server import BaseServer

from .helpers import send, serve, setup_meter, wait_for
from .recorder_statistics import OPTIONS, T0, compile_periods, statistics
from .telegrams import ELECTRICITY_ID, ReplayMeter, dsmr4, dsmr5

NEW_ID = "4530303533303037373737373737373737"  # E0053007777777777
IMPORT_1 = "sensor.electricity_meter_energy_consumption_tarif_1"
TOTAL = "sensor.electricity_meter_energy_consumption_total"


def old_meter(import_1: str) -> str:
    return dsmr4(f"1-0:1.8.1({import_1}*kWh)", "1-0:1.8.2(000500.000*kWh)", "1-0:1.7.0(00.4*kW)")


def new_meter(import_1: str) -> str:
    lines = (f"1-0:1.8.1({import_1}*kWh)", "1-0:1.8.2(000000.500*kWh)", "1-0:1.7.0(00.400*kW)")
    return dsmr5(*lines, ident=NEW_ID)


@pytest.fixture
def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder is set up before Home Assistant (as in Home Assistant's tests)."""


def entity_ids(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """Entity id by unique id, without the meter's identifier."""
    found = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return {e.unique_id.split("_", 1)[1]: e.entity_id for e in found if "_" in e.unique_id}


@pytest.mark.freeze_time(T0, tick=True)
async def test_a_dsmr4_entry_moves_to_the_dsmr5_meter_that_replaced_it(
    freezer: FrozenDateTimeFactory,
    recorder_mock: Recorder,
    hass: HomeAssistant,
    servers: list[BaseServer],
) -> None:
    old = ReplayMeter("4", old_meter("001234.567"))
    old_server = await serve(servers, old)
    entry = await setup_meter(hass, old_server, OPTIONS)
    for minute, reading in ((2, "001234.567"), (4, "001234.600")):
        freezer.move_to(T0 + timedelta(minutes=minute))
        old.text = old_meter(reading)
        await send(entry, old_server)
    before = entity_ids(hass, entry)
    await old_server.stop()

    new = ReplayMeter("5", new_meter("000001.000"))
    server = await serve(servers, new, interval=0.1)  # talking while the flow listens
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": server.port}
    )
    assert result["step_id"] == "replace"
    assert result["description_placeholders"] == {
        "before": "DSMR 4",
        "after": "DSMR 5 (Netherlands)",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert (entry.unique_id, entry.data["dsmr_version"]) == (NEW_ID, "5")
    await wait_for(lambda: entry.runtime_data.connection.connected)
    for minute, reading in ((10, "000001.000"), (12, "000001.010")):
        freezer.move_to(T0 + timedelta(minutes=minute))
        new.text = new_meter(reading)
        await wait_for(lambda r=reading: hass.states.get(IMPORT_1).state == str(float(r)))

    after = entity_ids(hass, entry)
    assert {k: after[k] for k in before} == before  # every entity id continues
    uniques = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert not [e.unique_id for e in uniques if e.unique_id.startswith(ELECTRICITY_ID)]
    registry = dr.async_get(hass)
    assert registry.async_get_device_by_identifier((DOMAIN, NEW_ID), entry.entry_id)
    assert not registry.async_get_device_by_identifier((DOMAIN, ELECTRICITY_ID), entry.entry_id)
    assert hass.states.get(IMPORT_1).state == "1.01"  # the new cycle at once, no hour's hold
    assert "new_meter" not in entry.data

    freezer.move_to(T0 + timedelta(hours=1, minutes=1))
    await compile_periods(hass, T0, T0 + timedelta(hours=1))
    rows = (await statistics(hass, {IMPORT_1, TOTAL}, "5minute"))[IMPORT_1]
    changes = [b["sum"] - a["sum"] for a, b in pairwise(rows)]
    assert min(changes) >= 0  # nothing negative
    assert rows[-1]["sum"] == pytest.approx(0.033 + 1.010)  # the old meter's, the new one's
    assert rows[-1]["state"] == pytest.approx(1.01)


async def test_the_replaced_meter_issue_moves_the_entry(
    hass: HomeAssistant, servers: list[BaseServer]
) -> None:
    meter = ReplayMeter("5", dsmr5("1-0:1.8.1(001234.567*kWh)"))
    server = await serve(servers, meter)
    entry = await setup_meter(hass, server, OPTIONS)
    ids = entity_ids(hass, entry)
    await server.drop_clients()
    await server.wait_for_clients(1, timeout=10)
    meter.text = dsmr5("1-0:1.8.1(000001.000*kWh)", ident=NEW_ID)
    await send(entry, server)
    issue_id = f"replaced_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None and issue.is_fixable

    assert await async_setup_component(hass, "repairs", {})
    repairs = hass.data["repairs"]["flow_manager"]
    result = await repairs.async_init(DOMAIN, context={"issue_id": issue_id})
    assert result["step_id"] == "confirm"
    result = await repairs.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.unique_id == NEW_ID
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert entity_ids(hass, entry) == ids
