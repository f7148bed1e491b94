"""The TCP server through real sockets, read by dsmr_parser's own reader (serialx underneath)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dsmr_sim.faults import Faults
from dsmr_sim.tcp import TcpServer

from .helpers import ALL_VERSIONS, PLAIN_VERSIONS, assert_matches, make_meter


async def silence(reader, seconds: float = 0.15) -> None:
    """Assert that no telegram arrives for a while."""
    with pytest.raises(TimeoutError):
        await reader.next(timeout=seconds)


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_every_version_over_tcp(version: str, dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server(make_meter(version, mbus=None))
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    for number in (1, 2):
        await server.send_telegram()
        telegram = await reader.next()
        assert server.telegrams_sent == number
        assert server.last_rendered is not None
        assert_matches(telegram, server.last_rendered, server.meter)


async def test_several_clients_get_every_telegram(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5B", mbus=("gas", "water"))
    readers = [await dsmr_reader(server) for _ in range(3)]
    await server.wait_for_clients(3)
    for _ in range(3):
        await server.send_telegram()
    for reader in readers:
        got = [await reader.next() for _ in range(3)]
        stamps = [t.P1_MESSAGE_TIMESTAMP.value for t in got]
        assert stamps == sorted(set(stamps))
        assert len(got[-1].MBUS_DEVICES) == 2


async def test_automatic_mode_sends_on_its_own(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5", interval=0.02, step_seconds=10)
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    start = server.meter.now
    first = await reader.next()
    second = await reader.next()
    assert second.P1_MESSAGE_TIMESTAMP.value > first.P1_MESSAGE_TIMESTAMP.value
    await server.wait_sent(server.telegrams_sent + 1)
    assert (server.meter.now - start).total_seconds() >= 30
    await server.stop()
    await server.stop()  # idempotent
    assert not server.running
    await reader.wait_closed()


async def test_restart_on_the_same_port(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5")
    port = server.port
    assert port > 0 and server.url == f"socket://127.0.0.1:{port}"
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.stop()
    await reader.wait_closed()
    await server.start()
    await server.start()  # idempotent
    assert server.port == port
    again = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.send_telegram()
    assert (await again.next()).P1_MESSAGE_HEADER.value == "50"


async def test_fixed_port_and_ipv4_any(dsmr_tcp_server) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = await dsmr_tcp_server("5", port=free)
    assert server.port == free and server.endpoint == server.url
    assert TcpServer(make_meter("5"), "::1", 2001).url == "socket://[::1]:2001"


async def test_bad_crc_is_skipped(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5")
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.send_telegram()
    good = server.meter.now
    server.faults.bad_crc = True
    await server.send_telegram()
    server.faults.bad_crc = False
    await server.send_telegram()
    first, second = await reader.next(), await reader.next()
    assert first.P1_MESSAGE_TIMESTAMP.value == good
    assert second.P1_MESSAGE_TIMESTAMP.value == server.meter.now
    assert server.telegrams_sent == 3


async def test_bad_crc_inside_encryption_is_skipped(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server(make_meter("MSn"), faults=Faults(bad_crc=True, every=2))
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    for _ in range(4):
        await server.send_telegram()
    await reader.next()
    await reader.next()
    await silence(reader)
    assert not reader.closed


async def test_truncated_telegram_is_dropped(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5B")
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    server.faults.truncate = True
    await server.send_telegram()
    assert b"!" not in server.last_payload
    server.faults.truncate = False
    await server.send_telegram()
    telegram = await reader.next()
    assert telegram.P1_MESSAGE_TIMESTAMP.value == server.meter.now
    await silence(reader)


async def test_garbage_between_telegrams(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("4", faults=Faults(garbage=True))
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    for _ in range(3):
        await server.send_telegram()
        assert not server.last_payload.startswith(b"/")
    assert len([await reader.next() for _ in range(3)]) == 3


async def test_stall_keeps_the_connection_but_sends_nothing(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5")
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    server.faults.set("stall")
    assert server.faults.active == ["stall"]
    assert await server.send_telegram() == b""
    await silence(reader)
    assert server.telegrams_sent == 0 and server.telegrams_generated == 1
    assert server.client_count == 1 and not reader.closed
    server.faults.clear()
    await server.send_telegram()
    assert (await reader.next()).P1_MESSAGE_TIMESTAMP.value == server.meter.now


@pytest.mark.parametrize("version", ["5", "SAGEMCOM_T210_D_R"])
async def test_drip_still_parses(version: str, dsmr_tcp_server, dsmr_reader) -> None:
    faults = Faults(drip=True, drip_size=16, drip_delay=0.0005)
    server = await dsmr_tcp_server(make_meter(version), faults=faults)
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.send_telegram()
    telegram = await reader.next()
    assert telegram.P1_MESSAGE_TIMESTAMP.value == server.meter.now


async def test_duplicated_telegram(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5L", faults=Faults(duplicate=True))
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.send_telegram()
    first, second = await reader.next(), await reader.next()
    assert first.P1_MESSAGE_TIMESTAMP.value == second.P1_MESSAGE_TIMESTAMP.value


async def test_drop_clients(dsmr_tcp_server, dsmr_reader) -> None:
    server = await dsmr_tcp_server("5")
    readers = [await dsmr_reader(server) for _ in range(2)]
    await server.wait_for_clients(2)
    assert await server.drop_clients() == 2
    for reader in readers:
        await reader.wait_closed()
    await server.wait_for_clients(0)
    again = await dsmr_reader(server)  # still listening
    await server.wait_for_clients(1)
    await server.send_telegram()
    await again.next()


async def test_drop_every_n_telegrams(dsmr_tcp_server, dsmr_reader) -> None:
    faults = Faults()
    faults.set("drop")
    assert faults.drop_every == 5 and faults.active == ["drop"]
    faults.drop_every = 2
    server = await dsmr_tcp_server("5", faults=faults)
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.send_telegram()
    assert not reader.closed
    await server.send_telegram()
    await reader.wait_closed()
    assert len(reader.telegrams) + len(reader.drain()) >= 1


async def test_reader_that_does_not_read_loses_telegrams(dsmr_tcp_server) -> None:
    server = await dsmr_tcp_server("5", mbus=("gas", "water", "heat", "cooling"))
    server.max_buffer = 0
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await server.wait_for_clients(1)
        transport = next(iter(server._clients))
        transport.pause_reading()
        for _ in range(400):  # far more than the socket buffers hold: no error, bounded queue
            await server.send_telegram()
        assert transport.get_write_buffer_size() < 8 * len(server.last_payload)
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("version", PLAIN_VERSIONS[:1])
async def test_async_context_manager(version: str, socket_enabled) -> None:
    async with TcpServer(make_meter(version)) as server:
        assert server.running and server.port
    assert not server.running
    with pytest.raises(ValueError, match="interval"):
        TcpServer(make_meter(version), interval=0)


async def test_truncated_encrypted_frame_closes_the_reader(dsmr_tcp_server, dsmr_reader) -> None:
    """dsmr_parser waits for the frame's declared length, swallows the next frame's start and
    then fails to decrypt, which it treats as a wrong key: it closes the connection."""
    server = await dsmr_tcp_server(make_meter("MSn"), faults=Faults(truncate=True))
    reader = await dsmr_reader(server)
    await server.wait_for_clients(1)
    await server.send_telegram()
    server.faults.truncate = False
    await server.send_telegram()
    await reader.wait_closed()
    assert reader.protocol.decryption_error is not None
