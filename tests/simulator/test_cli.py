"""The command line: ``python -m dsmr_sim`` as a real subprocess, and in-process."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import signal

import pytest

from dsmr_sim.__main__ import build_parser, main, parse_hostport, serve
from dsmr_sim.client import TelegramReader

from .helpers import finish, read_line, spawn


async def test_cli_serves_tcp_until_terminated() -> None:
    proc = await spawn(
        "--dsmr-version",
        "5B",
        "--tcp",
        "127.0.0.1:0",
        "--interval",
        "0.05",
        "--mbus",
        "gas,water",
        "--seed",
        "3",
        "--fault",
        "garbage",
    )
    try:
        kind, address = (await read_line(proc)).split(" ", 1)
        assert kind == "TCP"
        host, port = parse_hostport(address)
        reader = TelegramReader(f"socket://{host}:{port}", "5B")
        await reader.connect()
        try:
            telegram = await reader.next(timeout=10)
            assert [d.MBUS_DEVICE_TYPE.value for d in telegram.MBUS_DEVICES] == [3, 7]
        finally:
            await reader.close()
    finally:
        await finish(proc)


async def test_cli_serves_a_pty_with_link(tmp_path: Path) -> None:
    link = tmp_path / "ttyDSMR"
    proc = await spawn(
        "--dsmr-version",
        "MSn",
        "--link",
        str(link),
        "--interval",
        "0.05",
        "--key",
        "000102030405060708090A0B0C0D0E0F",
        "--fault",
        "drop",
        "--drop-every",
        "1000",
    )
    try:
        assert (await read_line(proc)).startswith("PTY /dev/pts/")
        assert await read_line(proc) == f"LINK {link}"
        reader = TelegramReader(str(link), "MSn", encryption_key="000102030405060708090A0B0C0D0E0F")
        await reader.connect()
        try:
            assert (await reader.next(timeout=10)).P1_MESSAGE_HEADER.value == "42"
        finally:
            await reader.close()
    finally:
        await finish(proc, signal.SIGINT)
    assert not link.exists()


async def test_serve_in_process_with_a_stop_event(socket_enabled, tmp_path: Path, capsys) -> None:
    args = build_parser().parse_args(
        [
            "--dsmr-version",
            "4",
            "--tcp",
            "127.0.0.1:0",
            "--pty",
            "--interval",
            "0.02",
            "--step",
            "60",
            "--mbus",
            "",
            "--fault",
            "drop",
            "--drop-every",
            "3",
            "-v",
        ]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(args, stop))
    out = ""
    try:
        async with asyncio.timeout(10):
            while out.count("PTY ") < 2:  # the first PTY, then one after a replug
                await asyncio.sleep(0.02)
                out += capsys.readouterr().out
    finally:
        stop.set()
        assert await task == 0
    assert out.startswith("TCP 127.0.0.1:")


def test_main_reports_bad_arguments(capsys) -> None:
    assert main(["--dsmr-version", "MSn", "--tcp", "127.0.0.1:0"]) == 2
    assert "encrypted" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--dsmr-version",
        "--tcp",
        "--pty",
        "--link",
        "--interval",
        "--mbus",
        "--key",
        "--auth-key",
        "--seed",
        "--fault",
        "SAGEMCOM_T210_D_R",
        "bad_crc",
    ):
        assert option in out
    with pytest.raises(SystemExit):
        main(["--fault", "fire"])


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:2001") == ("127.0.0.1", 2001)
    assert parse_hostport("[::1]:0") == ("::1", 0)
    assert parse_hostport(":2001") == ("127.0.0.1", 2001)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_hostport("localhost")
