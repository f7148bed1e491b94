"""A simulator that restarts like a real meter: registers continue (--state), each instance is a
meter of its own (identifiers from its port), and its clock is the wall clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
import json
from pathlib import Path
import signal
import socket
from typing import Any

import pytest

from dsmr_sim import Meter
from dsmr_sim.__main__ import _meter_factory, build_parser, main
from dsmr_sim.client import TelegramReader
from dsmr_sim.state import MAX_CATCH_UP, MeterState, StateError

from .helpers import finish, read_line, spawn

REGISTERS = (
    "ELECTRICITY_USED_TARIFF_1",
    "ELECTRICITY_USED_TARIFF_2",
    "ELECTRICITY_DELIVERED_TARIFF_1",
    "ELECTRICITY_DELIVERED_TARIFF_2",
)


def registers(telegram: Any) -> dict[str, Decimal]:
    """The cumulative registers of a DSMR 5 telegram, M-Bus meters by channel."""
    values = {name: getattr(telegram, name).value for name in REGISTERS}
    for device in telegram.MBUS_DEVICES:
        values[f"mbus{device.channel_id}"] = device.MBUS_METER_READING.value
    return values


def identifiers(telegram: Any) -> set[str]:
    """The electricity meter's and every M-Bus device's equipment identifier."""
    found = {telegram.EQUIPMENT_IDENTIFIER.value}
    return found | {d.MBUS_EQUIPMENT_IDENTIFIER.value for d in telegram.MBUS_DEVICES}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def simulator(*args: str, sig: int = signal.SIGTERM) -> AsyncIterator[TelegramReader]:
    """A DSMR 5 simulator (gas and water) as a subprocess, and a reader connected to it."""
    proc = await spawn("--dsmr-version", "5", "--mbus", "gas,water", "--interval", "0.05", *args)
    reader: TelegramReader | None = None
    try:
        kind, address = (await read_line(proc)).split(" ", 1)
        assert kind == "TCP"
        reader = await TelegramReader(f"socket://{address}", "5").connect()
        yield reader
    finally:
        if reader is not None:
            await reader.close()
        if sig == signal.SIGKILL:
            proc.kill()
            await proc.wait()
        else:
            await finish(proc, sig)


async def last_telegram(reader: TelegramReader, count: int = 5) -> Any:
    for _ in range(count - 1):
        await reader.next(timeout=10)
    return await reader.next(timeout=10)


def assert_not_backwards(before: dict[str, Decimal], after: dict[str, Decimal]) -> None:
    assert before.keys() == after.keys()
    backwards = {k: (before[k], after[k]) for k in before if after[k] < before[k]}
    assert not backwards, f"registers went backwards: {backwards}"


async def test_registers_continue_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "meter.json"
    async with simulator("--tcp", "127.0.0.1:0", "--state", str(state)) as reader:
        first_run = registers(await last_telegram(reader))
    # As if the simulator had been stopped two hours ago: it catches up through the house model.
    saved = json.loads(state.read_text())
    saved["saved_at"] = (datetime.fromisoformat(saved["saved_at"]) - timedelta(hours=2)).isoformat()
    state.write_text(json.dumps(saved))
    async with simulator("--tcp", "127.0.0.1:0", "--state", str(state)) as reader:
        telegram = await reader.next(timeout=10)
        second_run = registers(telegram)
        clock = telegram.P1_MESSAGE_TIMESTAMP.value
    assert_not_backwards(first_run, second_run)
    # Two hours of a house: gas and water used, and electricity drawn or fed in.
    assert second_run["mbus1"] > first_run["mbus1"]
    assert second_run["mbus2"] > first_run["mbus2"]
    assert sum(second_run[k] for k in REGISTERS) > sum(first_run[k] for k in REGISTERS)
    assert abs((clock - datetime.now(UTC)).total_seconds()) < 10


async def test_registers_are_saved_with_every_telegram(tmp_path: Path) -> None:
    """Even a killed simulator (no clean exit) does not go backwards at its next start."""
    state = tmp_path / "meter.json"
    async with simulator(
        "--tcp", "127.0.0.1:0", "--state", str(state), sig=signal.SIGKILL
    ) as reader:
        killed = registers(await last_telegram(reader, 10))
    async with simulator("--tcp", "127.0.0.1:0", "--state", str(state)) as reader:
        restarted = registers(await reader.next(timeout=10))
    assert_not_backwards(killed, restarted)


async def test_instances_on_other_ports_are_other_meters() -> None:
    ports = [free_port(), free_port()]
    seen = []
    for port in [*ports, ports[0]]:
        async with simulator("--tcp", f"127.0.0.1:{port}") as reader:
            seen.append(identifiers(await reader.next(timeout=10)))
    assert len(seen[0]) == len(seen[1]) == 3  # electricity, gas, water
    assert not seen[0] & seen[1]  # no identifier shared: HA keeps both meters' devices
    assert seen[2] == seen[0]  # the same port is the same meter after a restart


def test_the_seed_comes_from_the_endpoint_unless_given() -> None:
    def meter(*argv: str) -> Meter:
        args = build_parser().parse_args(["--mbus", "gas", *argv])
        return _meter_factory(args, datetime.now(UTC))()

    assert meter("--tcp", "127.0.0.1:2001").seed == 2001
    assert meter().seed == 2001  # the default endpoint
    assert meter("--tcp", "127.0.0.1:2001", "--seed", "7").seed == 7
    assert meter("--link", "/tmp/a").seed != meter("--link", "/tmp/b").seed
    assert meter("--pty").seed == 0
    one, two = meter("--tcp", "127.0.0.1:2001"), meter("--tcp", "127.0.0.1:2002")
    assert one.equipment_id != two.equipment_id
    assert one.house.mbus[0].identifier != two.house.mbus[0].identifier


async def test_the_meter_clock_is_the_wall_clock_unless_started_elsewhere() -> None:
    async with simulator("--tcp", "127.0.0.1:0") as reader:
        for _ in range(3):
            stamp = (await reader.next(timeout=10)).P1_MESSAGE_TIMESTAMP.value
            assert abs((stamp - datetime.now(UTC)).total_seconds()) < 5
    async with simulator("--tcp", "127.0.0.1:0", "--start", "2024-01-15T12:00") as reader:
        stamp = (await reader.next(timeout=10)).P1_MESSAGE_TIMESTAMP.value
        assert stamp.year == 2024
    async with simulator("--tcp", "127.0.0.1:0", "--step", "60") as reader:
        stamp = (await reader.next(timeout=10)).P1_MESSAGE_TIMESTAMP.value
        assert abs((stamp - datetime.now(UTC)).total_seconds()) < 120  # starts now, runs fast


def test_a_long_pause_catches_up_at_most_a_day(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # the house keeps whole milliseconds
    old = Meter("5", seed=3, start=now - timedelta(days=3), mbus=("gas", "water"))
    old.step(60)
    path = tmp_path / "meter.json"
    MeterState.of(old.house).save(path)
    args = build_parser().parse_args(["--mbus", "gas,water", "--state", str(path)])
    meter = _meter_factory(args, now)()
    assert meter.house.utc == now - MAX_CATCH_UP
    assert meter.house.import_kwh == old.house.import_kwh
    assert meter.house.mbus[0].value == old.house.mbus[0].value
    meter.step_to(now)
    assert meter.house.utc == now
    gas = meter.house.mbus[0].value - old.house.mbus[0].value
    assert 0 < gas < 30  # a day of a house's gas, in m3
    assert sum(meter.house.import_kwh) > sum(old.house.import_kwh)


def test_state_keeps_what_matches_the_meter(tmp_path: Path) -> None:
    path = tmp_path / "meter.json"
    gas_only = Meter("5B", seed=1, mbus=("gas",))
    gas_only.step(3600)
    MeterState.of(gas_only.house).save(path)
    state = MeterState.load(path)
    assert state is not None
    assert state.saved_at == gas_only.house.utc
    both = Meter("5B", seed=2, mbus=("gas", "water"))
    water = both.house.mbus[1].value
    state.apply(both.house)
    assert both.house.mbus[0].value == gas_only.house.mbus[0].value  # channel 1, gas: kept
    assert both.house.mbus[1].value == water  # no water meter was saved
    assert both.house.peak_history == gas_only.house.peak_history
    assert both.house.month_peak_kw == gas_only.house.month_peak_kw
    assert both.house.sags == gas_only.house.sags
    assert MeterState.load(tmp_path / "none.json") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Expecting property name"),
        ('{"format": 99}', "not a dsmr_sim state file"),
        ('{"format": 1}', "no valid saved_at"),
    ],
)
def test_a_bad_state_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "meter.json"
    path.write_text(text)
    with pytest.raises(StateError, match=message):
        MeterState.load(path)
    assert main(["--tcp", "127.0.0.1:0", "--state", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_state_that_does_not_fit_is_a_clear_error() -> None:
    meter = Meter("5")
    state = MeterState.of(meter.house)
    del state.data["import_kwh"]
    with pytest.raises(StateError, match="does not fit"):
        state.apply(Meter("5").house)


def test_state_and_start_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--tcp", "127.0.0.1:0", "--state", "x.json", "--start", "2024-01-01T00:00"]
    assert main(argv) == 2
    assert "cannot take --start" in capsys.readouterr().err


def test_step_to_never_goes_back() -> None:
    meter = Meter("5", start=datetime(2024, 1, 15, 12, 0))
    before = meter.house.utc
    meter.step_to(before - timedelta(hours=1))
    assert meter.house.utc == before
    calls: list[Meter] = []
    meter.on_step = calls.append
    meter.step_to(before + timedelta(seconds=10))
    assert meter.house.utc == before + timedelta(seconds=10)
    assert calls == [meter]
