"""Sharing the meter, wired into the integration: real meters (simulated) on real TCP, real
clients: asyncio streams, dsmr_parser's own reader, and our integration in a second Home
Assistant reading the first one's re-broadcast port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from dataclasses import dataclass
import logging
import socket
from typing import Any

from dsmr_parser.clients.protocol import create_tcp_dsmr_reader
from homeassistant import core as core_module, loader
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, async_get_hass
from homeassistant.helpers import issue_registry as ir, translation as translation_helper
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.dsmr import connection as connection_module, sharing as sharing_module
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.p1.rebroadcast import RebroadcastServer
from custom_components.dsmr.p1.telegram import gas_identifier, identifier
from dsmr_sim.faults import corrupt_crc
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import RawBridge, free_port, send, setup_meter, wait_for
from .leaks import core_runs
from .parity import OWN_TRANSLATIONS, entry_for, observe, run_core
from .simulator.helpers import make_meter, parse

LOOPBACK = "127.0.0.1"
CLIENTS = "sensor.electricity_meter_re_broadcast_clients"
POWER = "sensor.electricity_meter_power_consumption"


def sharing(port: int, **more: Any) -> dict[str, Any]:
    """Options: every telegram published, the meter shared on 127.0.0.1:`port`."""
    return {
        "time_between_update": 0,
        "rebroadcast": True,
        "rebroadcast_host": LOOPBACK,
        "rebroadcast_port": port,
    } | more


def bridge_data(port: int) -> dict[str, Any]:
    """Entry data of a DSMR 5 meter behind a network bridge on 127.0.0.1:`port`."""
    return {"host": LOOPBACK, "port": port, "dsmr_version": "5", "protocol": "dsmr_protocol"}


def server_of(entry: MockConfigEntry) -> RebroadcastServer:
    server = entry.runtime_data.rebroadcast
    assert server is not None
    return server


async def shared_meter(hass: HomeAssistant, meter: TcpServer, **more: Any) -> MockConfigEntry:
    """Entry A: the simulated meter, shared on a free port, listening."""
    entry = await setup_meter(hass, meter, sharing(free_port(), **more))
    await wait_for(lambda: server_of(entry).listening)
    return entry


@pytest.fixture
def stock_reader() -> Iterator[None]:
    """dsmr_parser's own reader runs in the test: its debug lines are that program's."""
    with core_runs():
        yield


@contextlib.asynccontextmanager
async def second_home_assistant() -> AsyncIterator[HomeAssistant]:
    """Another Home Assistant in the same process, with this integration (as another machine
    would run it): its own registries, its own entity ids."""
    ours = async_get_hass()
    async with async_test_home_assistant() as other:
        other.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # custom integrations on, as in `hass`
        # `usb` registers a serialx transport for the whole process: once, by `hass`. Our
        # dependency on it is USB discovery, which plays no part here.
        other.config.components.add("usb")
        translations = other.data[translation_helper.TRANSLATION_FLATTEN_CACHE]
        translations.cache_data = OWN_TRANSLATIONS({}, {})
        try:
            yield other
        finally:
            await other.async_stop(force=True)
            core_module._hass.hass = ours


class StreamClient:
    """A raw TCP client: what it receives, byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> StreamClient:
        return cls(*await asyncio.open_connection(LOOPBACK, port))

    async def read(self, size: int) -> bytes:
        async with asyncio.timeout(5):
            return await self.reader.readexactly(size)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# --- the same values --------------------------------------------------------------------


async def test_a_second_home_assistant_reads_the_same_values(hass: HomeAssistant) -> None:
    """Our integration in another Home Assistant, pointed at the re-broadcast port, shows
    every entity, state and device (the M-Bus gas and water meters included) as the first."""
    meter = TcpServer(Meter("5B", seed=21, mbus=("gas", "water")))
    await meter.start()
    entry = await shared_meter(hass, meter)
    served = server_of(entry)
    assert hass.states.get(CLIENTS).state == "0"
    async with second_home_assistant() as other:
        second = MockConfigEntry(
            domain=DOMAIN,
            data={**entry.data, "host": LOOPBACK, "port": served.port},
            unique_id=entry.unique_id,
            options={"time_between_update": 0},
        )
        second.add_to_hass(other)
        assert await other.config_entries.async_setup(second.entry_id)
        await wait_for(lambda: served.clients == 1)
        assert hass.states.get(CLIENTS).state == "1"
        frames = served.stats.frames
        await send(entry, meter, 5)
        await wait_for(lambda: second.runtime_data.coordinator.counters.telegrams == 5)
        await other.async_block_till_done()
        await hass.async_block_till_done()
        first, then = observe(hass, entry), observe(other, second)
        assert len(then.devices) == 3  # electricity, gas, water
        assert then.devices == first.devices
        mine = {k: v for k, v in first.entities.items() if k != CLIENTS}
        assert then.entities == mine
        assert float(then.entities[POWER].state or 0) == float(
            meter.last_rendered.values["CURRENT_ELECTRICITY_USAGE"]
        )
        assert served.stats.frames == frames + 5
        assert await other.config_entries.async_unload(second.entry_id)
        await wait_for(lambda: served.clients == 0)
        assert hass.states.get(CLIENTS).state == "0"
    await meter.stop()


@dataclass
class Readers:
    """dsmr_parser's own TCP reader (what it parsed) and a raw client, on one port."""

    parsed: asyncio.Queue[Any]
    transport: asyncio.BaseTransport
    raw: StreamClient

    async def telegram(self) -> Any:
        async with asyncio.timeout(5):
            return await self.parsed.get()


@contextlib.asynccontextmanager
async def readers(port: int, version: str, **keys: str) -> AsyncIterator[Readers]:
    parsed: asyncio.Queue[Any] = asyncio.Queue()
    transport, protocol = await create_tcp_dsmr_reader(
        LOOPBACK, port, version, parsed.put_nowait, **keys
    )
    raw = await StreamClient.connect(port)
    try:
        yield Readers(parsed, transport, raw)
    finally:
        transport.close()
        await protocol.wait_closed()
        await raw.close()


def power_of(meter: TcpServer) -> str:
    return str(meter.last_rendered.values["CURRENT_ELECTRICITY_USAGE"])


@pytest.mark.usefixtures("stock_reader")
async def test_line_faults_stay_on_our_side(hass: HomeAssistant, servers: list[Any]) -> None:
    """Bad CRC, noise, a torn telegram and a non-ASCII byte are counted here and not served:
    dsmr_parser's reader (core's dsmr, and most DSMR tools) gets only whole good telegrams and
    keeps its connection; a non-ASCII frame would have closed it. Each frame we count is served
    once, byte for byte."""
    bridge = await RawBridge().start()
    servers.append(bridge)
    meter = Meter("5", seed=22)
    port = free_port()
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=bridge_data(bridge.port),
        options=sharing(port),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(lambda: bridge.client_count == 1 and server_of(entry).listening)
    served = server_of(entry)
    stats = entry.runtime_data.coordinator.counters

    def good() -> bytes:
        meter.step(1)
        return meter.wrap(meter.render().text)

    async with readers(port, "5") as clients:
        await wait_for(lambda: served.clients == 2)
        for count, bad in enumerate(
            (
                meter.wrap(corrupt_crc(meter.render().text)),
                b"\x00\x13noise\xfe\xff",
                good()[:400],  # torn: the next telegram's '/' starts over
                good().replace(b"(", "(\xe9".encode("latin1"), 1),
            ),
            start=1,
        ):
            frame = good()
            await bridge.send(bad + frame)
            await wait_for(lambda count=count: served.stats.frames == stats.telegrams == count)
            assert await clients.raw.read(len(frame)) == frame
            await clients.telegram()
        assert stats.crc_errors == 1
        assert stats.parse_errors == 1  # the non-ASCII frame
        assert served.stats.frames == stats.telegrams == 4
        assert clients.parsed.empty()
        assert not clients.transport.is_closing()  # dsmr_parser's reader kept its connection
        assert served.clients == 2
    assert await hass.config_entries.async_unload(entry.entry_id)


# --- encrypted meters -------------------------------------------------------------------


@pytest.mark.usefixtures("stock_reader")
@pytest.mark.parametrize("version", ["MSn", "SAGEMCOM_T210_D_R"])
async def test_encrypted_frames_are_served_as_received(hass: HomeAssistant, version: str) -> None:
    """By default an encrypted meter's DLMS frames go out as they came: a reader with the key
    (dsmr_parser, as core's dsmr) decrypts and authenticates them."""
    meter = TcpServer(make_meter(version, seed=23))
    await meter.start()
    entry = await shared_meter(hass, meter)
    served = server_of(entry)
    keys = {
        "encryption_key": meter.meter.key_hex,
        "authentication_key": meter.meter.auth_key_hex,
    }
    async with readers(served.port, version, **keys) as clients:
        await wait_for(lambda: served.clients == 2)
        sent = await meter.send_telegram()
        assert await clients.raw.read(len(sent)) == sent
        telegram = await clients.telegram()
        assert str(telegram.CURRENT_ELECTRICITY_USAGE.value) == power_of(meter)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


@pytest.mark.usefixtures("stock_reader")
async def test_decrypted_opt_in_serves_the_plain_telegram(hass: HomeAssistant) -> None:
    """With the second opt-in, a Luxembourg Smarty's plain telegram is served (its own CRC
    inside): a reader without the key, set to 5L, reads it."""
    meter = TcpServer(make_meter("MSn", seed=24))
    await meter.start()
    entry = await shared_meter(hass, meter, rebroadcast_decrypted=True)
    served = server_of(entry)
    async with readers(served.port, "5L") as clients:
        await wait_for(lambda: served.clients == 2)
        await meter.send_telegram()
        plain = meter.last_rendered.text.encode("ascii")
        assert await clients.raw.read(len(plain)) == plain
        telegram = await clients.telegram()
        assert str(telegram.CURRENT_ELECTRICITY_USAGE.value) == power_of(meter)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


async def test_the_decrypted_opt_in_means_nothing_for_a_plain_meter(hass: HomeAssistant) -> None:
    meter = TcpServer(Meter("5", seed=25))
    await meter.start()
    entry = await shared_meter(hass, meter, rebroadcast_decrypted=True)
    raw = await StreamClient.connect(server_of(entry).port)
    await wait_for(lambda: server_of(entry).clients == 1)
    sent = await meter.send_telegram()
    assert await raw.read(len(sent)) == sent
    await raw.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


# --- lifetime -----------------------------------------------------------------------------


async def test_clients_outlive_the_meters_connection(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server lives with the entry: while the meter is away its clients stay connected and
    get nothing; they get the next telegram when it comes."""
    monkeypatch.setattr(connection_module, "FIRST_RETRY_DELAY", 0.05)
    meter = TcpServer(Meter("5", seed=26))
    await meter.start()
    entry = await shared_meter(hass, meter, watchdog_timeout=5)
    served = server_of(entry)
    raw = await StreamClient.connect(served.port)
    await wait_for(lambda: served.clients == 1)
    await meter.stop()
    await wait_for(lambda: not entry.runtime_data.connection.connected)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await raw.reader.read(1)  # silence: nothing is served while the meter is away
    await meter.start()
    await wait_for(lambda: entry.runtime_data.connection.connected, timeout=10)
    sent = await meter.send_telegram()
    assert await raw.read(len(sent)) == sent
    assert served.clients == 1
    assert served.stats.accepted == 1
    await raw.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


async def test_unload_with_clients_connected_releases_the_port(hass: HomeAssistant) -> None:
    meter = TcpServer(Meter("5", seed=27))
    await meter.start()
    entry = await shared_meter(hass, meter)
    port = server_of(entry).port
    clients = [await StreamClient.connect(port) for _ in range(3)]
    await wait_for(lambda: server_of(entry).clients == 3)
    assert await hass.config_entries.async_unload(entry.entry_id)
    for client in clients:
        async with asyncio.timeout(5):
            assert await client.reader.read() == b""  # closed by us
        await client.close()
    again = RebroadcastServer(LOOPBACK, port)  # the next setup binds it again at once
    await again.start()
    await again.stop()
    await meter.stop()


async def test_sharing_off_serves_nothing(hass: HomeAssistant) -> None:
    """Off by default: no server, no sensor, no sink on the protocol."""
    meter = TcpServer(Meter("5", seed=28))
    await meter.start()
    entry = await setup_meter(hass, meter)
    assert entry.runtime_data.rebroadcast is None
    assert entry.runtime_data.connection.sharing["frame_sink"] is None
    assert hass.states.get(CLIENTS) is None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


async def test_a_held_port_raises_an_issue_and_the_retry_opens_it(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The meter is read all the same; one warning and a repair issue; when the port comes
    free, the next attempt opens it and the issue goes."""
    monkeypatch.setattr(sharing_module, "FIRST_RETRY_DELAY", 0.05)
    monkeypatch.setattr(sharing_module, "MAX_RETRY_DELAY", 0.1)
    holder = socket.socket()
    holder.bind((LOOPBACK, 0))
    holder.listen()
    port = holder.getsockname()[1]
    meter = TcpServer(Meter("5", seed=29))
    await meter.start()
    issues = ir.async_get(hass)
    try:
        with caplog.at_level(logging.WARNING, "custom_components.dsmr"):
            entry = await setup_meter(hass, meter, sharing(port))
            assert entry.state is ConfigEntryState.LOADED
            issue_id = f"rebroadcast_cannot_listen_{entry.entry_id}"
            await wait_for(lambda: issues.async_get_issue(DOMAIN, issue_id) is not None)
            await asyncio.sleep(0.3)  # a few more attempts: still one warning
        assert float(hass.states.get(POWER).state) == float(
            meter.last_rendered.values["CURRENT_ELECTRICITY_USAGE"]
        )
        issue = issues.async_get_issue(DOMAIN, issue_id)
        assert issue is not None
        assert issue.translation_placeholders == {
            "title": entry.title,
            "address": f"{LOOPBACK}:{port}",
            "error": "Address already in use",
        }
        warnings = [r for r in caplog.records if "Cannot share the meter" in r.getMessage()]
        assert len(warnings) == 1
        assert not server_of(entry).listening
        holder.close()
        await wait_for(lambda: issues.async_get_issue(DOMAIN, issue_id) is None)
        assert server_of(entry).listening
    finally:
        holder.close()
    # Held again and turned off: the issue goes with the option.
    assert await hass.config_entries.async_unload(entry.entry_id)
    holder = socket.socket()
    holder.bind((LOOPBACK, port))
    holder.listen()
    try:
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for(lambda: issues.async_get_issue(DOMAIN, issue_id) is not None)
        hass.config_entries.async_update_entry(entry, options={"rebroadcast": False})
        assert await hass.config_entries.async_reload(entry.entry_id)
        assert issues.async_get_issue(DOMAIN, issue_id) is None
        assert entry.runtime_data.rebroadcast is None
    finally:
        holder.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


async def test_diagnostics_show_the_server_not_its_clients(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    meter = TcpServer(Meter("5", seed=30))
    await meter.start()
    entry = await shared_meter(hass, meter)
    served = server_of(entry)
    raw = await StreamClient.connect(served.port)
    await wait_for(lambda: served.clients == 1)
    frames = served.stats.frames
    await send(entry, meter)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["rebroadcast"] == {
        "address": f"{LOOPBACK}:{served.port}",
        "listening": True,
        "clients": 1,
        "frames": frames + 1,
        "accepted": 1,
        "refused": 0,
        "dropped": 0,
    }
    local_port = str(raw.writer.get_extra_info("sockname")[1])
    assert local_port not in str(diagnostics["rebroadcast"])
    await raw.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()


class SharedPort:
    """Entry A's re-broadcast port as `parity.run_core` drives a meter: its URL, its clients,
    and a telegram (sent to A behind a non-ASCII frame and noise, which A keeps to itself)."""

    def __init__(self, served: RebroadcastServer, bridge: RawBridge, meter: Meter) -> None:
        self.served, self.bridge, self.meter = served, bridge, meter
        self.url = f"socket://{LOOPBACK}:{served.port}"

    async def wait_for_clients(self, count: int = 1, timeout: float = 5.0) -> None:
        await wait_for(lambda: self.served.clients == count, timeout)

    async def send_telegram(self) -> bytes:
        self.meter.step(1)
        frame = self.meter.wrap(self.meter.render().text)
        hostile = frame.replace(b"(", "(\xe9".encode("latin1"), 1)
        await self.bridge.send(b"\xfe\xff" + hostile + frame)
        return frame


async def test_core_dsmr_reads_the_rebroadcast(hass: HomeAssistant, servers: list[Any]) -> None:
    """Home Assistant core's own `dsmr` (dsmr_parser's reader, which a non-ASCII byte
    disconnects) as the second Home Assistant: it shows the meter's values and never reconnects,
    though every telegram reached A behind a non-ASCII frame."""
    bridge = await RawBridge().start()
    servers.append(bridge)
    meter = Meter("5", seed=32)
    parsed = parse(meter, meter.render().text)
    ids = {
        "serial_id": identifier(parsed, "5"),
        "serial_id_gas": gas_identifier(parsed, "5"),
    }
    entry = MockConfigEntry(
        domain=DOMAIN, data=bridge_data(bridge.port) | ids, options=sharing(free_port())
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(lambda: bridge.client_count == 1 and server_of(entry).listening)
    served = server_of(entry)
    shared = SharedPort(served, bridge, meter)
    core = await run_core(
        shared,  # type: ignore[arg-type]
        entry_for(shared, "5", **ids),  # type: ignore[arg-type]
        before=lambda core, _: core.config.components.add("usb"),  # see second_home_assistant
        telegrams=3,
    )
    assert float(core.entities[POWER].state or "nan") == float(
        meter.render().values["CURRENT_ELECTRICITY_USAGE"]
    )
    assert served.stats.accepted == 1  # core connected once and stayed
    assert entry.runtime_data.coordinator.counters.parse_errors == 3  # the non-ASCII frames, ours
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_silent_meter_leaves_the_server_up_for_readers_that_reconnect(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The meter goes silent: a reader of the share (entry B, our integration, watchdog 1 s)
    hears nothing, closes and reconnects to A, whose server stayed up all along; when the meter
    talks again, B shows its telegram."""
    monkeypatch.setattr(connection_module, "FIRST_RETRY_DELAY", 0.05)
    meter = TcpServer(Meter("5", seed=33, mbus=()))
    await meter.start()
    entry = await shared_meter(hass, meter)
    served = server_of(entry)
    second = MockConfigEntry(
        domain=DOMAIN,
        data=bridge_data(served.port),
        options={"time_between_update": 0, "watchdog_timeout": 1},
    )
    second.add_to_hass(hass)
    assert await hass.config_entries.async_setup(second.entry_id)
    await wait_for(lambda: served.clients == 1)
    meter.faults.set("stall")
    await meter.send_telegram()  # nothing: the meter is silent
    await wait_for(lambda: served.stats.accepted == 2 and served.clients == 1, timeout=10)
    assert second.runtime_data.coordinator.counters.watchdog_timeouts >= 1
    assert entry.runtime_data.connection.connected  # A's own watchdog (60 s) is far off
    meter.faults.clear()
    await send(entry, meter)
    await wait_for(lambda: second.runtime_data.coordinator.counters.telegrams == 1)
    power = f"{POWER}_2"  # B's entity, next to A's
    await wait_for(lambda: hass.states.get(power).state == hass.states.get(POWER).state)
    assert await hass.config_entries.async_unload(second.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await meter.stop()
