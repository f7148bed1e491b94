"""Fault switches and byte-level helpers."""

from __future__ import annotations

import random

from dsmr_parser.exceptions import InvalidChecksumError
from dsmr_parser.parsers import TelegramParser
import pytest

from dsmr_sim.faults import FAULT_NAMES, Faults, corrupt_crc, garbage_bytes

from .helpers import make_meter


def test_switches_by_name() -> None:
    faults = Faults()
    assert faults.active == []
    for name in FAULT_NAMES:
        faults.set(name)
    assert sorted(faults.active) == sorted(FAULT_NAMES)
    faults.clear()
    assert faults.active == [] and faults.drop_every == 0
    with pytest.raises(ValueError, match="unknown fault"):
        faults.set("fire")


def test_every_nth() -> None:
    assert [Faults(every=3).applies_to(n) for n in range(1, 7)] == [False, False, True] * 2
    assert Faults().applies_to(5)


def test_corrupt_crc() -> None:
    text = make_meter("5").telegram()
    bad = corrupt_crc(text)
    assert bad[:-6] == text[:-6] and bad != text and bad.endswith("\r\n")
    with pytest.raises(InvalidChecksumError):
        TelegramParser.validate_checksum(bad)
    plain = make_meter("2.2").telegram()
    assert corrupt_crc(plain) == plain[:-2] + "0000\r\n"


def test_garbage_has_no_framing() -> None:
    noise = garbage_bytes(random.Random(1), 5000)
    assert len(noise) == 5000
    assert not {ord("/"), ord("!"), 0xDB} & set(noise)


async def test_stall_then_garbage_on_encrypted_frames(socket_enabled) -> None:
    from dsmr_sim.tcp import TcpServer

    server = TcpServer(
        make_meter("SAGEMCOM_T210_D_R"), faults=Faults(garbage=True, duplicate=True, truncate=True)
    )
    await server.start()
    try:
        payload = await server.send_telegram()
        assert payload and 0xDB in payload and server.telegrams_sent == 1
    finally:
        await server.stop()
