"""The connection at a meter's real line speed: a telegram arrives a few dozen bytes at a time.

A USB serial adapter hands a DSMR 5 telegram (about 900 bytes, 80 ms at 115200 baud) over in
chunks of 62 bytes; a serial-to-network bridge forwards similar pieces. The reader waits for the
rest of a telegram instead of waking for every chunk. These tests drip telegrams at the line's
byte rate through a real pty and a real TCP socket and count what the protocol is handed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsmr_parser.objects import Telegram
from homeassistant.core import HomeAssistant
import pytest

from custom_components.dsmr.connection import (
    MIN_PAUSE,
    PAUSE_MARGIN,
    Counters,
    P1Protocol,
    async_open,
    line_rate,
)
from custom_components.dsmr.p1.telegram import version_setup
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
    assert line_rate(version_setup(version)[1]) == rate


def keep(telegrams: list[Telegram]) -> Callable[[Telegram, Any], None]:
    """A telegram callback that keeps the telegrams."""
    return lambda telegram, _unknown: telegrams.append(telegram)


@dataclass
class Read:
    """One data_received call: its size, and the pause the protocol decided on it (if any).

    `wait` is the window in which the protocol's call_later delay must lie: the loop's clock just
    before and just after the call bound the moment it scheduled its resume timer. `paused`: the
    call came while the protocol had paused reading (a transport that does not pause).
    """

    size: int
    paused: bool
    wait: tuple[float, float] | None = None


async def _read(
    server: BaseServer, data: dict[str, Any], count: int
) -> tuple[list[list[Read]], list[int], Counters, list[Telegram], P1Protocol]:
    """Send `count` telegrams one by one; return the reads of each and the sizes sent."""
    loop = asyncio.get_running_loop()
    telegrams: list[Telegram] = []
    stats = Counters()
    transport, protocol = await async_open(data, keep(telegrams), stats)
    reads: list[list[Read]] = []
    sizes: list[int] = []
    received: Callable[[bytes], None] = protocol.data_received

    def counting(data: bytes) -> None:
        read = Read(len(data), paused=protocol._resume is not None)
        before = loop.time()
        received(data)
        if (resume := protocol._resume) is not None:
            read.wait = (resume.when() - loop.time(), resume.when() - before)
        reads[-1].append(read)

    protocol.data_received = counting  # type: ignore[method-assign]
    try:
        for sent in range(1, count + 1):
            reads.append([])
            await server.send_telegram()
            await server.wait_sent(sent)
            sizes.append(len(server.last_payload))
            await until(lambda sent=sent: stats.telegrams >= sent)
    finally:
        transport.close()
    return reads, sizes, stats, telegrams, protocol


def assert_read_at_once(reads: list[list[Read]], sizes: list[int], most: int) -> None:
    """The first telegram read as it comes; each later one in its first piece and the rest.

    What the reader decides is checked, not how this machine's scheduler happened to cut the
    line: a busy machine merges chunks (fewer reads), and a late first read may leave too
    little of a telegram to wait for.
    """
    assert not any(r.paused for telegram in reads for r in telegram)  # nothing while paused
    assert sizes[0] == sum(r.size for r in reads[0])
    assert all(r.wait is None for r in reads[0])  # nothing known yet: no waiting
    for previous, size, (head, *rest) in zip(sizes, sizes[1:], reads[1:], strict=False):
        assert size == head.size + sum(r.size for r in rest)
        assert all(r.wait is None for r in rest)  # decided once, on the telegram's first piece
        expected = (previous - head.size) / RATE_V5  # the rest, at the last telegram's size
        if expected < MIN_PAUSE:  # most of it came at once: not worth a timer
            assert head.wait is None
            continue
        assert head.wait is not None
        low, high = head.wait
        assert low - 1e-6 <= expected + PAUSE_MARGIN <= high + 1e-6
        # Then the rest at once, read when the meter has sent it all; one more piece only when
        # the kernel hands the last bytes over after the reader has woken up.
        assert 1 + len(rest) <= most


async def until(condition: Callable[[], bool]) -> None:
    """Let the reader's callbacks and timers run until `condition` holds (5 s at most)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_serial_telegram_read_in_two_pieces(hass: HomeAssistant) -> None:
    """Over a pty at line rate: the first telegram as it comes, then two pieces each."""
    server = PtyServer(Meter("5", seed=3), faults=at_line_rate())
    await server.start()
    try:
        reads, sizes, stats, telegrams, protocol = await _read(
            server, {"port": server.port, "dsmr_version": "5"}, 5
        )
    finally:
        await server.stop()
    assert_read_at_once(reads, sizes, most=3)
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
        reads, sizes, stats, _, _ = await _read(
            server, {"host": server.host, "port": server.port, "dsmr_version": "5"}, 4
        )
    finally:
        await server.stop()
    assert_read_at_once(reads, sizes, most=4)  # TCP may split a piece once more
    assert stats.telegrams == 4
    assert stats.crc_errors == stats.parse_errors == 0


async def test_longer_telegram_than_the_last_is_read_whole(hass: HomeAssistant) -> None:
    """Two telegrams back to back (twice the expected size) are both read, none lost."""
    server = PtyServer(Meter("5", seed=5), faults=at_line_rate())
    await server.start()
    stats = Counters()
    telegrams: list[Telegram] = []
    transport, _ = await async_open(
        {"port": server.port, "dsmr_version": "5"}, keep(telegrams), stats
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
    # A chunk every 50 ms: the second telegram's first piece leaves most of it to wait for, however
    # late this machine reads it.
    server = PtyServer(
        Meter("5", seed=6), faults=Faults(drip=True, drip_size=CHUNK, drip_delay=0.05)
    )
    await server.start()
    stats = Counters()
    transport, protocol = await async_open(
        {"port": server.port, "dsmr_version": "5"}, lambda *_: None, stats
    )
    received: Callable[[bytes], None] = protocol.data_received
    waits: list[asyncio.TimerHandle] = []

    def closing_when_waiting(data: bytes) -> None:
        received(data)
        if protocol._resume is not None:  # the reader has just paused: close the port now
            waits.append(protocol._resume)
            transport.close()

    protocol.data_received = closing_when_waiting  # type: ignore[method-assign]
    try:
        await server.send_telegram()
        await until(lambda: stats.telegrams >= 1)
        sending = hass.async_create_task(server.send_telegram())
        async with asyncio.timeout(5):
            await protocol.wait_closed()
        assert len(waits) == 1 and waits[0].cancelled()
        assert protocol._resume is None
        await sending
    finally:
        await server.stop()
    assert stats.telegrams == 1


async def test_encrypted_meters_read_every_chunk(hass: HomeAssistant) -> None:
    """Encrypted frames are framed by their length: no waiting is attempted for them."""
    server = PtyServer(Meter("5", seed=7))
    await server.start()
    try:
        transport, protocol = await async_open(
            {"port": server.port, "dsmr_version": "SAGEMCOM_T210_D_R", "encryption_key": "0" * 32},
            lambda *_: None,
            Counters(),
        )
        transport.close()
    finally:
        await server.stop()
    assert protocol._rate is None


class _ProxyTransport(asyncio.ReadTransport):
    """A transport that cannot pause reading, as an ESPHome serial proxy (none exists here)."""

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""


async def test_transport_that_cannot_pause_is_read_chunk_by_chunk(hass: HomeAssistant) -> None:
    """Without pause_reading the reader stops trying and reads every chunk as it comes."""
    telegrams: list[Telegram] = []
    protocol = P1Protocol("5", keep(telegrams), Counters(), rate=RATE_V5)
    protocol.connection_made(_ProxyTransport())
    meter = Meter("5", seed=8)
    data = meter.wrap(meter.render().text)
    for _ in range(2):
        for offset in range(0, len(data), CHUNK):
            protocol.data_received(data[offset : offset + CHUNK])
    protocol.connection_lost(None)
    assert len(telegrams) == 2
    assert protocol._rate is None and protocol._resume is None
