"""The pty server through a real pseudo-terminal, opened by dsmr_parser's reader (serialx)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dsmr_sim import VERSIONS
from dsmr_sim.faults import Faults
from dsmr_sim.serial_pty import PtyServer, configure_tty, read_tty_settings

from .helpers import ALL_VERSIONS, assert_matches, make_meter


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_every_version_over_a_pty(version: str, dsmr_pty_server, dsmr_reader) -> None:
    server = await dsmr_pty_server(make_meter(version), link=version in {"5", "MSn"})
    assert server.path is not None and server.path.startswith("/dev/pts/")
    assert server.serial_settings().baudrate == VERSIONS[version].serial.baudrate
    reader = await dsmr_reader(server)
    for number in (1, 2):
        await server.send_telegram()
        telegram = await reader.next()
        assert server.telegrams_sent == number
        assert_matches(telegram, server.last_rendered, server.meter)


async def test_symlink_follows_unplug_and_replug(
    dsmr_pty_server, dsmr_reader, tmp_path: Path
) -> None:
    link = tmp_path / "dev" / "serial" / "by-id" / "usb-Sim_P1-if00-port0"
    server = await dsmr_pty_server("5B", link=link, mbus=("gas", "water"))
    assert server.port == str(link) and os.readlink(link) == server.path
    reader = await dsmr_reader(str(link), "5B")
    await server.send_telegram()
    await reader.next()
    await server.unplug()
    assert not server.plugged and server.path is None
    assert not link.is_symlink()
    await reader.wait_closed()
    assert await server.send_telegram() == b""  # nobody can hear an unplugged meter
    with pytest.raises(RuntimeError, match="not plugged"):
        server.serial_settings()
    await server.replug()
    await server.replug()  # idempotent while plugged
    assert server.plugged and server.replugs == 1
    assert os.readlink(link) == server.path
    again = await dsmr_reader(str(link), "5B")
    await server.send_telegram()
    assert len((await again.next()).MBUS_DEVICES) == 2


async def test_drop_every_unplugs_and_replugs(dsmr_pty_server, dsmr_reader) -> None:
    faults = Faults(drop_every=1)
    server = await dsmr_pty_server("5", link=True, faults=faults)
    server.replug_delay = 0.01
    reader = await dsmr_reader(server)
    await server.send_telegram()
    await reader.wait_closed()
    assert server.plugged and server.replugs == 1
    assert os.readlink(server.link) == server.path


async def test_pty_without_link_reports_its_path(dsmr_pty_server) -> None:
    server = await dsmr_pty_server("2.2")
    assert server.link is None and server.port == server.path == server.endpoint
    await server.unplug()
    with pytest.raises(RuntimeError, match="not plugged"):
        _ = server.port
    await server.unplug()  # idempotent


async def test_unread_data_does_not_pile_up(dsmr_pty_server) -> None:
    server = await dsmr_pty_server("5", stale_after=0.0)
    for _ in range(5):
        await server.send_telegram()
        assert server.pending() <= len(server.last_payload)
    assert server.flushes >= 4


async def test_full_line_never_raises(dsmr_pty_server) -> None:
    server = await dsmr_pty_server("5", mbus=("gas", "water", "heat", "cooling"), stale_after=3600)
    for _ in range(300):  # ~300 kB into a line nobody reads: EAGAIN is handled by flushing
        await server.send_telegram()
    assert server.flushes >= 1
    assert server.telegrams_sent == 300


async def test_a_burst_is_kept_for_a_reader_that_reads(dsmr_pty_server, dsmr_reader) -> None:
    server = await dsmr_pty_server("5", stale_after=60)
    reader = await dsmr_reader(server)  # serialx flushes the input queue when it opens
    sent = []
    for _ in range(3):  # back to back, before the reader had a chance to read
        await server.send_telegram()
        sent.append(server.meter.now)
    assert reader.telegrams == [] and server.pending() > 0  # queued, unread
    got = [await reader.next() for _ in range(3)]
    assert [telegram.P1_MESSAGE_TIMESTAMP.value for telegram in got] == sent
    assert server.flushes == 0


async def test_faults_on_a_pty(dsmr_pty_server, dsmr_reader) -> None:
    server = await dsmr_pty_server("4", faults=Faults(drip=True, drip_size=64, drip_delay=0.0005))
    reader = await dsmr_reader(server)
    await server.send_telegram()
    await reader.next()
    server.faults = Faults(bad_crc=True)
    await server.send_telegram()
    server.faults.clear()
    await server.send_telegram()
    telegram = await reader.next()
    assert telegram.P1_MESSAGE_TIMESTAMP.value == server.meter.now
    assert reader.drain() == []


async def test_unplug_during_drip_stops_writing(dsmr_pty_server) -> None:
    server = await dsmr_pty_server("5", faults=Faults(drip=True, drip_size=8, drip_delay=0.001))
    task = asyncio.create_task(server.send_telegram())
    await asyncio.sleep(0.01)
    server._unplug()  # pulled mid-telegram
    assert await task
    assert not server.plugged


async def test_client_writes_are_discarded(dsmr_pty_server) -> None:
    server = await dsmr_pty_server("5")
    fd = os.open(server.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, b"/?!\r\n" * 100)
        await asyncio.sleep(0.05)
    finally:
        os.close(fd)
    server._discard_input()  # nothing left: no error


def test_tty_settings_roundtrip() -> None:
    master, slave = os.openpty()
    try:
        configure_tty(slave, VERSIONS["2.2"].serial)
        settings = read_tty_settings(slave)
        assert settings.baudrate == 9600 and settings.stopbits == 1
        # Linux ptys force CS8 without parity whatever is asked: framing is nominal on a pty
        assert settings.framing in {"7E1", "8N1"}
    finally:
        os.close(master)
        os.close(slave)


async def test_pty_server_standalone() -> None:
    async with PtyServer(make_meter("5"), interval=0.01) as server:
        await server.wait_sent(2)
        assert server.pending() > 0
    assert server.pending() == 0 and not server.plugged
