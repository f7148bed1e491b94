"""Replaying recorded telegrams: the bytes on the wire are the bytes recorded."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dsmr_sim import Faults, Replay, TcpServer
from dsmr_sim.__main__ import build_parser, main, make_meter
from dsmr_sim.client import TelegramReader
from dsmr_sim.dlms import DlmsEncryptor, decrypt
from dsmr_sim.replay import read_recording, split_frames

FIELD = Path(__file__).resolve().parents[1] / "fixtures" / "field"
BELGIAN = FIELD / "be-sagemcom-t211-gas-water.txt"
Q3D = FIELD / "de-easymeter-q3d-b1024.txt"
AUSTRIAN = FIELD / "at-sagemcom-t210dr-encrypted.hex"
# dsmr_parser's own test keys for its Sagemcom T210-D-r frame (test_parse_sagemcom_t210_d_r.py).
KEY, AUTH_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


def test_split_frames_keeps_what_followed_each_telegram() -> None:
    first, second = BELGIAN.read_bytes(), Q3D.read_bytes()
    assert split_frames(b"noise" + first + second) == [b"noise" + first, second]
    # The EasyMeter's gateway sends a counter line and 0xFF bytes after the "!": they stay.
    assert split_frames(second) == [second]
    assert second.endswith(b"\xff\r\n")


def test_split_frames_cuts_dlms_frames_by_their_length() -> None:
    frame = read_recording(AUSTRIAN)
    assert frame[0] == 0xDB and len(frame) == 511
    assert split_frames(frame + frame) == [frame, frame]
    with pytest.raises(ValueError, match="runs past the end"):
        split_frames(frame[:-1])
    with pytest.raises(ValueError, match="expected a DLMS frame"):
        split_frames(frame + b"x")
    with pytest.raises(ValueError, match="empty"):
        split_frames(b"")


def test_decrypt_reverses_the_encryptor() -> None:
    key = bytes.fromhex(KEY)
    encryptor = DlmsEncryptor(key, bytes.fromhex(AUTH_KEY), b"SYSTEMID", 7)
    assert decrypt(encryptor.encrypt(b"/TEST\r\n\r\n!1234\r\n"), key) == b"/TEST\r\n\r\n!1234\r\n"
    # dsmr_parser's frame holds its example telegram.
    plain = decrypt(read_recording(AUSTRIAN), key)
    assert plain.startswith(b"/EST5\\253710000_A\r\n") and b"1-0:1.8.0(006545766*Wh)" in plain


def test_replay_cycles_through_frames() -> None:
    meter = Replay("5B", [b"/A\r\n!1\r\n", b"/B\r\n!2\r\n"])
    assert meter.telegram() == "/A\r\n!1\r\n"  # before the first step: the first telegram
    sent = []
    for _ in range(3):
        meter.step(1)
        sent.append(meter.payload())
    assert sent == [b"/A\r\n!1\r\n", b"/B\r\n!2\r\n", b"/A\r\n!1\r\n"]
    with pytest.raises(ValueError, match="nothing to replay"):
        Replay("5", [])
    with pytest.raises(ValueError, match="encrypted"):
        Replay("SAGEMCOM_T210_D_R", [b"\xdb"])


async def test_replay_over_tcp_sends_the_recorded_bytes(socket_enabled: None) -> None:
    async with TcpServer(Replay.from_file(Q3D, "Q3D")) as server:
        reader = TelegramReader(server.url, "Q3D")
        await reader.connect()
        try:
            assert await server.send_telegram() == Q3D.read_bytes()
            telegram = await reader.next()
        finally:
            await reader.close()
    assert telegram.CURRENT_ELECTRICITY_USAGE.value == Decimal("2124.86")
    assert telegram.CURRENT_ELECTRICITY_USAGE.unit == "W"


async def test_replay_of_an_encrypted_frame(socket_enabled: None) -> None:
    meter = Replay.from_file(AUSTRIAN, "SAGEMCOM_T210_D_R", key=KEY, auth_key=AUTH_KEY)
    async with TcpServer(meter) as server:
        reader = TelegramReader(server.url, meter.version, encryption_key=meter.key_hex)
        await reader.connect()
        try:
            assert await server.send_telegram() == read_recording(AUSTRIAN)
            telegram = await reader.next()
            # A fault that changes the text: the changed telegram, encrypted again.
            server.faults = Faults()
            server.faults.set("bad_crc")
            payload = await server.send_telegram()
        finally:
            await reader.close()
    assert telegram.ELECTRICITY_IMPORTED_TOTAL.value == Decimal(6545766)
    assert telegram.ELECTRICITY_IMPORTED_TOTAL.unit == "Wh"
    assert payload != read_recording(AUSTRIAN)
    assert decrypt(payload, bytes.fromhex(KEY)) != decrypt(
        read_recording(AUSTRIAN), bytes.fromhex(KEY)
    )


def test_cli_makes_a_replaying_meter() -> None:
    args = build_parser().parse_args(
        ["--replay", str(AUSTRIAN), "--dsmr-version", "SAGEMCOM_T210_D_R"]
    )
    args.key, args.auth_key = KEY, AUTH_KEY
    meter = make_meter(args)
    assert isinstance(meter, Replay)
    assert meter.frames == (read_recording(AUSTRIAN),)
    assert (meter.version, meter.key_hex) == ("SAGEMCOM_T210_D_R", KEY)
    assert not isinstance(make_meter(build_parser().parse_args([])), Replay)


def test_cli_rejects_a_missing_recording(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--replay", str(tmp_path / "none.txt"), "--tcp", "127.0.0.1:0"]) == 2
    assert "none.txt" in capsys.readouterr().err
