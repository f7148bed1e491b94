"""Auto-detection: every version recognized from the simulator, over a pty and over TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from custom_components.dsmr import detect
from custom_components.dsmr.connection import CannotCommunicate, CannotConnect
from custom_components.dsmr.detect import ENCRYPTED, async_detect, detect_version
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .conftest import MISSING_PORT

KEY = "00112233445566778899AABBCCDDEEFF"
EXPECTED = {
    "2.2": "2.2",
    "4": "4",
    "4+": "4+",
    "5": "5",
    "5B": "5B",
    "5L": "5L",
    "5S": "5S",
    "Q3D": "Q3D",
    "5EONHU": "5EONHU",
    "ISKRA_IE": "ISKRA_IE",
    "MSn": ENCRYPTED,
    "SAGEMCOM_T210_D_R": ENCRYPTED,
}
INTERVAL = 0.2


def meter(version: str) -> Meter:
    return Meter(version, seed=31, key=KEY if EXPECTED[version] == ENCRYPTED else None)


@pytest.mark.parametrize("version", EXPECTED)
def test_versions_from_their_telegrams(version: str) -> None:
    assert detect_version(meter(version).payload()) == EXPECTED[version]


@pytest.mark.parametrize("version", EXPECTED)
async def test_detect_over_tcp(version: str) -> None:
    server = TcpServer(meter(version), interval=INTERVAL)
    await server.start()
    try:
        found = await async_detect(server.url, wait=2)
    finally:
        await server.stop()
    assert found.version == EXPECTED[version]
    assert found.settings == "network"
    # One telegram interval (plus the partial telegram that was on the line when we came).
    assert found.seconds < 2 * INTERVAL + 0.5, found.seconds


@pytest.mark.parametrize("version", EXPECTED)
async def test_detect_over_a_pty(version: str, tmp_path: Path) -> None:
    server = PtyServer(meter(version), link=tmp_path / "ttyP1", interval=INTERVAL)
    await server.start()
    try:
        found = await async_detect(server.port, wait=2)
    finally:
        await server.stop()
    assert found.version == EXPECTED[version]
    # A pty carries bytes whatever the line settings: the first setting tried hears the meter.
    assert found.settings == "115200 8N1"
    assert found.seconds < 2 * INTERVAL + 0.5, found.seconds


async def test_every_setting_is_tried_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop over line settings, with the listening itself recorded (no port needed)."""
    tried: list[dict[str, object]] = []
    answers = {9600: Meter("2.2", seed=1).payload()}

    async def listen(
        url: str, settings: dict[str, object], wait: float
    ) -> tuple[bytes | None, int]:
        tried.append(settings)
        heard = answers.get(int(str(settings["baudrate"])))
        return heard, len(heard or b"")

    monkeypatch.setattr(detect, "_listen", listen)
    found = await async_detect("/dev/ttyUSB0", wait=0.1)
    assert found.version == "2.2"
    assert found.settings == "9600 7E1"
    assert tried == [settings for _, settings in detect.SETTINGS]
    tried.clear()
    answers.clear()
    with pytest.raises(CannotCommunicate):
        await async_detect("/dev/ttyUSB0", wait=0.1)
    assert len(tried) == 3


@pytest.fixture
def one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux ptys refuse some later 7-bit tcsetattr calls (EINVAL, also with plain termios):
    tests on a real pty listen with the first setting only; real adapters take all three."""
    monkeypatch.setattr(detect, "SETTINGS", detect.SETTINGS[:1])


@pytest.mark.usefixtures("one_setting")
async def test_silent_port_gives_up_after_the_wait(tmp_path: Path) -> None:
    server = PtyServer(Meter("5"), link=tmp_path / "ttyP1")  # manual mode: never sends
    await server.start()
    try:
        with pytest.raises(CannotCommunicate):
            await async_detect(server.port, wait=0.2)
    finally:
        await server.stop()


@pytest.mark.usefixtures("one_setting")
async def test_noise_moves_on_without_waiting(tmp_path: Path) -> None:
    server = PtyServer(Meter("5"), link=tmp_path / "ttyP1")
    await server.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        # 5 KB of noise and no telegram, once the port is open (opening flushes the line).
        loop.call_later(0.3, lambda: server._write(bytes(range(128, 256)) * 40, first=False))
        with pytest.raises(CannotCommunicate):
            await async_detect(server.port, wait=5)
    finally:
        await server.stop()
    assert loop.time() - started < 2  # not the 5 s wait: noise ends a setting at once


async def test_missing_port() -> None:
    with pytest.raises(CannotConnect):
        await async_detect(MISSING_PORT, wait=0.2)
