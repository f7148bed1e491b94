"""scripts/develop as a developer uses it: started, stopped with Ctrl-C, started again (issue 15).

scripts/develop (a shell wrapper that finds Python and the .venv) runs `python -m
dsmr_dev.develop`; the test runs that as a real process with the Python of this test run (so a
run on another Home Assistant version tests that version), on a copy of
config/configuration.yaml in a temporary directory, on free ports (so it never meets a
developer's own instance). Both starts must show
live meter sensors whose registers keep growing across the restart; the second start must log
in instead of onboarding and log no traceback. Ctrl-C goes to the script's process group, as a
terminal sends it; the script must exit 0 and leave no process behind, also when Ctrl-C comes
while Home Assistant is still starting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from dsmr_dev.onboard import DevSetup

from .harness import (
    ROOT,
    E2EError,
    HassClient,
    async_wait_until,
    child_env,
    free_port,
    run_async,
    tail,
    wait_until,
)

DEVELOP = ROOT / "scripts" / "develop"
READY = re.compile(r"develop: Home Assistant on (http://127\.0\.0\.1:\d+) .*ready (\d+) s after")
# The meter's electricity registers: one of them grows whenever the house draws or feeds in.
REGISTERS = (
    "electricity_used_tariff_1",
    "electricity_used_tariff_2",
    "electricity_delivered_tariff_1",
    "electricity_delivered_tariff_2",
)
METERS = ("gas_meter_reading", "water_meter_reading")
POWER = "current_electricity_usage"
FIRST_START = 600.0  # s: a fresh machine installs FFmpeg, and Home Assistant pip-installs
LATER_START = 180.0
STOP = 30.0  # s from Ctrl-C to the script's exit
# The core repairs a development setup must not show (no country; "Core" installation method).
DEV_REPAIRS = {"country_not_configured", "deprecated_method"}


@dataclass
class Develop:
    """One `scripts/develop --config DIR --port P --meter-port M` process."""

    config: Path
    port: int
    meter_port: int
    runs: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    out: Path | None = None

    def start(self) -> None:
        self.runs += 1
        self.out = self.config.parent / f"develop-{self.runs}.out"
        args = [sys.executable, "-m", "dsmr_dev.develop", "--config", str(self.config)]
        args += ["--port", str(self.port), "--meter-port", str(self.meter_port)]
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(PYTHONPATH=str(ROOT / "scripts")),
                start_new_session=True,  # its own process group, like a terminal's job
            )

    def output(self) -> str:
        assert self.out is not None
        return self.out.read_text(errors="replace")

    def ready(self, timeout: float) -> tuple[str, int]:
        """Wait for "Home Assistant on URL ..., ready N s after its start"."""

        def probe() -> re.Match[str] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise E2EError(f"develop exited with {self.proc.returncode}:\n{self.tail()}")
            return READY.search(self.output())

        match = wait_until(probe, timeout, "scripts/develop to get Home Assistant ready", 0.5)
        return match[1], int(match[2])

    def interrupt(self) -> float:
        """Ctrl-C as a terminal sends it (SIGINT to the process group); seconds to the exit."""
        assert self.proc is not None
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(STOP)
        except subprocess.TimeoutExpired:
            raise E2EError(f"develop did not exit within {STOP:.0f} s of Ctrl-C") from None
        assert code == 0, f"develop exited with {code} after Ctrl-C:\n{self.tail()}"
        return time.monotonic() - started

    def tail(self) -> str:
        assert self.out is not None
        return tail(self.out, 80)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def leftovers(config: Path) -> list[str]:
    """Processes still running with this configuration directory on their command line."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(config) in text:
            found.append(f"{cmdline.parent.name}: {text}")
    return found


@pytest.fixture
def develop(tmp_path: Path) -> Iterator[Develop]:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "configuration.yaml", config)
    dev = Develop(config, free_port(), free_port())
    yield dev
    dev.kill()
    for pid_line in leftovers(config):  # never leave a process behind, even on failure
        os.kill(int(pid_line.split(":", 1)[0]), signal.SIGKILL)


async def _token(url: str) -> str:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        return await DevSetup(session, url).log_in()


async def _readings(api: HassClient) -> dict[str, Decimal]:
    """The meter's registers, once every one has a number."""
    registry = await api.entity_registry()
    ids = {
        e["translation_key"]: e["entity_id"]
        for e in registry
        if e["platform"] == "dsmr" and e.get("translation_key") in (*REGISTERS, *METERS)
    }

    async def probe() -> dict[str, Decimal] | None:
        values = {}
        for key in (*REGISTERS, *METERS):
            state = await api.state(ids[key]) if key in ids else None
            if state is None or state["state"] in {"unknown", "unavailable"}:
                return None
            values[key] = Decimal(state["state"])
        return values

    return await async_wait_until(probe, 60, "the meter's registers")


async def _live(url: str) -> tuple[dict[str, Decimal], list[dict[str, str]], int]:
    """The meter's registers, once its power sensor has published twice; the open repairs.

    Registers publish a grown value once per 5-minute statistics period, the power every 30 s
    (the defaults): the power shows the meter is live, the registers are compared across runs.
    Also returns the onboarding API's status: 200 (every step done) in the run that onboarded,
    404 (gone) in later runs.
    """
    async with HassClient(url, await _token(url)) as api:
        readings = await _readings(api)
        power = next(
            e["entity_id"]
            for e in await api.entity_registry()
            if e["platform"] == "dsmr" and e.get("translation_key") == POWER
        )
        first = await api.state(power)
        assert first is not None

        async def published() -> bool:
            state = await api.state(power)
            return state is not None and state["last_reported"] != first["last_reported"]

        await async_wait_until(published, 45, "the power sensor's next publication", 1.0)
        issues = (await api.ws("repairs/list_issues"))["issues"]
        open_issues = [i for i in issues if i["domain"] == "homeassistant" and not i["ignored"]]
        async with api.session.get(f"{url}/api/onboarding") as response:
            onboarding = response.status
            if onboarding == 200:
                assert all(step["done"] for step in await response.json())
    return readings, open_issues, onboarding


def assert_not_backwards(before: dict[str, Decimal], after: dict[str, Decimal]) -> None:
    backwards = {k: (before[k], after[k]) for k in before if after[k] < before[k]}
    assert not backwards, f"registers went backwards (before, after): {backwards}"


def test_develop_starts_twice_on_one_configuration(develop: Develop) -> None:
    develop.start()
    url, first_ready = develop.ready(FIRST_START)
    assert url == f"http://127.0.0.1:{develop.port}"
    assert "develop: onboarding: created the owner dev / dev" in develop.output()
    first, repairs, onboarding = run_async(_live(url))
    assert onboarding == 200
    assert not [i for i in repairs if i["issue_id"] in DEV_REPAIRS], repairs
    first_stop = develop.interrupt()
    assert leftovers(develop.config) == []

    develop.start()
    url, second_ready = develop.ready(LATER_START)
    output = develop.output()
    assert "already onboarded: logged in as dev" in output
    assert "onboarding: created" not in output
    again, repairs, onboarding = run_async(_live(url))
    assert onboarding == 404  # onboarded: Home Assistant no longer serves the onboarding API
    assert_not_backwards(first, again)  # the simulator continued its registers
    assert sum(again[k] for k in REGISTERS) > sum(first[k] for k in REGISTERS)
    assert not [i for i in repairs if i["issue_id"] in DEV_REPAIRS], repairs
    second_stop = develop.interrupt()
    assert leftovers(develop.config) == []
    log = (develop.config / "home-assistant.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]  # from the start to the stop
    assert "Traceback" not in develop.output(), develop.tail()
    print(  # for the report: scripts/test -s shows it
        f"develop: first start ready in {first_ready} s, stopped in {first_stop:.1f} s; "
        f"second start ready in {second_ready} s, stopped in {second_stop:.1f} s"
    )

    # Ctrl-C while Home Assistant is still starting (loading integrations): the script stops
    # it and exits 0 too.
    develop.start()
    wait_until(
        lambda: "custom integration dsmr" in develop.output(), 60, "Home Assistant to load dsmr"
    )
    early_stop = develop.interrupt()
    assert READY.search(develop.output()) is None
    assert leftovers(develop.config) == []
    print(f"develop: Ctrl-C during the start: exited in {early_stop:.1f} s")


def test_scripts_develop_hands_over_to_dsmr_dev() -> None:
    done = subprocess.run(
        [str(DEVELOP), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--meter-port" in done.stdout
