"""Hostile input, item by item (issue 14), over real TCP sockets and pseudo-terminals.

Nothing typed or sent stops the meter, raises a traceback or leaks a key. Each section is one
item of the issue; each test was seen failing against the code before its fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging
from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr import detect
from custom_components.dsmr.connection import InvalidPort
from custom_components.dsmr.const import DOMAIN, version_option
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .conftest import opened_any
from .helpers import RawBridge, wait_for
from .leaks import meter_secrets

INTERVAL = 0.1  # seconds between the simulated meters' telegrams

type Tcp = Callable[..., Awaitable[TcpServer]]


@pytest.fixture
def tcp(servers: list[BaseServer]) -> Tcp:
    """A simulated ser2net bridge sending a telegram every INTERVAL seconds."""

    async def make(meter: Meter, **kwargs: Any) -> TcpServer:
        server = TcpServer(meter, interval=kwargs.pop("interval", INTERVAL), **kwargs)
        servers.append(server)
        await server.start()
        return server

    return make


@pytest.fixture
def baits(tmp_path: Path) -> list[str]:
    """Paths that are no serial port: files, a directory, character devices that are no tty.

    /dev/zero and /dev/full stand in for /dev/watchdog (a character device that must never be
    opened: opening it arms the hardware watchdog).
    """
    regular = tmp_path / "telegram.txt"
    regular.write_text("/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n!\r\n")
    to_file = tmp_path / "serial" / "by-id" / "usb-file-if00-port0"
    to_file.parent.mkdir(parents=True)
    to_file.symlink_to(regular)
    to_device = tmp_path / "ttyWATCHDOG"
    to_device.symlink_to("/dev/full")
    return [
        "/etc/passwd",
        str(regular),
        str(to_file),
        str(tmp_path),
        "/dev/zero",
        "/dev/full",
        str(to_device),
    ]


NOT_PORTS = [
    "foo://bar",
    "tcp://127.0.0.1:1",  # serialx knows it, but socket:// is the name for a meter's bridge
    "file:///etc/passwd",
    "linux:///dev/ttyS0",
    "ttyUSB0",
    "../../etc/passwd",
    "/dev/tty\tUSB0",
    "/dev/tty\x00USB0",
]


async def serial_step(hass: HomeAssistant, port: str, version: str) -> FlowResult:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "serial"}
    )
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": port, "dsmr_version": version_option(version)}
    )


# --- 1. one rule for ports ----------------------------------------------------------------


@pytest.mark.parametrize("version", ["auto", "5"])
async def test_flow_refuses_what_is_no_serial_port_without_opening_it(
    hass: HomeAssistant, baits: list[str], opened_files: set[str], version: str
) -> None:
    for port in [*baits, *NOT_PORTS]:
        result = await serial_step(hass, port, version)
        assert result["type"] is FlowResultType.FORM, port
        assert result["errors"] == {"port": "invalid_port"}, port
    assert opened_any(opened_files, baits) == []


async def test_reconfigure_refuses_what_is_no_serial_port(
    hass: HomeAssistant, baits: list[str], opened_files: set[str]
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, data={"port": "/dev/ttyUSB0", "dsmr_version": "5", "serial_id": None}
    )
    entry.add_to_hass(hass)
    for port in [*baits, *NOT_PORTS]:
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {"port": port})
        assert result["type"] is FlowResultType.FORM, port
        assert result["errors"] == {"port": "invalid_port"}, port
    assert entry.data["port"] == "/dev/ttyUSB0"
    assert opened_any(opened_files, baits) == []


async def test_detection_refuses_what_is_no_serial_port(
    baits: list[str], opened_files: set[str]
) -> None:
    for port in [*baits, *NOT_PORTS]:
        with pytest.raises(InvalidPort):
            await detect.async_detect(port, wait=0.1)
    assert opened_any(opened_files, baits) == []


async def test_reader_never_opens_a_file(
    hass: HomeAssistant, opened_files: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    """An entry holding a file (core accepted any text as a port) is never opened."""
    entry = MockConfigEntry(
        domain=DOMAIN, data={"port": "/etc/passwd", "dsmr_version": "5", "serial_id": None}
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    # Refused before anything is opened, at every attempt; no traceback.
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert opened_any(opened_files, ["/etc/passwd"]) == []
    assert entry.reason is not None
    assert "/etc/passwd" in entry.reason
    assert "not a serial device" in entry.reason
    (line,) = [r for r in caplog.records if entry.reason in r.getMessage()]
    assert line.exc_info is None


@pytest.mark.parametrize("port", ["/etc/passwd", "foo://bar"])
async def test_yaml_port_that_is_no_serial_port(
    hass: HomeAssistant, opened_files: set[str], caplog: pytest.LogCaptureFixture, port: str
) -> None:
    caplog.set_level(logging.INFO)
    config = {"sensor": [{"platform": DOMAIN, "port": port, "dsmr_version": "auto"}]}
    assert await async_setup_component(hass, "sensor", config)
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == []
    ours = [r for r in caplog.records if r.name.startswith("custom_components.dsmr")]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert ours[0].levelno == logging.ERROR
    assert port in ours[0].getMessage()
    assert "not a serial" in ours[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert opened_any(opened_files, ["/etc/passwd"]) == []


async def test_a_pty_behind_a_link_is_a_serial_port(
    hass: HomeAssistant, servers: list[BaseServer], tmp_path: Path
) -> None:
    """The rule takes what a meter is on: a tty, here a pseudo-terminal behind a by-id link."""
    server = PtyServer(
        Meter("5", seed=51), link=tmp_path / "by-id" / "usb-P1-if00", interval=INTERVAL
    )
    servers.append(server)
    await server.start()
    result = await serial_step(hass, server.port, "auto")
    assert result["step_id"] == "detected"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    await wait_for(lambda: entry.runtime_data.coordinator.counters.telegrams >= 1)


# --- 2. every flow step ends well ---------------------------------------------------------

KEY = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"


def hostile_frame(security_control: int = 0x00) -> bytes:
    """A general-global-cipher frame that frames well but that dlms_cosem cannot take."""
    body = bytes([security_control]) + bytes(range(40))
    return b"\xdb\x08SAGxxxxx\x82" + len(body).to_bytes(2, "big") + body


async def network_step(hass: HomeAssistant, port: int, version: str = "auto") -> FlowResult:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "network"}
    )
    return await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"host": "127.0.0.1", "port": port, "dsmr_version": version_option(version)},
    )


async def test_a_hostile_encrypted_frame_is_a_form_error(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A bridge sends a frame that looks encrypted but is neither encrypted nor authenticated."""
    bridge = await RawBridge().start()
    servers.append(bridge)

    async def keep_sending() -> None:
        while True:
            await bridge.send(hostile_frame())
            await asyncio.sleep(0.05)

    sender = asyncio.ensure_future(keep_sending())
    try:
        result = await network_step(hass, bridge.port)
        assert result["step_id"] == "encryption_key"
        # With an authentication key the frame is checked, which dlms_cosem cannot do for it.
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"encryption_key": KEY, "authentication_key": KEY}
        )
    finally:
        sender.cancel()
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "not_recognized"}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


async def test_yaml_auto_on_an_encrypted_meter(
    hass: HomeAssistant, tcp: Tcp, caplog: pytest.LogCaptureFixture
) -> None:
    """YAML has no key: one clear line, no `NotImplementedError` traceback at every start."""
    server = await tcp(Meter("MSn", seed=52, key=KEY))
    config = {
        "sensor": [
            {"platform": DOMAIN, "host": "127.0.0.1", "port": server.port, "dsmr_version": "auto"}
        ]
    }
    assert await async_setup_component(hass, "sensor", config)
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].name == "custom_components.dsmr"
    assert "encrypted" in errors[0].getMessage()
    assert errors[0].exc_info is None


async def test_an_unexpected_error_ends_the_flow_as_unknown(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The final catch-all: a bug (stood in for by a function that raises) aborts the flow.

    It is logged once, with its traceback, and the key it might quote is not.
    """
    from custom_components.dsmr import config_flow

    async def bug(data: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"a bug that quotes {data['encryption_key'].lower()}")

    monkeypatch.setattr(config_flow, "async_validated", bug)
    result = await network_step(hass, 23, "MSn")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"encryption_key": KEY.lower()}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unknown"
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" in record.getMessage()
    assert "a bug that quotes" in record.getMessage()
    assert KEY.lower() not in record.getMessage().lower()
    assert record.exc_info is None


# --- 3. secrets stay home -----------------------------------------------------------------

AUTH_KEY = "A0B1C2D3E4F5061728394A5B6C7D8E9F"
SECRET = "Pa55word0fTheBridge"


def shown_values(result: FlowResult) -> dict[str, Any]:
    """What a form sends to the browser pre-filled: defaults and suggested values."""
    shown: dict[str, Any] = {}
    for key in result["data_schema"].schema:
        if callable(getattr(key, "default", None)) and key.default() is not None:
            shown[str(key)] = key.default()
        if (suggested := (key.description or {}).get("suggested_value")) is not None:
            shown[str(key)] = suggested
    return shown


def is_password(result: FlowResult, field: str) -> bool:
    selector = dict(result["data_schema"].schema.items()).get(field)
    return getattr(selector, "config", {}).get("type") == "password"


async def test_key_fields_are_password_fields_never_filled_with_a_stored_key(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    result = await network_step(hass, 23, "MSn")
    assert result["step_id"] == "encryption_key"
    assert is_password(result, "encryption_key")
    assert is_password(result, "authentication_key")
    hass.config_entries.flow.async_abort(result["flow_id"])
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={
            "host": "127.0.0.1",
            "port": 23,
            "dsmr_version": "MSn",
            "encryption_key": KEY,
            "authentication_key": AUTH_KEY,
            "serial_id": None,
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    assert is_password(result, "encryption_key")
    assert is_password(result, "authentication_key")
    text = str(shown_values(result)).upper()
    assert KEY not in text
    assert AUTH_KEY not in text
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_reconfigure_keeps_the_stored_keys(hass: HomeAssistant, tcp: Tcp) -> None:
    """Empty key fields keep both stored keys (the authentication key was silently dropped)."""
    server = await tcp(Meter("MSn", seed=53, key=KEY, auth_key=AUTH_KEY))
    serial_id = (
        server.last_rendered.values["LUXEMBOURG_EQUIPMENT_IDENTIFIER"]
        if (server.last_rendered)
        else server.meter.render().values["LUXEMBOURG_EQUIPMENT_IDENTIFIER"]
    )
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=serial_id,
        data={
            "host": "127.0.0.1",
            "port": 1,
            "dsmr_version": "MSn",
            "protocol": "dsmr_protocol",
            "encryption_key": KEY,
            "authentication_key": AUTH_KEY,
            "serial_id": serial_id,
            "serial_id_gas": None,
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": server.port}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["port"] == server.port
    assert entry.data["encryption_key"] == KEY
    assert entry.data["authentication_key"] == AUTH_KEY
    await hass.async_block_till_done()


async def test_port_url_secrets_are_never_shown(
    hass: HomeAssistant,
    tcp: Tcp,
    hass_client: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port URL's password and key: not in a title, a form, a log, an issue or diagnostics."""
    from pytest_homeassistant_custom_component.components.diagnostics import (
        get_diagnostics_for_config_entry,
    )

    from custom_components.dsmr import connection

    monkeypatch.setattr(connection, "FIRST_RETRY_DELAY", 0.01)
    caplog.set_level(logging.DEBUG)
    server = await tcp(Meter("5", seed=54))
    url = f"socket://p1:{SECRET}@127.0.0.1:{server.port}/?key={SECRET}K"
    result = await serial_step(hass, url, "auto")
    assert result["step_id"] == "detected"
    shown = [str(result["description_placeholders"])]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    shown.append(entry.title)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.coordinator.counters.telegrams >= 1)
    await server.stop()  # the bridge goes away: reconnects, failures, a repair issue
    registry = ir.async_get(hass)
    await wait_for(lambda: registry.async_get_issue(DOMAIN, f"unreachable_{entry.entry_id}"))
    issue = registry.async_get_issue(DOMAIN, f"unreachable_{entry.entry_id}")
    shown.append(str(issue.translation_placeholders))
    shown.append(str(await get_diagnostics_for_config_entry(hass, hass_client, entry)))
    shown.extend(r.getMessage() for r in caplog.records)
    assert "127.0.0.1" in entry.title
    assert [text for text in shown if SECRET in text] == []


@pytest.mark.parametrize(
    ("version", "mbus"),
    [
        ("5", ("gas", "water")),
        ("5B", ("gas", "water")),
        ("5L", ("gas",)),
        ("4", ("gas",)),
        ("2.2", ("gas",)),
        ("Q3D", ()),
        ("5EONHU", ()),
        ("ISKRA_IE", ()),
        ("MSn", ("gas",)),
    ],
)
async def test_diagnostics_hold_no_identifier(
    hass: HomeAssistant, servers: list[Any], hass_client: Any, version: str, mbus: tuple[str, ...]
) -> None:
    """Not the meter's, not an M-Bus device's, in no form, wherever they are kept."""
    from pytest_homeassistant_custom_component.components.diagnostics import (
        get_diagnostics_for_config_entry,
    )

    from .helpers import send, setup_meter

    meter = Meter(version, seed=55, mbus=mbus, **({"key": KEY} if version == "MSn" else {}))
    server = TcpServer(meter)
    servers.append(server)
    await server.start()
    entry = await setup_meter(hass, server)
    await send(entry, server, 2)
    await hass.async_block_till_done()
    secrets = {s.upper() for s in meter_secrets(meter)} | ({KEY} if version == "MSn" else set())
    assert secrets
    text = str(await get_diagnostics_for_config_entry(hass, hass_client, entry)).upper()
    assert [secret for secret in secrets if secret in text] == []


# --- 4. the pipeline survives anything per telegram ---------------------------------------

POWER = "sensor.electricity_meter_power_consumption"


async def bridge_entry(
    hass: HomeAssistant, servers: list[Any], meter: Meter, **data: Any
) -> tuple[RawBridge, MockConfigEntry]:
    """A loaded entry reading a raw bridge that speaks for `meter`."""
    options = {"time_between_update": 0, **data.pop("options", {})}
    bridge = await RawBridge().start()
    servers.append(bridge)
    values = meter.render().values
    serial_id = values.get("EQUIPMENT_IDENTIFIER") or values.get("LUXEMBOURG_EQUIPMENT_IDENTIFIER")
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=serial_id,
        data={
            "host": "127.0.0.1",
            "port": bridge.port,
            "dsmr_version": meter.version,
            "protocol": "dsmr_protocol",
            "serial_id": serial_id,
            "serial_id_gas": None,
            **({"encryption_key": meter.key_hex} if meter.encrypted else {}),
            **data,
        },
        options=options,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    return bridge, entry


def with_line(meter: Meter, line: str) -> str:
    """The meter's next telegram with `line` in place of the line of the same OBIS code."""
    from dsmr_sim.crc import with_crc

    meter.step(1)
    text = meter.telegram()
    code = line.split("(", 1)[0]
    body = "\r\n".join(
        line if row.startswith(f"{code}(") else row for row in text[: text.rfind("!")].split("\r\n")
    )
    return with_crc(body + "!")


async def test_an_entity_that_fails_stops_nothing(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A register the meter sends as Infinity, and an entity that fails on every telegram.

    Infinity is no reading: the register keeps its value (before the snapshot, Home Assistant
    refused it for that entity). An entity that raises is counted and logged once; the other
    entities take the telegram and the next telegrams flow (on main before issue 14 it ended
    the coordinator: entities froze, the queue grew).
    """
    meter = Meter("5", seed=56)
    bridge, entry = await bridge_entry(hass, servers, meter)
    stats = entry.runtime_data.coordinator.counters
    energy = "sensor.electricity_meter_energy_consumption_tarif_1"
    await bridge.send(meter.telegram().encode())
    await wait_for(lambda: stats.telegrams >= 1)
    await hass.async_block_till_done()
    shown = hass.states.get(energy).state
    for _ in range(3):
        await bridge.send(with_line(meter, "1-0:1.8.1(Infinity*kWh)").encode())
    await wait_for(lambda: stats.telegrams == 4)
    await hass.async_block_till_done()
    assert hass.states.get(energy).state == shown  # unreadable: the register holds its value
    assert stats.update_errors == 0

    def fail() -> None:
        raise RuntimeError("an entity that cannot take a telegram")

    entity = hass.data["entity_components"]["sensor"].get_entity(energy)
    entity._update = fail
    for _ in range(20):
        meter.step(1)
        await bridge.send(meter.telegram().encode())
    await wait_for(lambda: stats.telegrams == 24)
    await hass.async_block_till_done()
    assert float(hass.states.get(POWER).state) == float(
        meter.render().values["CURRENT_ELECTRICITY_USAGE"]
    )
    assert stats.update_errors == 20  # counted; the other entities updated
    ours = [
        r
        for r in dsmr_records(caplog)
        if "entity" in r.getMessage() and r.levelno >= logging.WARNING
    ]
    assert len(ours) == 1
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("custom_comp"))


@pytest.mark.parametrize("kind", ["hostile_frame", "rfxtrx_scrap"])
async def test_the_reader_survives_what_the_parser_raises(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """dsmr_parser and its DLMS library raise more than a fixed list of exceptions.

    On main they escaped `data_received`: asyncio logged a traceback and closed the connection.
    """
    if kind == "hostile_frame":  # checked with an authentication key: dlms_cosem cannot
        meter = Meter("MSn", seed=57, key=KEY, auth_key=AUTH_KEY)
        bridge, entry = await bridge_entry(hass, servers, meter, authentication_key=AUTH_KEY)
        scrap, good = hostile_frame(), meter.payload
    else:  # an RFXtrx packet whose length byte says nothing follows
        meter = Meter("5", seed=57)
        bridge, entry = await bridge_entry(hass, servers, meter, protocol="rfxtrx_dsmr_protocol")
        scrap, good = b"\x00", lambda: rfxtrx(meter.payload())
    stats = entry.runtime_data.coordinator.counters
    for _ in range(3):
        await bridge.send(scrap)
        await asyncio.sleep(0.05)  # a chunk of its own
        meter.step(1)
        await bridge.send(good())
    await wait_for(lambda: stats.telegrams == 3)
    assert stats.connects == 1  # never dropped
    assert stats.parse_errors >= 1
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    warnings = [r.getMessage() for r in dsmr_records(caplog) if r.levelno == logging.WARNING]
    assert 1 <= len(warnings) == len(set(warnings)), warnings  # each once, not per telegram


def dsmr_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the integration and its libraries logged (not Home Assistant's own notes)."""
    names = ("custom_components.dsmr", "dsmr_parser", "serialx", "dlms_cosem")
    return [r for r in caplog.records if r.name.startswith(names)]


def rfxtrx(data: bytes) -> bytes:
    """P1 bytes in RFXtrx packets (length, type 0x62, subtype 0x01, sequence, data)."""
    return b"".join(
        bytes([len(chunk) + 3, 0x62, 0x01, 0]) + chunk
        for chunk in (data[i : i + 200] for i in range(0, len(data), 200))
    )


def encrypted(meter: Meter, security_control: int) -> bytes:
    """An encrypted frame like the meter's, with another security control byte."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    title, counter = b"SAG\x00\x00\x00\x00\x01", 1
    aad = bytes([security_control]) + bytes.fromhex(meter.auth_key_hex)
    sealed = AESGCM(bytes.fromhex(meter.key_hex)).encrypt(
        title + counter.to_bytes(4, "big"), meter.telegram().encode(), aad
    )
    content = bytes([security_control]) + counter.to_bytes(4, "big") + sealed[:-4]
    return b"\xdb\x08" + title + b"\x82" + len(content).to_bytes(2, "big") + content


async def test_parser_warnings_are_rate_limited(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A meter whose frames name an untested security suite: one warning, not one a second."""
    meter = Meter("MSn", seed=58, key=KEY)
    bridge, entry = await bridge_entry(hass, servers, meter)
    stats = entry.runtime_data.coordinator.counters
    for count in range(1, 6):
        meter.step(1)
        await bridge.send(encrypted(meter, 0x31))  # suite 1: dsmr_parser warns, decrypts
        await wait_for(lambda count=count: stats.telegrams == count)
    warnings = [r for r in dsmr_records(caplog) if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Untested security suite" in warnings[0].getMessage()


async def test_nothing_waits_between_protocol_and_coordinator(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """A burst of telegrams in one chunk: each is published as it is read, none is kept.

    (Before issue 16 a queue and a second task sat between them, bounded and counted.)
    """
    meter = Meter("5", seed=59)
    bridge, entry = await bridge_entry(hass, servers, meter)
    coordinator = entry.runtime_data.coordinator
    stats = entry.runtime_data.coordinator.counters
    published = coordinator.published
    burst = b""
    for _ in range(100):
        meter.step(1)
        burst += meter.telegram().encode()
    await bridge.send(burst)
    await wait_for(lambda: stats.telegrams == 100)
    assert coordinator.published == published + 100  # in the same turns of the loop
    assert coordinator.data is not None
    assert coordinator.data.timestamp == meter.render().values["P1_MESSAGE_TIMESTAMP"]


# --- 5. the encrypted meter's watchdog counts frames that decrypt ---------------------------


async def test_noise_does_not_keep_a_dead_encrypted_meter_connected(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """Line noise on an encrypted meter's line: the watchdog still sees the meter is silent."""
    meter = Meter("MSn", seed=60, key=KEY)
    bridge, entry = await bridge_entry(hass, servers, meter, options={"watchdog_timeout": 0.5})
    stats = entry.runtime_data.coordinator.counters
    meter.step(1)
    await bridge.send(meter.payload())
    await wait_for(lambda: stats.telegrams == 1)
    noise = bytes(range(1, 200)).replace(b"\xdb", b"")  # no frame can start in it
    loop = asyncio.get_running_loop()
    started = loop.time()
    while stats.watchdog_timeouts == 0 and loop.time() - started < 3:
        await bridge.send(noise)
        await asyncio.sleep(0.05)
    assert stats.watchdog_timeouts >= 1
    assert loop.time() - started < 1.5


# --- 6. duplicates ------------------------------------------------------------------------


async def test_a_meter_without_identifier_is_added_once(
    hass: HomeAssistant, tcp: Tcp, caplog: pytest.LogCaptureFixture
) -> None:
    """A Swedish meter sends no identifier: its bridge (in any spelling) is what it is."""
    server = await tcp(Meter("5S", seed=61))
    result = await network_step(hass, server.port, "5S")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    again = [
        await network_step(hass, server.port, "5S"),
        await network_step(hass, server.port, "auto"),
        await serial_step(hass, server.url, "5S"),
    ]
    assert [(r["type"], r.get("reason")) for r in again] == [
        (FlowResultType.ABORT, "already_configured")
    ] * 3
    config = {"sensor": [{"platform": DOMAIN, "port": server.url, "dsmr_version": "5S"}]}
    assert await async_setup_component(hass, "sensor", config)
    await hass.async_block_till_done()
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


@pytest.mark.parametrize("version", ["auto", "5"])
@pytest.mark.parametrize("to", ["serial", "network"])
async def test_a_known_meter_on_the_other_transport_moves_its_entry(
    hass: HomeAssistant, servers: list[Any], tmp_path: Path, to: str, version: str
) -> None:
    """The same meter found on a P1 cable that was on a bridge (or the reverse).

    On main only the port was updated: a network entry kept its host with a device path.
    """
    meter_tcp, meter_pty = Meter("5", seed=62), Meter("5", seed=62)  # one meter, two ways
    bridge = TcpServer(meter_tcp, interval=INTERVAL)
    cable = PtyServer(meter_pty, link=tmp_path / "ttyP1", interval=INTERVAL)
    for server in (bridge, cable):
        servers.append(server)
        await server.start()
    serial_id = meter_tcp.render().values["EQUIPMENT_IDENTIFIER"]
    on_bridge = {"host": "127.0.0.1", "port": bridge.port}
    on_cable = {"port": cable.port}
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=serial_id,
        title="127.0.0.1:1" if to == "serial" else "/dev/old",
        data={
            "dsmr_version": "5",
            "protocol": "dsmr_protocol",
            "serial_id": serial_id,
            "serial_id_gas": None,
            **({"host": "127.0.0.1", "port": 1} if to == "serial" else {"port": "/dev/old"}),
        },
    )
    entry.add_to_hass(hass)
    if to == "serial":
        result = await serial_step(hass, cable.port, version)
    else:
        result = await network_step(hass, bridge.port, version)
    if result["type"] is FlowResultType.FORM:
        assert result["step_id"] == "detected"
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "moved"
    expected = on_cable if to == "serial" else on_bridge
    assert {k: entry.data.get(k) for k in ("host", "port")} == {"host": None} | expected
    assert entry.title == (cable.port if to == "serial" else f"127.0.0.1:{bridge.port}")
    await hass.async_block_till_done()

    # The simulator's pty is made anew for each client: right after the flow closed it, its
    # link may not point anywhere yet, or the flow's connection may still hold its lock. Setup
    # is then retried; here at once. (Not with async_fire_time_changed: it would also fire
    # wait_for's own timeout.)
    for _ in range(100):
        if entry.state is ConfigEntryState.SETUP_RETRY:
            await hass.config_entries.async_reload(entry.entry_id)
        if entry.state is ConfigEntryState.LOADED:
            break
        await asyncio.sleep(0.02)
    await wait_for(
        lambda: (
            entry.state is ConfigEntryState.LOADED
            and entry.runtime_data.coordinator.counters.telegrams >= 1
        )
    )


# --- 7. YAML entries follow the YAML ------------------------------------------------------


async def test_a_yaml_entry_is_not_reconfigured_in_the_ui(hass: HomeAssistant) -> None:
    """The change would be undone at the next start: say where the meter is configured."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"port": "/dev/ttyUSB0", "dsmr_version": "5", "serial_id": None, "yaml": True},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "configured_in_yaml"


# --- 8. texts -----------------------------------------------------------------------------


async def test_a_silent_bridge_says_nothing_arrived(
    hass: HomeAssistant, servers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCP accepts, nothing comes: not 'no telegram with any line setting' (none apply)."""
    monkeypatch.setattr(detect, "DETECTION_WAIT", 0.3)
    bridge = await RawBridge().start()
    servers.append(bridge)
    result = await network_step(hass, bridge.port)
    assert result["errors"] == {"base": "no_data"}
    assert result["description_placeholders"] == {"seconds": "1"}  # 0.3 s, rounded up
    # Bytes that are no telegram: the network text, without line settings.
    sender = asyncio.ensure_future(keep_sending(bridge, bytes(range(32, 127)) * 50))
    try:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": "127.0.0.1", "port": bridge.port, "dsmr_version": "auto"}
        )
    finally:
        sender.cancel()
    assert result["errors"] == {"base": "not_recognized_network"}


async def keep_sending(bridge: RawBridge, data: bytes) -> None:
    while True:
        await bridge.send(data)
        await asyncio.sleep(0.05)


async def test_a_key_survives_a_failed_attempt(hass: HomeAssistant, tcp: Tcp) -> None:
    """After a wrong or malformed key the field keeps what was typed (32 characters)."""
    server = await tcp(Meter("MSn", seed=63, key=KEY))
    result = await network_step(hass, server.port)
    assert result["step_id"] == "encryption_key"
    flow_id = result["flow_id"]
    for typed, error in [
        ({"encryption_key": KEY[:-1]}, "invalid_key_format"),
        ({"encryption_key": AUTH_KEY}, "invalid_key"),
        ({"encryption_key": KEY, "authentication_key": "xyz"}, "invalid_key_format"),
    ]:
        result = await hass.config_entries.flow.async_configure(flow_id, typed)
        assert result["errors"] == {"base": error}
        assert shown_values(result) == typed
