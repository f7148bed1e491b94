"""The reader at a meter's real line speed: a telegram arrives a few dozen bytes at a time.

A USB serial adapter hands a DSMR 5 telegram (about 900 bytes, 80 ms at 115200 baud) over in
chunks of 62 bytes; a serial-to-network bridge forwards similar pieces. The reader waits for the
rest of a telegram instead of waking for every chunk. These tests drip telegrams at the line's
byte rate through a real pty and a real TCP socket and count what the protocol is handed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dsmr_parser.clients.protocol import _create_dsmr_protocol
from dsmr_parser.objects import Telegram
from homeassistant.core import HomeAssistant
import pytest

from custom_components.dsmr.reader import P1Protocol, async_open, line_rate
from custom_components.dsmr.stats import ReaderStats
from dsmr_sim.faults import Faults
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

CHUNK = 62  # bytes per USB packet of an FTDI adapter
RATE_V5 = 11520.0  # bytes per second at 115200 baud, 8N1


def at_line_rate() -> Faults:
    """Telegrams sent CHUNK bytes at a time at DSMR 5's line rate."""
    return Faults(drip=True, drip_size=CHUNK, drip_delay=CHUNK / RATE_V5)


@pytest.mark.parametrize(("version", "rate"), [("5", 11520.0), ("4", 11520.0), ("2.2", 960.0)])
def test_line_rate_from_dsmr_parser_settings(version: str, rate: float) -> None:
    """Ten bits a character: 8N1 at 115200 baud (DSMR 4/5), 7E1 at 9600 (DSMR 2.2)."""
    _, settings = _create_dsmr_protocol(version, None, P1Protocol, stats=ReaderStats())
    assert line_rate(settings) == rate


async def _read(
    server: BaseServer, data: dict[str, Any], count: int
) -> tuple[list[list[int]], ReaderStats, list[Telegram], P1Protocol]:
    """Send `count` telegrams one by one; return the chunk sizes the protocol got for each."""
    telegrams: list[Telegram] = []
    stats = ReaderStats()
    transport, protocol = await async_open(data, telegrams.append, stats)
    chunks: list[list[int]] = []
    received: Callable[[bytes], None] = protocol.data_received

    def counting(data: bytes) -> None:
        chunks[-1].append(len(data))
        received(data)

    protocol.data_received = counting  # type: ignore[method-assign]
    try:
        for sent in range(1, count + 1):
            chunks.append([])
            await server.send_telegram()
            await server.wait_sent(sent)
            await until(lambda sent=sent: stats.telegrams >= sent)
    finally:
        transport.close()
    return chunks, stats, telegrams, protocol


async def until(condition: Callable[[], bool]) -> None:
    """Let the reader's callbacks and timers run until `condition` holds (5 s at most)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_serial_telegram_read_in_two_pieces(hass: HomeAssistant) -> None:
    """Over a pty at line rate: every chunk of the first telegram, then two pieces each."""
    server = PtyServer(Meter("5", seed=3), faults=at_line_rate())
    await server.start()
    try:
        chunks, stats, telegrams, protocol = await _read(
            server, {"port": server.port, "dsmr_version": "5"}, 5
        )
    finally:
        await server.stop()
    size = len(server.last_payload)
    assert len(chunks[0]) == -(-size // CHUNK)  # nothing known yet: every chunk as it comes
    for later in chunks[1:]:
        # The first chunk, then the rest at once (here: [62, 833]); a third piece only when
        # this machine wakes the simulator late.
        assert later[0] == CHUNK and len(later) <= 3 and sum(later) == size
    assert stats.telegrams == 5
    assert stats.crc_errors == stats.parse_errors == stats.discarded_bytes == 0
    stamps = [t.P1_MESSAGE_TIMESTAMP.value for t in telegrams]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5  # five telegrams, in order
    assert protocol._resume is None  # closed: no timer left behind


async def test_bridge_telegram_read_in_two_pieces(hass: HomeAssistant) -> None:
    """A ser2net-style TCP bridge forwarding the line as it comes is read the same way."""
    server = TcpServer(Meter("5", seed=4), faults=at_line_rate())
    await server.start()
    try:
        chunks, stats, _, _ = await _read(
            server, {"host": server.host, "port": server.port, "dsmr_version": "5"}, 4
        )
    finally:
        await server.stop()
    assert all(len(later) <= 4 for later in chunks[1:])  # TCP may split a piece once more
    assert sum(len(later) for later in chunks[1:]) < len(chunks[0])
    assert stats.telegrams == 4
    assert stats.crc_errors == stats.parse_errors == 0


async def test_longer_telegram_than_the_last_is_read_whole(hass: HomeAssistant) -> None:
    """Two telegrams back to back (twice the expected size) are both read, none lost."""
    server = PtyServer(Meter("5", seed=5), faults=at_line_rate())
    await server.start()
    stats = ReaderStats()
    telegrams: list[Telegram] = []
    transport, _ = await async_open(
        {"port": server.port, "dsmr_version": "5"}, telegrams.append, stats
    )
    try:
        await server.send_telegram()
        await until(lambda: stats.telegrams >= 1)
        server.faults.duplicate = True
        await server.send_telegram()
        await until(lambda: stats.telegrams >= 3)
        server.faults.duplicate = False
        await server.send_telegram()
        await until(lambda: stats.telegrams >= 4)
    finally:
        transport.close()
        await server.stop()
    assert stats.crc_errors == stats.parse_errors == stats.discarded_bytes == 0


async def test_closing_while_waiting_for_the_rest(hass: HomeAssistant) -> None:
    """The connection closed mid-telegram: the wait's timer is cancelled, nothing fires late."""
    server = PtyServer(Meter("5", seed=6), faults=at_line_rate())
    await server.start()
    stats = ReaderStats()
    transport, protocol = await async_open(
        {"port": server.port, "dsmr_version": "5"}, lambda _: None, stats
    )
    try:
        await server.send_telegram()
        await until(lambda: stats.telegrams >= 1)
        sending = hass.async_create_task(server.send_telegram())
        await until(lambda: protocol._resume is not None)
        transport.close()
        await protocol.wait_closed()
        assert protocol._resume is None
        await sending
    finally:
        await server.stop()
    assert stats.telegrams == 1


async def test_encrypted_meters_read_every_chunk(hass: HomeAssistant) -> None:
    """Encrypted frames are framed by dsmr_parser: no waiting is attempted for them."""
    server = PtyServer(Meter("5", seed=7))
    await server.start()
    try:
        transport, protocol = await async_open(
            {"port": server.port, "dsmr_version": "SAGEMCOM_T210_D_R", "encryption_key": "0" * 32},
            lambda _: None,
            ReaderStats(),
        )
        transport.close()
    finally:
        await server.stop()
    assert protocol._line_rate is None


class _ProxyTransport(asyncio.ReadTransport):
    """A transport that cannot pause reading, as an ESPHome serial proxy (none exists here)."""

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""


async def test_transport_that_cannot_pause_is_read_chunk_by_chunk(hass: HomeAssistant) -> None:
    """Without pause_reading the reader stops trying and reads every chunk as it comes."""
    telegrams: list[Telegram] = []
    factory, _ = _create_dsmr_protocol(
        "5", telegrams.append, P1Protocol, hass.loop, stats=ReaderStats(), line_rate=RATE_V5
    )
    protocol = factory()
    protocol.connection_made(_ProxyTransport())
    meter = Meter("5", seed=8)
    data = meter.wrap(meter.render().text)
    for _ in range(2):
        for offset in range(0, len(data), CHUNK):
            protocol.data_received(data[offset : offset + CHUNK])
    protocol.connection_lost(None)
    assert len(telegrams) == 2
    assert protocol._line_rate is None and protocol._resume is None
