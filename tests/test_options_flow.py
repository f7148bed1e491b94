"""The options form's section for sharing the meter: defaults, validation, a trial bind."""

from __future__ import annotations

import socket
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType, InvalidData, section
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr import config_flow
from custom_components.dsmr.const import DOMAIN
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import free_port, setup_meter, wait_for

LOOPBACK = "127.0.0.1"

SECTION_DEFAULTS = {
    "rebroadcast": False,
    "rebroadcast_host": "127.0.0.1",
    "rebroadcast_port": 2002,
    "rebroadcast_max_clients": 5,
}


def sharing_fields(result: FlowResult) -> dict[str, Any]:
    """The section's fields and what they show pre-filled."""
    schema = result["data_schema"]
    assert schema is not None
    shown = {str(key): value for key, value in schema.schema.items()}
    part = shown["rebroadcast"]
    assert isinstance(part, section)
    assert part.options == {"collapsed": True}
    return {str(key): key.default() for key in part.schema.schema}


def answers(**changes: Any) -> dict[str, Any]:
    return {
        "time_between_update": 30,
        "watchdog_timeout": 60,
        "rebroadcast": SECTION_DEFAULTS | changes,
    }


def nowhere() -> str:
    """A port refused at once: saving the options loads the entry (`servers` unloads it)."""
    return f"socket://127.0.0.1:{free_port()}"


@pytest.fixture
def entry(hass: HomeAssistant, servers: list[Any]) -> MockConfigEntry:
    """A plain meter's entry without a meter."""
    made = MockConfigEntry(domain=DOMAIN, data={"port": nowhere(), "dsmr_version": "5"})
    made.add_to_hass(hass)
    return made


async def submit(
    hass: HomeAssistant, entry: MockConfigEntry, user_input: dict[str, Any]
) -> FlowResult:
    """Open the options form and send it; a saved form's reload is waited for."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    await hass.async_block_till_done()
    return result


async def test_off_by_default_and_collapsed(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert sharing_fields(result) == SECTION_DEFAULTS  # no decrypted field: a plain meter
    hass.config_entries.options.async_abort(result["flow_id"])


@pytest.mark.usefixtures("servers")
async def test_the_decrypted_field_is_for_encrypted_meters_only(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"port": nowhere(), "dsmr_version": "MSn"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert sharing_fields(result) == SECTION_DEFAULTS | {"rebroadcast_decrypted": False}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], answers(rebroadcast_decrypted=True, rebroadcast_port=free_port())
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["rebroadcast_decrypted"] is True


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("127.0.0.1", "127.0.0.1"),
        (" 0.0.0.0 ", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::", "::"),
        ("0:0:0:0:0:0:0:1", "::1"),
    ],
)
async def test_addresses_are_stored_normalised(
    hass: HomeAssistant, entry: MockConfigEntry, typed: str, stored: str
) -> None:
    result = await submit(
        hass, entry, answers(rebroadcast_host=typed, rebroadcast_port=free_port())
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["rebroadcast_host"] == stored
    assert entry.options["rebroadcast"] is False  # validated, not turned on


@pytest.mark.parametrize("typed", ["localhost", "300.1.1.1", "meter.local", "", "::1::"])
async def test_host_names_and_bad_addresses_are_refused(
    hass: HomeAssistant, entry: MockConfigEntry, typed: str
) -> None:
    result = await submit(hass, entry, answers(rebroadcast=True, rebroadcast_host=typed))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_bind_address"}
    assert sharing_fields(result)["rebroadcast_host"] == typed  # shown again as typed
    assert entry.options == {}


async def test_a_port_in_use_is_a_form_error(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = await submit(hass, entry, answers(rebroadcast=True, rebroadcast_port=port))
        assert result["errors"] == {"base": "address_in_use"}
        # Off, the same port is no error: nothing will listen on it.
        result = await submit(hass, entry, answers(rebroadcast=False, rebroadcast_port=port))
        assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_an_address_of_no_interface_is_a_form_error(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await submit(
        hass,
        entry,
        answers(rebroadcast=True, rebroadcast_host="192.0.2.1", rebroadcast_port=free_port()),
    )
    assert result["errors"] == {"base": "address_not_available"}


async def test_out_of_range_numbers_are_refused(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    for field, value in (
        ("rebroadcast_port", 0),
        ("rebroadcast_port", 65536),
        ("rebroadcast_max_clients", 21),
    ):
        with pytest.raises(InvalidData):
            await submit(hass, entry, answers(**{field: value}))
    assert entry.options == {}


async def test_turning_it_on_reloads_into_a_listening_server(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved options reload the entry: the server listens where the form said. Saving again
    with the port the running server holds does no trial bind (it would fail on our own
    server); a new port does."""
    meter = TcpServer(Meter("5", seed=31))
    await meter.start()
    entry = await setup_meter(hass, meter)
    assert entry.runtime_data.rebroadcast is None
    port = free_port()
    result = await submit(
        hass, entry, answers(rebroadcast=True, rebroadcast_port=port, rebroadcast_max_clients=2)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {
        "time_between_update": 30,
        "watchdog_timeout": 60,
        "rebroadcast": True,
        "rebroadcast_host": "127.0.0.1",
        "rebroadcast_port": port,
        "rebroadcast_max_clients": 2,
    }
    server = entry.runtime_data.rebroadcast
    assert server is not None
    await wait_for(lambda: server.listening)
    assert (server.host, server.port, server.max_clients) == ("127.0.0.1", port, 2)

    tried: list[tuple[str, int]] = []
    trial = config_flow.async_trial_listen

    async def recording(host: str, port: int) -> Any:
        tried.append((host, port))
        return await trial(host, port)

    monkeypatch.setattr(config_flow, "async_trial_listen", recording)
    result = await submit(
        hass, entry, answers(rebroadcast=True, rebroadcast_port=port, rebroadcast_max_clients=3)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert tried == []
    await hass.async_block_till_done()
    moved = free_port()
    result = await submit(hass, entry, answers(rebroadcast=True, rebroadcast_port=moved))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert tried == [("127.0.0.1", moved)]
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.rebroadcast.listening)
    assert entry.runtime_data.rebroadcast.port == moved
    # Off again: no server after the reload.
    result = await submit(hass, entry, answers(rebroadcast=False, rebroadcast_port=moved))
    await hass.async_block_till_done()
    assert entry.runtime_data.rebroadcast is None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


async def test_a_form_without_the_section_keeps_sharing_as_it_is(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A caller that leaves the section out (the API, older frontends) changes nothing of it."""
    hass.config_entries.async_update_entry(
        entry, options={"rebroadcast": True, "rebroadcast_port": 2100}
    )
    result = await submit(hass, entry, {"time_between_update": 5})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "rebroadcast": True,
        "rebroadcast_port": 2100,
        "time_between_update": 5,
        "watchdog_timeout": 60,
    }
