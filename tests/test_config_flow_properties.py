"""Every flow step against thousands of hostile inputs: each ends as a form, an abort or an entry.

Hypothesis drives the user menu, the serial and network steps, the key step (after a real
detection and without one), reconfigure, the options flow and the YAML import with port
strings, hosts, TCP ports, keys and versions, EXAMPLES times each. Properties: no exception
escapes (Home Assistant's own schema check, InvalidData, is the form error for a value of the
wrong type), every error and abort reason is a translated one and never the catch-all
`unknown`, nothing is logged as an error by the flows, and no file or non-serial device is
opened.

Network attempts end at once: Home Assistant's test harness refuses DNS and connections
beyond 127.0.0.1 (both become CannotConnect), loopback ports are mostly closed, and the
listening times are cut to a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
import json
import logging
from pathlib import Path
import string
from typing import Any

from homeassistant.config_entries import SOURCE_IMPORT, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult, FlowResultType, InvalidData
from hypothesis import HealthCheck, given, settings, strategies as st
import probatio as vol
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr import detect
from custom_components.dsmr.const import DOMAIN, DSMR_VERSIONS, VERSION_BY_OPTION, version_option
from custom_components.dsmr.yaml_import import PLATFORM_SCHEMA, yaml_data
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .conftest import MISSING_PORT, opened_any

EXAMPLES = 2000
# Hosts beyond 127.0.0.1 are refused by pytest-socket, which also warns about each: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket")
RUN = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
KEY = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
TRANSLATIONS = json.loads(
    (Path(__file__).parents[1] / "custom_components/dsmr/translations/en.json").read_text()
)["config"]
ERRORS = set(TRANSLATIONS["error"])
ABORTS = set(TRANSLATIONS["abort"])

# --- strategies ---------------------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"
# The selector's options (what the form sends), the stored tokens (refused by the selector), noise.
VERSIONS = st.one_of(st.sampled_from([*VERSION_BY_OPTION, *DSMR_VERSIONS]), st.text(max_size=8))
TCP_PORTS = st.one_of(
    st.integers(1, 65535), st.integers(-5, 70_000), st.text(string.digits, max_size=6)
)
HOSTS = st.one_of(
    st.text(max_size=40),
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
    st.sampled_from(
        ["", " ", "localhost", "http://localhost:23/", "[::1]:23", "::1", "a:b:c", "[::1"]
    ),
)
KEYS = st.one_of(
    st.text(max_size=40),
    st.text(HEX, min_size=30, max_size=34),
    st.text(HEX, min_size=32, max_size=32),
    st.just(""),
)
URL_SCHEMES = ["socket", "rfc2217", "esphome", "esphome-hass", "tcp", "file", "foo", "SOCKET"]
URLS = st.builds(
    lambda scheme, user, host, port, rest: (
        f"{scheme}://{user}{host}{'' if port is None else f':{port}'}{rest}"
    ),
    st.sampled_from(URL_SCHEMES),
    st.sampled_from(["", "user:pass@", "@"]),
    HOSTS,
    st.none() | st.integers(-1, 70_000),
    st.sampled_from(["", "/", "/?key=abc", "/uart?port_name=P1&password=x", "#frag"])
    | st.text(max_size=20),
)


def ports(paths: list[str]) -> st.SearchStrategy[str]:
    """Port strings: anything, URLs of every kind, and paths to files, devices and a tty."""
    return st.one_of(
        st.text(max_size=60),
        URLS,
        st.sampled_from(paths),
        st.sampled_from(paths).map(lambda p: f" {p}\t"),
        st.builds(lambda a, b: f"/dev/{a}/{b}", st.text(max_size=10), st.text(max_size=10)),
    )


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def quick(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Listen for a millisecond instead of seconds (nothing here sends anything), and run
    the loop without asyncio's debug mode, whose stack capture for every future would make
    up half the time."""
    monkeypatch.setattr(detect, "DETECTION_WAIT", 0.001)
    monkeypatch.setattr(detect, "VALIDATION_TIMEOUT", 0.001)
    debug = hass.loop.get_debug()
    hass.loop.set_debug(False)
    yield
    hass.loop.set_debug(debug)


@pytest.fixture
async def paths(tmp_path: Path, servers: list[Any]) -> list[str]:
    """Baits (files, a directory, character devices that are no tty) and a real silent tty."""
    regular = tmp_path / "telegram.txt"
    regular.write_text("/ISK5\\2M550T-1012\r\n!\r\n")
    link = tmp_path / "ttyUSB7"
    link.symlink_to(regular)
    tty = PtyServer(Meter("5", seed=70), link=tmp_path / "ttyP1")  # manual mode: silent
    servers.append(tty)
    await tty.start()
    return [
        "/etc/passwd",
        str(regular),
        str(link),
        str(tmp_path),
        "/dev/zero",
        "/dev/full",
        MISSING_PORT,
        tty.port,
    ]


def baits(paths: list[str]) -> list[str]:
    return paths[:6]


@pytest.fixture
def outcomes(caplog: pytest.LogCaptureFixture) -> Callable[[FlowResult], None]:
    """Check one flow result: a form, an abort or an entry, with translated reasons."""
    caplog.set_level(logging.WARNING)

    def check(result: FlowResult) -> None:
        kind = result["type"]
        assert kind in (FlowResultType.FORM, FlowResultType.ABORT, FlowResultType.MENU), result
        if kind is FlowResultType.ABORT:
            assert result["reason"] in ABORTS, result["reason"]
            assert result["reason"] != "unknown"
        for error in (result.get("errors") or {}).values():
            assert error in ERRORS, error
        bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert bad == [], [r.getMessage()[:500] for r in bad]

    return check


async def outcome(hass: HomeAssistant, step: Coroutine[Any, Any, FlowResult]) -> FlowResult | None:
    """Run a step; None when Home Assistant's schema refused the input (a form error)."""
    try:
        result = await step
    except InvalidData:
        return None
    if result["type"] in (FlowResultType.FORM, FlowResultType.MENU):
        hass.config_entries.flow.async_abort(result["flow_id"])
    return result


async def menu(hass: HomeAssistant, step: str) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    return result["flow_id"]


# --- the properties -----------------------------------------------------------------------


@RUN
@given(choice=st.one_of(st.sampled_from(["serial", "network"]), st.text(max_size=10)))
async def test_user(
    hass: HomeAssistant, outcomes: Callable[[FlowResult], None], choice: str
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    outcomes(result)
    step = hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": choice})
    if (after := await outcome(hass, step)) is not None:
        outcomes(after)
    else:
        hass.config_entries.flow.async_abort(result["flow_id"])


@RUN
@given(data=st.data())
async def test_serial(
    hass: HomeAssistant,
    outcomes: Callable[[FlowResult], None],
    paths: list[str],
    opened_files: set[str],
    data: st.DataObject,
) -> None:
    flow_id = await menu(hass, "serial")
    user_input = {
        "port": data.draw(ports(paths)),
        "dsmr_version": data.draw(VERSIONS),
        "rfxtrx": data.draw(st.booleans()),
    }
    result = await outcome(hass, hass.config_entries.flow.async_configure(flow_id, user_input))
    if result is None:
        hass.config_entries.flow.async_abort(flow_id)
    else:
        outcomes(result)
    assert opened_any(opened_files, baits(paths)) == []


@RUN
@given(host=HOSTS, port=TCP_PORTS, version=VERSIONS)
async def test_network(
    hass: HomeAssistant,
    outcomes: Callable[[FlowResult], None],
    host: str,
    port: Any,
    version: str,
) -> None:
    flow_id = await menu(hass, "network")
    user_input = {"host": host, "port": port, "dsmr_version": version}
    result = await outcome(hass, hass.config_entries.flow.async_configure(flow_id, user_input))
    if result is None:
        hass.config_entries.flow.async_abort(flow_id)
    else:
        outcomes(result)


@pytest.fixture
async def key_steps(
    hass: HomeAssistant, servers: list[Any], monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Two flows at the key step: after detecting a real encrypted meter, and without."""
    meter = TcpServer(Meter("MSn", seed=71, key=KEY), interval=0.05)
    servers.append(meter)
    await meter.start()
    detected = await menu(hass, "network")
    with monkeypatch.context() as patch:
        patch.setattr(detect, "DETECTION_WAIT", 5)
        result = await hass.config_entries.flow.async_configure(
            detected, {"host": "127.0.0.1", "port": meter.port, "dsmr_version": "auto"}
        )
    assert result["step_id"] == "encryption_key"
    chosen = await menu(hass, "network")
    result = await hass.config_entries.flow.async_configure(
        chosen,
        {"host": "127.0.0.1", "port": 9, "dsmr_version": version_option("SAGEMCOM_T210_D_R")},
    )
    assert result["step_id"] == "encryption_key"
    return [detected, chosen]


@RUN
@given(which=st.integers(0, 1), key=KEYS, auth=st.none() | KEYS)
async def test_key(
    hass: HomeAssistant,
    outcomes: Callable[[FlowResult], None],
    key_steps: list[str],
    which: int,
    key: str,
    auth: str | None,
) -> None:
    user_input = {"encryption_key": key} | ({} if auth is None else {"authentication_key": auth})
    try:
        result = await hass.config_entries.flow.async_configure(key_steps[which], user_input)
    except InvalidData:
        return
    outcomes(result)
    assert result["step_id"] == "encryption_key"  # a random key is never the meter's
    assert result["errors"]["base"] in {
        "invalid_key_format",
        "invalid_key",
        "not_recognized",
        "cannot_connect",
    }


@pytest.fixture
def entries(hass: HomeAssistant, servers: list[Any]) -> list[MockConfigEntry]:
    """A serial encrypted meter, a network meter, a YAML meter (unloaded at the end)."""
    made = [
        MockConfigEntry(
            domain=DOMAIN,
            data={
                "port": "/dev/serial/by-id/usb-gone-if00",
                "dsmr_version": "MSn",
                "encryption_key": KEY,
                "authentication_key": KEY,
                "serial_id": "1234",
            },
            unique_id="1234",
        ),
        MockConfigEntry(
            domain=DOMAIN,
            data={"host": "127.0.0.1", "port": 9, "dsmr_version": "5", "serial_id": None},
        ),
        MockConfigEntry(
            domain=DOMAIN, data={"port": "/dev/ttyUSB9", "dsmr_version": "5", "yaml": True}
        ),
    ]
    for entry in made:
        entry.add_to_hass(hass)
    return made


@RUN
@given(data=st.data())
async def test_reconfigure(
    hass: HomeAssistant,
    outcomes: Callable[[FlowResult], None],
    entries: list[MockConfigEntry],
    paths: list[str],
    opened_files: set[str],
    data: st.DataObject,
) -> None:
    entry = data.draw(st.sampled_from(entries))
    result = await entry.start_reconfigure_flow(hass)
    outcomes(result)
    if result["type"] is FlowResultType.ABORT:
        return
    if "host" in entry.data:
        user_input = {"host": data.draw(HOSTS), "port": data.draw(TCP_PORTS)}
    else:
        user_input = {"port": data.draw(ports(paths))}
        for field in ("encryption_key", "authentication_key"):
            if (key := data.draw(st.none() | KEYS)) is not None:
                user_input[field] = key
    after = await outcome(
        hass, hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    )
    if after is None:
        hass.config_entries.flow.async_abort(result["flow_id"])
    else:
        outcomes(after)
    assert entry.data["port"] in ("/dev/serial/by-id/usb-gone-if00", 9, "/dev/ttyUSB9")
    assert opened_any(opened_files, baits(paths)) == []


@RUN
@given(
    update=st.one_of(st.integers(-10, 4000), st.text(max_size=5)),
    watchdog=st.one_of(st.integers(-10, 4000), st.text(max_size=5)),
)
async def test_options(
    hass: HomeAssistant,
    outcomes: Callable[[FlowResult], None],
    entries: list[MockConfigEntry],
    update: Any,
    watchdog: Any,
) -> None:
    entry = entries[1]
    result = await hass.config_entries.options.async_init(entry.entry_id)
    try:
        after = await hass.config_entries.options.async_configure(
            result["flow_id"], {"time_between_update": update, "watchdog_timeout": watchdog}
        )
    except InvalidData:
        hass.config_entries.options.async_abort(result["flow_id"])
        return
    assert after["type"] is FlowResultType.CREATE_ENTRY
    assert 0 <= entry.options["time_between_update"] <= 3600
    assert 5 <= entry.options["watchdog_timeout"] <= 3600


@RUN
@given(data=st.data())
async def test_yaml_import(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    paths: list[str],
    opened_files: set[str],
    data: st.DataObject,
) -> None:
    block: dict[str, Any] = {"platform": DOMAIN}
    if data.draw(st.booleans()):
        block["port"] = data.draw(st.one_of(ports(paths), TCP_PORTS))
    if data.draw(st.booleans()):
        block["host"] = data.draw(HOSTS)
    block["dsmr_version"] = data.draw(VERSIONS)
    if data.draw(st.booleans()):
        block["reconnect_interval"] = data.draw(st.integers(-5, 4000))
    try:
        valid = PLATFORM_SCHEMA(block)
    except vol.Invalid:
        return
    caplog.clear()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_IMPORT}, data=yaml_data(valid)
    )
    assert result["type"] is FlowResultType.ABORT, result
    assert result["reason"] in ABORTS - {"unknown"}, result["reason"]
    assert [r for r in caplog.records if r.exc_info] == []
    # At most one line, naming the port as it can be shown.
    assert len([r for r in caplog.records if r.name.startswith("custom_components")]) <= 1
    assert opened_any(opened_files, baits(paths)) == []
