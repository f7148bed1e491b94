"""The config flow against the simulator: real sockets and ttys, real telegrams, no mocks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
import logging
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import pytest_socket

from custom_components.dsmr.const import DOMAIN, version_option
from dsmr_sim.faults import Faults
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .conftest import MISSING_PORT
from .helpers import free_port, send, wait_for

KEY = "00112233445566778899AABBCCDDEEFF"
WRONG_KEY = "FFEEDDCCBBAA99887766554433221100"
TIMEOUT = "custom_components.dsmr.detect.VALIDATION_TIMEOUT"

type Tcp = Callable[..., Awaitable[TcpServer]]
type Pty = Callable[[str], Awaitable[PtyServer]]


@pytest.fixture
def tcp(servers: list[BaseServer]) -> Tcp:
    """Start a simulated ser2net bridge (manual mode) in front of a meter."""

    async def make(
        version: str = "5", host: str = "127.0.0.1", faults: Faults | None = None, **kwargs: Any
    ) -> TcpServer:
        server = TcpServer(Meter(version, seed=1, **kwargs), host=host, faults=faults)
        servers.append(server)
        await server.start()
        return server

    return make


@pytest.fixture
def pty(servers: list[BaseServer], tmp_path: Path) -> Pty:
    """Start a simulated P1 cable: a real pty behind a by-id style symlink."""

    async def make(version: str) -> PtyServer:
        server = PtyServer(Meter(version, seed=1), link=tmp_path / "ttyP1")
        servers.append(server)
        await server.start()
        return server

    return make


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Error paths end in a form error, never in an ERROR record or a traceback."""
    caplog.set_level(logging.DEBUG)
    yield
    bad = [
        (r.name, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]
    assert bad == []


async def start(hass: HomeAssistant, step: str) -> str:
    """Open the menu and pick `step`; return the flow id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    assert result["errors"] == {}
    return result["flow_id"]


def network_input(server: TcpServer, version: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "dsmr_version": version_option(version or server.meter.version),  # the selector's option
        **extra,
    }


def defaults(result: FlowResult) -> dict[str, Any]:
    """The values a form shows pre-filled."""
    return {
        str(key): key.default()
        for key in result["data_schema"].schema
        if callable(getattr(key, "default", None))
    }


async def with_one_telegram(server: TcpServer, configure: Awaitable[FlowResult]) -> FlowResult:
    """Run a flow step that validates: once it has connected, the meter sends one telegram."""
    task = asyncio.ensure_future(configure)
    await server.wait_for_clients(1)
    await server.send_telegram()
    return await task


async def with_telegrams(server: BaseServer, configure: Awaitable[FlowResult]) -> FlowResult:
    """Run a flow step that validates, the meter sending a telegram every 50 ms meanwhile."""
    task = asyncio.ensure_future(configure)
    while not task.done():
        await server.send_telegram()
        await asyncio.wait({task}, timeout=0.05)
    return await task


def decoded(identifier: str) -> str:
    """Equipment identifiers are sent as the hex of their ASCII text (Q3D: as text)."""
    try:
        return bytes.fromhex(identifier).decode("ascii")
    except ValueError:
        return identifier


def nowhere() -> str:
    """A port for entries that get loaded but have no meter: refused at once.

    (Not a missing device path: unloading while serialx opens one in an executor can log an
    exception from its shielded open.)
    """
    return f"socket://127.0.0.1:{free_port()}"


# --- the menu and the happy paths ---------------------------------------------------------


async def test_menu(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "user"
    assert result["menu_options"] == ["serial", "network"]


@pytest.mark.parametrize(
    ("step", "fields"),
    [
        ("serial", {"port": "/dev/ttyUSB0", "dsmr_version": "auto", "rfxtrx": False}),
        ("network", {"host": "", "port": 23, "dsmr_version": "auto", "rfxtrx": False}),
    ],
)
async def test_forms(hass: HomeAssistant, step: str, fields: dict[str, Any]) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    assert result["step_id"] == step
    assert defaults(result) == fields
    assert list(defaults(result)) == list(fields)  # in this order on the form


@pytest.mark.parametrize(
    ("version", "id_name", "gas_name"),
    [
        ("5", "EQUIPMENT_IDENTIFIER", None),
        ("2.2", "EQUIPMENT_IDENTIFIER", "EQUIPMENT_IDENTIFIER_GAS"),
        ("4", "EQUIPMENT_IDENTIFIER", "EQUIPMENT_IDENTIFIER_GAS@1"),
        ("5B", "BELGIUM_EQUIPMENT_IDENTIFIER", None),
        ("5L", "LUXEMBOURG_EQUIPMENT_IDENTIFIER", None),
        ("Q3D", "Q3D_EQUIPMENT_IDENTIFIER", None),
        ("ISKRA_IE", "EQUIPMENT_IDENTIFIER_GAS", None),  # Iskra's own id is on 0-0:96.1.0
    ],
)
async def test_network(
    hass: HomeAssistant, tcp: Tcp, version: str, id_name: str, gas_name: str | None
) -> None:
    server = await tcp(version)
    flow_id = await start(hass, "network")
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"127.0.0.1:{server.port}"
    assert server.last_rendered is not None
    values = server.last_rendered.values
    serial_id = values[id_name]
    assert decoded(serial_id) == server.meter.equipment_id
    assert result["data"] == {
        "host": "127.0.0.1",
        "port": server.port,
        "dsmr_version": version,
        "protocol": "dsmr_protocol",
        "serial_id": serial_id,
        "serial_id_gas": values[gas_name] if gas_name else None,
    }
    assert type(result["data"]["port"]) is int
    if gas_name:
        assert decoded(result["data"]["serial_id_gas"]).startswith("G")
    entry = result["result"]
    assert entry.unique_id == serial_id
    assert entry.options == {}
    # The new entry is set up and reads the same bridge.
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server)
    assert entry.runtime_data.coordinator.counters.telegrams == 1


async def test_network_without_equipment_id(hass: HomeAssistant, tcp: Tcp) -> None:
    """Swedish meters send no equipment identifier: an entry without a unique id."""
    server = await tcp("5S")
    flow_id = await start(hass, "network")
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["serial_id"] is None
    assert result["data"]["serial_id_gas"] is None
    assert result["result"].unique_id is None


async def test_validation_returns_at_the_first_telegram(hass: HomeAssistant, tcp: Tcp) -> None:
    server = await tcp("5")
    flow_id = await start(hass, "network")
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
    )
    elapsed = loop.time() - started
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert server.telegrams_sent == 1
    assert elapsed < 5  # not the 30 s validation timeout


@pytest.mark.parametrize("version", ["5", "5B", "5S", "ISKRA_IE"])  # 8N1 versions
async def test_serial(hass: HomeAssistant, pty: Pty, version: str) -> None:
    server = await pty(version)
    flow_id = await start(hass, "serial")
    result = await with_telegrams(
        server,
        hass.config_entries.flow.async_configure(
            flow_id, {"port": f" {server.port} ", "dsmr_version": version_option(version)}
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == server.port
    entry = result["result"]
    serial_id = entry.data["serial_id"]
    if version == "5S":
        assert serial_id is None
    else:
        assert decoded(serial_id) == server.meter.equipment_id
    assert result["data"] == {
        "port": server.port,  # stripped
        "dsmr_version": version,
        "protocol": "dsmr_protocol",
        "serial_id": serial_id,
        "serial_id_gas": None,
    }
    assert entry.unique_id == serial_id


async def test_serial_step_takes_a_url(hass: HomeAssistant, tcp: Tcp) -> None:
    """The serial port field takes serialx URLs too, as core's current flow stores them."""
    server = await tcp("5")
    flow_id = await start(hass, "serial")
    result = await with_one_telegram(
        server,
        hass.config_entries.flow.async_configure(
            flow_id, {"port": server.url, "dsmr_version": "5"}
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == server.url
    assert result["data"]["port"] == server.url
    assert "host" not in result["data"]
    assert decoded(result["data"]["serial_id"]) == server.meter.equipment_id


# --- errors -------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_errors_logged")
async def test_serial_blank_port(hass: HomeAssistant) -> None:
    flow_id = await start(hass, "serial")
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"port": "   ", "dsmr_version": "5"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"port": "invalid_port"}


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize(
    "port",
    [
        MISSING_PORT,
        "esphome-hass://no-such-proxy/uart",  # ESPHome serial proxy, ESPHome not loaded
        "socket://127.0.0.1",  # no TCP port
        "rfc2217://127.0.0.1",  # no TCP port
        "esphome://",  # no host
    ],
)
async def test_serial_cannot_connect(hass: HomeAssistant, port: str) -> None:
    flow_id = await start(hass, "serial")
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"port": port, "dsmr_version": "4"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "serial"
    assert result["errors"] == {"base": "cannot_connect"}
    # The form keeps what was entered.
    assert defaults(result) == {"port": port, "dsmr_version": "4", "rfxtrx": False}


@pytest.mark.usefixtures("no_errors_logged")
async def test_network_cannot_connect(hass: HomeAssistant) -> None:
    flow_id = await start(hass, "network")
    port = free_port()
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"host": "127.0.0.1", "port": port, "dsmr_version": "5b"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "network"
    assert result["errors"] == {"base": "cannot_connect"}
    assert defaults(result) == {
        "host": "127.0.0.1",
        "port": port,
        "dsmr_version": "5b",  # the selector's option for 5B
        "rfxtrx": False,
    }


@pytest.mark.usefixtures("no_errors_logged")
async def test_cannot_communicate_then_retry(hass: HomeAssistant, tcp: Tcp) -> None:
    """A bridge that accepts but stays silent; the same form, retried, then succeeds."""
    server = await tcp("5")
    flow_id = await start(hass, "network")
    loop = asyncio.get_running_loop()
    with patch(TIMEOUT, 0.5):
        started = loop.time()
        result = await hass.config_entries.flow.async_configure(flow_id, network_input(server))
        assert 0.4 < loop.time() - started < 5
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "network"
    assert result["errors"] == {"base": "cannot_communicate"}
    await server.wait_for_clients(0)  # the validation closed its connection
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize(
    ("meter", "settings"),
    [
        (Meter("5"), {"rfxtrx": True}),  # no RFXtrx framing around the telegrams
        (Meter("MSn", key=KEY), {"dsmr_version": "5l"}),  # encrypted: DLMS frames, no telegrams
        (Meter("5"), {"faults": Faults(bad_crc=True)}),  # every telegram fails its CRC
        (Meter("5"), {"faults": Faults(truncate=True)}),  # telegrams cut off
    ],
    ids=["rfxtrx", "encrypted", "bad_crc", "truncated"],
)
async def test_cannot_communicate_unusable_telegrams(
    hass: HomeAssistant, servers: list[BaseServer], meter: Meter, settings: dict[str, Any]
) -> None:
    """Bytes arrive, but not one telegram that parses with the chosen settings."""
    server = TcpServer(meter, faults=settings.pop("faults", None))
    servers.append(server)
    await server.start()
    flow_id = await start(hass, "network")
    with patch(TIMEOUT, 0.5):
        result = await with_telegrams(
            server,
            hass.config_entries.flow.async_configure(
                flow_id, network_input(server, version=meter.version) | settings
            ),
        )
    assert server.telegrams_sent >= 1
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_communicate"}
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.parametrize(
    ("typed", "host"),
    [
        ("http://127.0.0.1:23/", "127.0.0.1"),
        (" socket://127.0.0.1 ", "127.0.0.1"),
        ("127.0.0.1:2001", "127.0.0.1"),
        ("localhost/", "localhost"),
        ("::1", "[::1]"),  # IPv6 goes into the socket:// URL in brackets
        ("[::1]:23", "[::1]"),
        ("http://[0::1]:23/", "[::1]"),
    ],
)
async def test_host_is_cleaned(hass: HomeAssistant, tcp: Tcp, typed: str, host: str) -> None:
    pytest_socket.socket_allow_hosts(["127.0.0.1", "::1"])  # the test plugin allows IPv4 only
    server = await tcp("5", host=host.strip("[]"))
    flow_id = await start(hass, "network")
    result = await with_one_telegram(
        server,
        hass.config_entries.flow.async_configure(
            flow_id, {"host": typed, "port": server.port, "dsmr_version": "5"}
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["host"] == host
    assert result["title"] == f"{host}:{server.port}"


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize(
    "typed", ["", "   ", "http://", "my meter", "a;b", "p1ü.local", "[::1", "::g", "a:b:c"]
)
async def test_invalid_host(hass: HomeAssistant, typed: str) -> None:
    flow_id = await start(hass, "network")
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"host": typed, "port": 23, "dsmr_version": "5"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "network"
    assert result["errors"] == {"host": "invalid_host"}


@pytest.mark.parametrize("port", [0, 65536, "telnet"])
async def test_invalid_network_port(hass: HomeAssistant, port: Any) -> None:
    flow_id = await start(hass, "network")
    with pytest.raises(InvalidData):
        await hass.config_entries.flow.async_configure(
            flow_id, {"host": "127.0.0.1", "port": port, "dsmr_version": "5"}
        )


async def test_already_configured(hass: HomeAssistant, tcp: Tcp) -> None:
    server = await tcp("5")
    for expected in (FlowResultType.CREATE_ENTRY, FlowResultType.ABORT):
        flow_id = await start(hass, "network")
        result = await with_telegrams(
            server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
        )
        assert result["type"] is expected
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_already_configured_on_another_port(hass: HomeAssistant, tcp: Tcp) -> None:
    """The same meter (by equipment id), configured on a cable, is now found on a bridge.

    Its entry moves to the bridge (see test_hostile.py for both directions and detection).
    """
    server = await tcp("5")
    assert server.meter.render().values["EQUIPMENT_IDENTIFIER"]
    serial_id = server.meter.render().values["EQUIPMENT_IDENTIFIER"]
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=serial_id,
        data={"port": nowhere(), "dsmr_version": "5", "serial_id": serial_id},
    )
    entry.add_to_hass(hass)
    flow_id = await start(hass, "network")
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "moved"
    assert (entry.data["host"], entry.data["port"]) == ("127.0.0.1", server.port)
    await hass.async_block_till_done()


# --- encrypted meters ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["MSn", "SAGEMCOM_T210_D_R"])
async def test_encrypted(hass: HomeAssistant, tcp: Tcp, version: str) -> None:
    server = await tcp(version, key=KEY)
    flow_id = await start(hass, "network")
    result = await hass.config_entries.flow.async_configure(flow_id, network_input(server))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "encryption_key"
    assert server.client_count == 0  # nothing is opened before the key is known
    result = await with_one_telegram(
        server,
        hass.config_entries.flow.async_configure(
            flow_id, {"encryption_key": f" {server.meter.key_hex.lower()} "}
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    serial_id = result["data"]["serial_id"]
    if version == "SAGEMCOM_T210_D_R":
        assert serial_id is None
    else:
        assert decoded(serial_id) == server.meter.equipment_id
    assert result["data"] == {
        "host": "127.0.0.1",
        "port": server.port,
        "dsmr_version": version,
        "protocol": "dsmr_protocol",
        "encryption_key": KEY,  # stripped, upper case
        "serial_id": serial_id,
        "serial_id_gas": None,
    }
    assert result["result"].unique_id == serial_id


async def test_encrypted_with_authentication_key(hass: HomeAssistant, tcp: Tcp) -> None:
    server = await tcp("MSn", key=KEY)
    flow_id = await start(hass, "network")
    await hass.config_entries.flow.async_configure(flow_id, network_input(server))
    result = await with_one_telegram(
        server,
        hass.config_entries.flow.async_configure(
            flow_id,
            {"encryption_key": KEY, "authentication_key": server.meter.auth_key_hex.lower()},
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["encryption_key"] == KEY
    assert result["data"]["authentication_key"] == server.meter.auth_key_hex


@pytest.mark.usefixtures("no_errors_logged")
async def test_invalid_key_then_right_key(hass: HomeAssistant, tcp: Tcp) -> None:
    server = await tcp("MSn", key=KEY)
    flow_id = await start(hass, "network")
    await hass.config_entries.flow.async_configure(flow_id, network_input(server))
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, {"encryption_key": WRONG_KEY})
    )
    assert loop.time() - started < 5  # a wrong key shows at the first telegram
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "encryption_key"
    assert result["errors"] == {"base": "invalid_key"}
    assert hass.config_entries.async_entries(DOMAIN) == []
    await server.wait_for_clients(0)
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, {"encryption_key": KEY})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["encryption_key"] == KEY


@pytest.mark.usefixtures("no_errors_logged")
async def test_invalid_authentication_key(hass: HomeAssistant, tcp: Tcp) -> None:
    server = await tcp("MSn", key=KEY)
    flow_id = await start(hass, "network")
    await hass.config_entries.flow.async_configure(flow_id, network_input(server))
    with patch(TIMEOUT, 0.5):
        result = await with_one_telegram(
            server,
            hass.config_entries.flow.async_configure(
                flow_id, {"encryption_key": KEY, "authentication_key": WRONG_KEY}
            ),
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_key"}


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize(
    "user_input",
    [
        {"encryption_key": "0011"},
        {"encryption_key": KEY + "00"},
        {"encryption_key": "G" * 32},
        {"encryption_key": ""},
        {"encryption_key": KEY, "authentication_key": "xyz"},
    ],
)
async def test_invalid_key_format(
    hass: HomeAssistant, tcp: Tcp, user_input: dict[str, str]
) -> None:
    server = await tcp("MSn", key=KEY)
    flow_id = await start(hass, "network")
    await hass.config_entries.flow.async_configure(flow_id, network_input(server))
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "encryption_key"
    assert result["errors"] == {"base": "invalid_key_format"}
    assert server.client_count == 0


# --- options ------------------------------------------------------------------------------


async def test_options_flow(hass: HomeAssistant, tcp: Tcp) -> None:
    server = await tcp("5")
    flow_id = await start(hass, "network")
    result = await with_one_telegram(
        server, hass.config_entries.flow.async_configure(flow_id, network_input(server))
    )
    entry = result["result"]
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    assert coordinator.seconds == 30  # the default

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert defaults(result) == {"time_between_update": 30, "watchdog_timeout": 60}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"time_between_update": 5, "watchdog_timeout": 90}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {"time_between_update": 5, "watchdog_timeout": 90}
    assert entry.runtime_data.connection.watchdog_timeout == 90
    # Saved options reload the entry: a new coordinator with the new window.
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator is not coordinator
    assert entry.runtime_data.coordinator.seconds == 5

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert defaults(result) == {"time_between_update": 5, "watchdog_timeout": 90}
    hass.config_entries.options.async_abort(result["flow_id"])


@pytest.mark.usefixtures("servers")  # unloads the entry
@pytest.mark.parametrize("value", [-1, 3601])
async def test_options_out_of_range(hass: HomeAssistant, value: int) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"port": nowhere(), "dsmr_version": "5"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"], {"time_between_update": value}
        )
    assert entry.options == {}


@pytest.mark.usefixtures("servers")  # unloads the entry that saving the options loads
async def test_options_peak_threshold_for_meters_that_send_the_quarter_hour_demand(
    hass: HomeAssistant,
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={"port": nowhere(), "dsmr_version": "5B"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert defaults(result) == {
        "time_between_update": 30,
        "watchdog_timeout": 60,
        "peak_threshold": 2.5,
    }
    for wrong in (-0.1, 100.5, "high"):
        with pytest.raises(InvalidData):
            await hass.config_entries.options.async_configure(
                result["flow_id"], {"peak_threshold": wrong}
            )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"peak_threshold": 3.2}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "time_between_update": 30,
        "watchdog_timeout": 60,
        "peak_threshold": 3.2,
    }
    await hass.async_block_till_done()
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert defaults(result)["peak_threshold"] == 3.2
    hass.config_entries.options.async_abort(result["flow_id"])


@pytest.mark.usefixtures("servers")  # unloads the entry that saving the options loads
async def test_options_flow_keeps_other_options(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={"port": nowhere(), "dsmr_version": "5"},
        options={"time_between_update": 0, "watchdog_timeout": 120, "future_option": "x"},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert defaults(result) == {"time_between_update": 0, "watchdog_timeout": 120}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"time_between_update": 10}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "time_between_update": 10,
        "watchdog_timeout": 120,
        "future_option": "x",
    }
    await hass.async_block_till_done()
