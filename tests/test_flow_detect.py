"""Config flow: auto-detection, encrypted meters told apart by the key, USB discovery, reconfigure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from homeassistant.setup import async_setup_component
import pytest

from custom_components.dsmr.const import DOMAIN
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .helpers import setup_meter

KEY = "00112233445566778899AABBCCDDEEFF"
WRONG = "FFEEDDCCBBAA99887766554433221100"
INTERVAL = 0.1

type Servers = Callable[..., Coroutine[Any, Any, TcpServer]]


@pytest.fixture
async def tcp() -> AsyncIterator[Servers]:
    started: list[TcpServer] = []

    async def make(version: str, **kwargs: Any) -> TcpServer:
        server = TcpServer(Meter(version, **kwargs), interval=INTERVAL)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


async def _network(hass: HomeAssistant, server: TcpServer, version: str = "auto") -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "network"}
    )
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": server.port, "dsmr_version": version}
    )


@pytest.mark.parametrize(
    ("version", "label"),
    [
        ("5", "DSMR 5 (Netherlands)"),
        ("5B", "DSMR 5B (Belgium, Fluvius e-MUCS)"),
        ("2.2", "DSMR 2.2 / 3"),
    ],
)
async def test_detected_meter_is_confirmed_and_added(
    hass: HomeAssistant, tcp: Servers, version: str, label: str
) -> None:
    server = await tcp(version, seed=41)
    result = await _network(hass, server)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "detected"
    placeholders = result["description_placeholders"]
    assert placeholders["meter"] == label
    assert placeholders["settings"] == "network"
    assert float(placeholders["seconds"]) < 2 * INTERVAL + 0.5
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["dsmr_version"] == version
    assert result["data"]["serial_id"]
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_detected_over_a_serial_port(hass: HomeAssistant, tmp_path: Path) -> None:
    server = PtyServer(Meter("5", seed=42), link=tmp_path / "ttyP1", interval=INTERVAL)
    await server.start()
    try:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "serial"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": server.port, "dsmr_version": "auto"}
        )
        assert result["step_id"] == "detected"
        assert result["description_placeholders"]["settings"] == "115200 8N1"
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
        assert result["data"]["port"] == server.port
        assert result["data"]["dsmr_version"] == "5"
        await hass.async_block_till_done()
        assert await hass.config_entries.async_unload(result["result"].entry_id)
    finally:
        await server.stop()


@pytest.mark.parametrize("version", ["MSn", "SAGEMCOM_T210_D_R"])
async def test_encrypted_meter_told_apart_by_its_key(
    hass: HomeAssistant, tcp: Servers, version: str
) -> None:
    server = await tcp(version, seed=43, key=KEY)
    result = await _network(hass, server)
    assert result["step_id"] == "encryption_key"
    loop = hass.loop
    started = loop.time()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"encryption_key": WRONG}
    )
    assert result["errors"] == {"base": "invalid_key"}
    assert loop.time() - started < 0.5  # decided from the frame already heard, not by waiting
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"encryption_key": KEY.lower()}
    )
    assert result["step_id"] == "detected"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["data"]["dsmr_version"] == version
    assert result["data"]["encryption_key"] == KEY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_nothing_recognizable(hass: HomeAssistant, tcp: Servers) -> None:
    """Connected, silent: nothing arrived (see test_hostile.py for bytes that are no telegram)."""
    server = TcpServer(Meter("5"))  # manual mode: connected, silent
    await server.start()
    try:
        from custom_components.dsmr import detect

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(detect, "DETECTION_WAIT", 0.3)
            result = await _network(hass, server)
        assert result["errors"] == {"base": "no_data"}
    finally:
        await server.stop()


def _usb(path: str) -> UsbServiceInfo:
    return UsbServiceInfo(
        device=path,
        vid="0403",
        pid="6001",
        serial_number="A1",
        manufacturer="FTDI",
        description="P1 cable",
    )


async def test_usb_port_offered_only_when_a_meter_talks(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    from custom_components.dsmr import detect

    silent = PtyServer(Meter("5"), link=tmp_path / "silent")
    await silent.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(detect, "DETECTION_WAIT", 0.3)
            patch.setattr(detect, "SETTINGS", detect.SETTINGS[:1])  # ptys: see test_detect
            result = await hass.config_entries.flow.async_init(
                DOMAIN, context={"source": "usb"}, data=_usb(silent.port)
            )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "not_dsmr"
    finally:
        await silent.stop()
    talking = PtyServer(Meter("5", seed=44), link=tmp_path / "talking", interval=INTERVAL)
    await talking.start()
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": "usb"}, data=_usb(talking.port)
        )
        assert result["step_id"] == "detected"
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})  # one click
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"]["port"] == talking.port
        await hass.async_block_till_done()
        # The same adapter again: nothing new is offered.
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": "usb"}, data=_usb(talking.port)
        )
        assert result["type"] is FlowResultType.ABORT
        assert await hass.config_entries.async_unload(
            hass.config_entries.async_entries(DOMAIN)[0].entry_id
        )
    finally:
        await talking.stop()


async def test_reconfigure_keeps_entities_and_refuses_another_meter(hass: HomeAssistant) -> None:
    first = TcpServer(Meter("5", seed=45))
    await first.start()
    entry = await setup_meter(hass, first)
    entity_ids = sorted(
        e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    )
    await first.stop()
    moved = TcpServer(Meter("5", seed=45), interval=INTERVAL)  # the same meter, another bridge port
    other = TcpServer(Meter("5", seed=46), interval=INTERVAL)
    await moved.start()
    await other.start()
    try:
        result = await entry.start_reconfigure_flow(hass)
        assert result["step_id"] == "reconfigure"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": "127.0.0.1", "port": other.port}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "wrong_meter"
        assert entry.data["port"] == first.port
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": "localhost", "port": moved.port}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.data["host"] == "localhost"
        assert entry.data["port"] == moved.port
        assert entry.title == f"localhost:{moved.port}"
        after = sorted(
            e.entity_id
            for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        )
        assert after == entity_ids
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await moved.stop()
        await other.stop()


async def test_reconfigure_refuses_the_port_of_another_entry(
    hass: HomeAssistant, tcp: Servers
) -> None:
    """Swedish meters send no identifier: their port is all that tells two entries apart."""
    first = await tcp("5S", seed=48)
    second = await tcp("5S", seed=49)
    entries = [await setup_meter(hass, server) for server in (first, second)]
    assert [entry.unique_id for entry in entries] == [None, None]
    result = await entries[1].start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": first.port}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entries[1].data["port"] == second.port
    # Its own port again is no conflict.
    result = await entries[1].start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": second.port}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    for entry in entries:
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_yaml_auto_detects(hass: HomeAssistant, tcp: Servers) -> None:
    server = await tcp("5B", seed=47)
    assert await async_setup_component(
        hass,
        "sensor",
        {
            "sensor": [
                {
                    "platform": DOMAIN,
                    "host": "127.0.0.1",
                    "port": server.port,
                    "dsmr_version": "auto",
                }
            ]
        },
    )
    await hass.async_block_till_done()
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    assert entry.data["dsmr_version"] == "5B"
    assert entry.data["yaml"] is True
    assert await hass.config_entries.async_unload(entry.entry_id)
