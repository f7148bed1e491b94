"""Shared helpers for the simulator tests."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
import os
from pathlib import Path
import signal
import sys
from typing import Any
from zoneinfo import ZoneInfo

from dsmr_parser.parsers import TelegramParser

from dsmr_sim import VERSIONS, Meter
from dsmr_sim.templates import Rendered

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
ENC_KEY = "000102030405060708090A0B0C0D0E0F"
AUTH_KEY = "F0E0D0C0B0A090807060504030201000"
ALL_VERSIONS = list(VERSIONS)
PLAIN_VERSIONS = [v for v in VERSIONS if not VERSIONS[v].encrypted]
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def make_meter(version: str, **kwargs: Any) -> Meter:
    """A meter of ``version``, with the test key for encrypted versions."""
    if VERSIONS[version].encrypted:
        kwargs.setdefault("key", ENC_KEY)
    return Meter(version, **kwargs)


def parse(meter: Meter, wire: bytes | str, **kwargs: Any) -> Any:
    """Parse what ``meter`` sent with dsmr_parser's TelegramParser for its version."""
    parser = TelegramParser(meter.telegram_specification())
    if meter.encrypted:
        assert isinstance(wire, bytes)
        kwargs.setdefault("authentication_key", None)
        return parser.parse(wire.hex(), encryption_key=meter.key_hex, throw_ex=True, **kwargs)
    text = wire.decode("ascii") if isinstance(wire, bytes) else wire
    return parser.parse(text, throw_ex=True, **kwargs)


def lookup(telegram: Any, key: str) -> Any:
    """``NAME`` on the telegram, or ``NAME@n`` on M-Bus device ``n``."""
    name, _, channel = key.partition("@")
    if channel:
        device = telegram.get_mbus_device_by_channel(int(channel))
        assert device is not None, f"no M-Bus device on channel {channel}"
        return getattr(device, name)
    return getattr(telegram, name)


def same_offset_as_amsterdam(dt: datetime) -> bool:
    """dsmr_parser reads every timestamp as Europe/Amsterdam time."""
    return dt.utcoffset() == dt.astimezone(AMSTERDAM).utcoffset()


def assert_matches(telegram: Any, rendered: Rendered, meter: Meter) -> None:
    """Every value the simulator recorded is what dsmr_parser read, with the same unit.

    Lines the version's specification does not know (a real meter sends some) are skipped.
    """
    spec_names = {o["value_name"] for o in meter.telegram_specification()["objects"]}
    for key, expected in rendered.values.items():
        name = key.partition("@")[0]
        if name not in spec_names:
            continue
        obj = lookup(telegram, key)
        if name == "POWER_EVENT_FAILURE_LOG":
            assert obj.buffer_length == expected
            assert obj.buffer_type == "0-0:96.7.19"
            assert all(item.unit == "s" for item in obj.buffer)
            continue
        if name == "BELGIUM_MAXIMUM_DEMAND_13_MONTHS":
            assert len(obj) == expected
            assert all(item.unit == "kW" for item in obj)
            continue
        assert obj.unit == rendered.units[key], key
        if isinstance(expected, datetime):
            if same_offset_as_amsterdam(expected):
                assert obj.value == expected, key
            continue
        if isinstance(expected, Decimal):
            assert isinstance(obj.value, Decimal), key
        assert obj.value == expected, key


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """``python -m dsmr_sim ARGS`` as a subprocess, stdout and stderr piped."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")]),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dsmr_sim",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def read_line(proc: asyncio.subprocess.Process) -> str:
    """The next line the simulator printed (an endpoint announcement)."""
    assert proc.stdout is not None
    async with asyncio.timeout(10):
        line = await proc.stdout.readline()
    assert line, (await proc.stderr.read()).decode() if proc.stderr else "no output"
    return line.decode().rstrip("\n")


async def finish(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> str:
    """Stop the simulator with ``sig``; it must exit 0. Returns what it logged."""
    proc.send_signal(sig)
    async with asyncio.timeout(10):
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return err.decode()
