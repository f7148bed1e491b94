"""The re-broadcast server through real TCP clients: asyncio streams, plain sockets, dsmr_parser.

Frames are the simulator's telegrams (DLMS frames for encrypted meters). Every client's bytes
are compared with what was published, byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import contextlib
import errno
import logging
import socket
import struct
import threading
import time
from typing import Any

from dsmr_parser.clients.protocol import create_tcp_dsmr_reader
import pytest
import pytest_socket

from custom_components.dsmr.p1.framing import Framer
from custom_components.dsmr.p1.rebroadcast import (
    DEFAULT_MAX_BUFFER,
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE,
    KEEPALIVE_INTERVAL,
    CannotListen,
    ListenFailure,
    RebroadcastServer,
    _listen_failure,
)
from dsmr_sim import Faults, Meter, TcpServer

from .helpers import wait_for
from .leaks import core_runs
from .simulator.helpers import ALL_VERSIONS, assert_matches, make_meter

type Factory = Callable[..., Awaitable[RebroadcastServer]]
LOOPBACK = "127.0.0.1"


@pytest.fixture
def stock_reader() -> Iterator[None]:
    """dsmr_parser's own reader runs in the test: its debug lines (every telegram, identifiers
    and all) are that program's, as when core `dsmr` runs."""
    with core_runs():
        yield


@pytest.fixture
async def rebroadcast() -> AsyncIterator[Factory]:
    """Factory for started servers on an ephemeral loopback port; all stopped at teardown."""
    servers: list[RebroadcastServer] = []

    async def factory(**kwargs: Any) -> RebroadcastServer:
        server = RebroadcastServer(LOOPBACK, 0, **kwargs)
        servers.append(server)
        await server.start()
        return server

    yield factory
    for server in servers:
        await server.stop()


@pytest.fixture
async def sockets() -> AsyncIterator[list[socket.socket]]:
    """Plain client sockets, closed at teardown."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def frames(version: str = "5", count: int = 3, **kwargs: Any) -> list[bytes]:
    """`count` consecutive telegrams of a simulated meter, as it puts them on the line."""
    meter = make_meter(version, **kwargs)
    out = []
    for _ in range(count):
        meter.step(1)
        out.append(meter.payload())
    return out


async def stream(server: RebroadcastServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An asyncio stream client, counted by the server before it returns."""
    before = server.stats.accepted + server.stats.refused
    connection = await asyncio.open_connection(LOOPBACK, server.port)
    await wait_for(lambda: server.stats.accepted + server.stats.refused > before)
    return connection


async def plain(
    server: RebroadcastServer, opened: list[socket.socket], rcvbuf: int | None = None
) -> socket.socket:
    """A non-blocking plain socket client (`rcvbuf` set before connecting), counted."""
    sock = socket.socket()
    opened.append(sock)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    before = server.stats.accepted + server.stats.refused
    await asyncio.get_running_loop().sock_connect(sock, (LOOPBACK, server.port))
    await wait_for(lambda: server.stats.accepted + server.stats.refused > before)
    return sock


async def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes from a plain socket (5 s at most)."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    async with asyncio.timeout(5):
        while len(data) < size:
            chunk = await loop.sock_recv(sock, size - len(data))
            if not chunk:
                raise EOFError(f"closed after {len(data)} of {size} bytes")
            data += chunk
    return bytes(data)


async def read_to_end(sock: socket.socket) -> bytes:
    """Read a plain socket until the server closes or resets it (5 s at most)."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(5):
            while chunk := await loop.sock_recv(sock, 65536):
                data += chunk
    return bytes(data)


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    async with asyncio.timeout(5):
        return await reader.readexactly(size)


async def nothing_arrives(reader: asyncio.StreamReader, seconds: float = 0.2) -> None:
    """Assert that no byte arrives for a while (a slow machine only makes this weaker)."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await reader.read(1)


async def test_every_client_gets_every_frame_byte_for_byte(
    rebroadcast: Factory, sockets: list[socket.socket]
) -> None:
    server = await rebroadcast()
    streams = [await stream(server) for _ in range(2)]
    sock = await plain(server, sockets)
    assert server.clients == 3
    sent = frames("5B", 5, mbus=("gas", "water"))
    for frame in sent:
        server.publish(frame)
    wire = b"".join(sent)
    for reader, _ in streams:
        assert await read_exactly(reader, len(wire)) == wire
    assert await recv_exactly(sock, len(wire)) == wire
    assert server.stats.frames == 5
    for _, writer in streams:
        writer.close()
        await writer.wait_closed()


async def test_a_stalled_client_is_dropped_and_stalls_nobody(
    rebroadcast: Factory, sockets: list[socket.socket]
) -> None:
    """A client with a tiny receive buffer never reads: its buffers fill while the others get
    each telegram before the next one is published; then it is dropped, its memory bounded."""
    server = await rebroadcast()
    stalled = await plain(server, sockets, rcvbuf=1024)
    reader, writer = await stream(server)
    healthy = await plain(server, sockets)
    stalled_transport = next(iter(server._serving.values()))  # the first to connect
    largest_backlog = 0
    sent: list[bytes] = []
    for frame in frames("5B", 300, mbus=("gas", "water", "heat")):
        server.publish(frame)
        sent.append(frame)
        largest_backlog = max(largest_backlog, stalled_transport.get_write_buffer_size())
        assert await read_exactly(reader, len(frame)) == frame
        assert await recv_exactly(healthy, len(frame)) == frame
        if server.stats.dropped:
            break
    assert server.stats.dropped == 1, "the stalled client was never dropped"
    assert stalled_transport.is_closing()
    assert 0 < largest_backlog <= DEFAULT_MAX_BUFFER
    assert len(sent) < 100  # socket buffers and the bound hold a few dozen telegrams at most
    await wait_for(lambda: server.clients == 2)
    # The stalled client got a prefix of the stream, then a reset.
    got = await read_to_end(stalled)
    assert got == b"".join(sent)[: len(got)]
    # The others go on.
    for frame in frames("5", 3, seed=9):
        server.publish(frame)
        assert await read_exactly(reader, len(frame)) == frame
        assert await recv_exactly(healthy, len(frame)) == frame
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("how", ["close", "shutdown"])
async def test_a_client_leaving_mid_telegram_costs_nothing(
    rebroadcast: Factory,
    sockets: list[socket.socket],
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    """The client has read part of a telegram. `close` with bytes unread makes the kernel send
    an RST (as when a reader is killed); `shutdown` sends a FIN and keeps the socket open."""
    server = await rebroadcast()
    leaving = await plain(server, sockets)
    reader, writer = await stream(server)
    sent = frames("5", 4)
    server.publish(sent[0])
    assert await recv_exactly(leaving, 100) == sent[0][:100]
    if how == "shutdown":
        leaving.shutdown(socket.SHUT_WR)
    else:
        leaving.close()
    for frame in sent[1:]:
        server.publish(frame)
    assert await read_exactly(reader, sum(map(len, sent))) == b"".join(sent)
    await wait_for(lambda: server.clients == 1)
    assert server.stats.dropped == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    writer.close()
    await writer.wait_closed()


async def test_what_clients_send_is_discarded(rebroadcast: Factory) -> None:
    server = await rebroadcast()
    talker_reader, talker = await stream(server)
    listener, writer = await stream(server)
    junk = b"/XXX5 fake\r\n\r\n1-0:1.8.1(999999.999*kWh)\r\n!0000\r\n" + bytes(range(256)) * 4096
    talker.write(junk)
    await talker.drain()
    sent = frames("5", 2)
    for frame in sent:
        server.publish(frame)
    wire = b"".join(sent)
    assert await read_exactly(listener, len(wire)) == wire
    assert await read_exactly(talker_reader, len(wire)) == wire
    await nothing_arrives(listener)
    assert server.clients == 2
    for w in (talker, writer):
        w.close()
        await w.wait_closed()


async def test_a_client_that_ends_its_side_is_disconnected(rebroadcast: Factory) -> None:
    server = await rebroadcast()
    reader, writer = await stream(server)
    writer.write_eof()
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    await wait_for(lambda: server.clients == 0)
    writer.close()


async def test_a_client_sending_as_fast_as_it_can_costs_the_server_little(
    rebroadcast: Factory, sockets: list[socket.socket]
) -> None:
    """A thread blasts bytes into one client's socket for 2 s while frames are published to
    another: the event loop's thread (the server's, and Home Assistant's) stays nearly idle,
    and the reading client gets every frame byte for byte."""
    server = await rebroadcast()
    reader, writer = await stream(server)
    blaster = await plain(server, sockets)
    blaster.settimeout(0.1)  # blocking, for the thread; the timeout lets it see `stop`
    sent = frames("5", 20)
    stop = threading.Event()
    blasted = 0

    def blast() -> None:
        nonlocal blasted
        chunk = bytes(range(256)) * 256
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                blasted += blaster.send(chunk)

    thread = threading.Thread(target=blast, name="blaster")
    cpu, wall = time.thread_time(), time.monotonic()  # this thread runs the event loop
    thread.start()
    try:
        for frame in sent:
            await asyncio.sleep(0.1)
            server.publish(frame)
            assert await read_exactly(reader, len(frame)) == frame
    finally:
        stop.set()
        thread.join()
    busy = (time.thread_time() - cpu) / (time.monotonic() - wall)
    assert busy < 0.1, f"the event loop's thread was busy {busy:.1%} of the time"
    assert blasted  # it did send
    assert server.clients == 2  # sending is no reason to be dropped
    assert server.stats.dropped == 0
    writer.close()
    await writer.wait_closed()


async def test_clients_are_probed_with_tcp_keepalive(
    rebroadcast: Factory, sockets: list[socket.socket]
) -> None:
    """A client that vanished without closing (power cut, cable pulled) is found out by the
    kernel even while the meter is silent, in about a minute."""
    server = await rebroadcast()
    await plain(server, sockets)
    sock = next(iter(server._serving.values())).get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    for name, value in [
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ]:
        if hasattr(socket, name):
            assert sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == value, name


@pytest.mark.parametrize("how", ["close", "reset", "talk_then_close"])
async def test_a_client_leaving_while_the_meter_is_silent_frees_its_slot(
    rebroadcast: Factory, sockets: list[socket.socket], how: str
) -> None:
    """Nothing is published, so no write can find out: the server still sees the FIN (`close`)
    or the RST (`reset`, SO_LINGER 0) of a client that goes, also one whose reading was paused
    for READ_INTERVAL after it sent something (`talk_then_close`)."""
    server = await rebroadcast()
    sock = await plain(server, sockets)
    if how == "talk_then_close":
        await asyncio.get_running_loop().sock_sendall(sock, b"junk" * 1000)
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    await wait_for(lambda: server.clients == 0)
    assert server.stats.dropped == 0


async def test_one_client_too_many_is_closed_at_once(
    rebroadcast: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom_components.dsmr.p1.rebroadcast")
    server = await rebroadcast(max_clients=2)
    counts: list[int] = []
    server.add_listener(lambda: counts.append(server.clients))
    first = await stream(server)
    second = await stream(server)
    refused = [await stream(server) for _ in range(2)]
    assert server.clients == 2
    assert server.stats.refused == 2
    server.publish(frames("5", 1)[0])
    for reader, writer in refused:
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed, no data
        writer.close()
    refusals = [r for r in caplog.records if r.message.startswith("Refused")]
    assert [r.levelno for r in refusals] == [logging.INFO, logging.DEBUG]
    # A slot frees when a client leaves; the next refusal is worth a log line again.
    first[1].close()
    await wait_for(lambda: server.clients == 1)
    third_reader, third = await stream(server)
    assert server.clients == 2
    sent = frames("5", 2, seed=2)
    for frame in sent:
        server.publish(frame)
    assert await read_exactly(third_reader, len(sent[0] + sent[1])) == sent[0] + sent[1]
    assert counts == [1, 2, 1, 2]
    again_reader, again = await stream(server)  # full again: logged again
    async with asyncio.timeout(5):
        assert await again_reader.read() == b""
    refusals = [r for r in caplog.records if r.message.startswith("Refused")]
    assert [r.levelno for r in refusals] == [logging.INFO, logging.DEBUG, logging.INFO]
    for writer in (second[1], third, again):
        writer.close()
    await wait_for(lambda: server.clients == 0)


async def test_a_client_joining_mid_telegram_gets_only_whole_telegrams(
    rebroadcast: Factory, dsmr_tcp_server: Callable[..., Awaitable[TcpServer]]
) -> None:
    """As wired: a meter drips telegrams into the reader's framer, which publishes each complete
    frame. A client that connects while a telegram is half-received gets that telegram whole
    once it is complete, and the following ones, never a tail."""
    server = await rebroadcast()
    meter = await dsmr_tcp_server("5", faults=Faults(drip=True, drip_size=64, drip_delay=0.02))
    framer = Framer()
    pending = framer.buffer  # the telegram on its way

    class Reader(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            for frame in framer.feed(data):
                server.publish(frame)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(Reader, LOOPBACK, meter.port)
    await meter.wait_for_clients(1)
    early_reader, early = await stream(server)
    sending = asyncio.create_task(meter.send_telegram())
    await wait_for(lambda: len(pending) > 100)
    joiner, writer = await stream(server)
    assert pending
    assert server.stats.frames == 0  # the joiner came in while the telegram was on its way
    first = await sending
    second = await meter.send_telegram()
    # Its stream starts where that telegram starts: nothing before it, no tail of anything.
    assert await read_exactly(joiner, len(first + second)) == first + second
    assert await read_exactly(early_reader, len(first + second)) == first + second
    await nothing_arrives(joiner, 0.05)
    transport.close()
    for w in (early, writer):
        w.close()
        await w.wait_closed()


async def test_nothing_is_served_while_the_meter_is_silent(rebroadcast: Factory) -> None:
    server = await rebroadcast()
    server.publish(b"/before anyone listens!0000\r\n")
    reader, writer = await stream(server)
    await nothing_arrives(reader)  # no replay of the last telegram, no greeting
    sent = frames("5", 1)[0]
    server.publish(sent)
    assert await read_exactly(reader, len(sent)) == sent
    await nothing_arrives(reader)  # no keep-alive
    server.publish(b"")
    await nothing_arrives(reader, 0.05)
    writer.close()
    await writer.wait_closed()


async def test_stop_with_clients_connected_releases_the_port(
    rebroadcast: Factory, sockets: list[socket.socket]
) -> None:
    server = await rebroadcast()
    port = server.port
    counts: list[int] = []
    remove = server.add_listener(lambda: counts.append(server.clients))
    reader, writer = await stream(server)
    stalled = await plain(server, sockets, rcvbuf=1024)
    stalled_transport = server._serving[next(reversed(server._serving))]
    published = 0
    for frame in frames("5", 100):  # until bytes wait in this process for the stalled client
        server.publish(frame)
        published += 1
        if stalled_transport.get_write_buffer_size():
            break
    assert stalled_transport.get_write_buffer_size()
    assert server.clients == 2
    await server.stop()
    assert server.clients == 0
    assert not server.listening
    assert counts[-1] == 0
    async with asyncio.timeout(5):
        await reader.read()  # the stream ends
    await server.stop()  # idempotent
    server.publish(b"/after!0000\r\n")  # nothing to write to, no error
    assert server.stats.frames == published
    assert server.stats.dropped == 0
    remove()
    remove()
    again = RebroadcastServer(LOOPBACK, port)
    await again.start()  # the port is free
    await again.start()  # idempotent
    assert again.address == f"{LOOPBACK}:{port}"
    await again.stop()
    stalled.close()
    writer.close()


async def test_start_failures_say_why(rebroadcast: Factory) -> None:
    server = await rebroadcast()
    with pytest.raises(CannotListen) as err:
        await RebroadcastServer(LOOPBACK, server.port).start()
    assert err.value.reason is ListenFailure.ADDRESS_IN_USE
    assert str(err.value).startswith(f"Cannot listen on {LOOPBACK}:{server.port}: ")
    with pytest.raises(CannotListen) as err:
        await RebroadcastServer("192.0.2.1", 0).start()  # TEST-NET-1: not this machine's
    assert err.value.reason is ListenFailure.ADDRESS_NOT_AVAILABLE
    assert str(err.value).startswith("Cannot listen on 192.0.2.1:0: ")


def test_listen_failure_reasons() -> None:
    assert _listen_failure(socket.gaierror(-2, "Name or service not known")) == "invalid_address"
    assert _listen_failure(OSError(errno.EACCES, "Permission denied")) == "permission_denied"
    assert _listen_failure(OSError(errno.EADDRINUSE, "in use")) == "address_in_use"
    assert _listen_failure(OSError(errno.EMFILE, "Too many open files")) == "cannot_listen"
    with pytest.raises(ValueError, match="max_clients"):
        RebroadcastServer(max_clients=0)
    with pytest.raises(ValueError, match="max_buffer"):
        RebroadcastServer(max_buffer=0)


async def test_client_count_listeners(
    rebroadcast: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await rebroadcast()
    seen: list[int] = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    server.add_listener(broken)
    remove = server.add_listener(lambda: seen.append(server.clients))
    _, first = await stream(server)
    _, second = await stream(server)
    first.close()
    await wait_for(lambda: server.clients == 1)
    remove()
    second.close()
    await wait_for(lambda: server.clients == 0)
    assert seen == [1, 2, 1]
    assert "Error in a re-broadcast client count listener" in caplog.text


async def test_ipv6_loopback(sockets: list[socket.socket]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = RebroadcastServer("::1", 0)
    try:
        await server.start()
    except CannotListen:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        assert server.address == f"[::1]:{server.port}"
        pytest_socket.socket_allow_hosts(["127.0.0.1", "::1"])
        reader, writer = await asyncio.open_connection("::1", server.port)
        await wait_for(lambda: server.clients == 1)
        sent = frames("5", 1)[0]
        server.publish(sent)
        assert await read_exactly(reader, len(sent)) == sent
        writer.close()
    finally:
        await server.stop()


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.usefixtures("stock_reader")
async def test_dsmr_parser_reads_the_rebroadcast(rebroadcast: Factory, version: str) -> None:
    """dsmr_parser's own TCP reader (PyPI, serialx underneath) reads every version from us;
    an encrypted meter's DLMS frames, served as received, decrypt and authenticate with the
    meter's keys. The values are the ones the simulator put in."""
    server = await rebroadcast()
    meter = make_meter(version, mbus=None)
    parsed: asyncio.Queue[Any] = asyncio.Queue()
    transport, protocol = await create_tcp_dsmr_reader(
        LOOPBACK,
        server.port,
        version,
        parsed.put_nowait,
        encryption_key=meter.key_hex,
        authentication_key=meter.auth_key_hex,
    )
    raw, writer = await stream(server)
    await wait_for(lambda: server.clients == 2)
    try:
        for _ in range(3):
            meter.step(1)
            rendered = meter.render()
            frame = meter.wrap(rendered.text)
            server.publish(frame)
            async with asyncio.timeout(5):
                telegram = await parsed.get()
            assert_matches(telegram, rendered, meter)
            assert await read_exactly(raw, len(frame)) == frame
    finally:
        transport.close()
        await protocol.wait_closed()
        writer.close()


@pytest.mark.usefixtures("stock_reader")
async def test_dsmr_parser_reads_a_decrypted_smarty_as_5l(rebroadcast: Factory) -> None:
    """With the decrypted opt-in, a Luxembourg Smarty's plain telegram (its own CRC inside) is
    read by any tool set to the unencrypted Smarty version, 5L, without a key."""
    server = await rebroadcast()
    meter = make_meter("MSn")
    parsed: asyncio.Queue[Any] = asyncio.Queue()
    transport, protocol = await create_tcp_dsmr_reader(
        LOOPBACK, server.port, "5L", parsed.put_nowait
    )
    await wait_for(lambda: server.clients == 1)
    try:
        meter.step(1)
        rendered = meter.render()
        server.publish(rendered.text.encode("ascii"))
        async with asyncio.timeout(5):
            telegram = await parsed.get()
        assert_matches(telegram, rendered, Meter("5L"))  # the names 5L's specification knows
    finally:
        transport.close()
        await protocol.wait_closed()
