"""scripts/develop: a real Home Assistant with this integration and a simulated meter.

    python -m dsmr_dev.develop [--config DIR] [--port N] [--meter-port N]

Starts the project's meter simulator (DSMR 5 with gas and water on M-Bus, its registers kept in
DIR/.dsmr_sim/ so they continue across restarts) and `hass -c DIR`, with custom_components
linked into DIR; then onboards Home Assistant (first start: owner dev / dev) or logs in
(every later start). Ctrl-C (SIGINT) or SIGTERM at any moment stops Home Assistant, then the
simulator, and exits 0; a second Ctrl-C kills what still runs. Home Assistant restarting (the
UI's Restart: exit code 100) is started again; exiting otherwise ends the script with its code.

The meter is configured by DIR/configuration.yaml (config/'s is copied into a DIR without one),
which reads the simulator's port from DSMR_DEV_METER_PORT (set here). Home Assistant takes its
HTTP port from SETUP_PORT on its first start and keeps it in DIR/.storage/http. DSMR_SIM_ARGS
adds simulator options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
from pathlib import Path
import shlex
import shutil
import signal
import sys
import time

import aiohttp
from homeassistant.const import RESTART_EXIT_CODE

from .installer import (
    SERVICE_BASE_COMPONENTS,
    InstallError,
    ensure_media_tools,
    ensure_requirements,
)
from .onboard import PASSWORD, USERNAME, SetupError, prepare, say

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 60.0  # s for Home Assistant to stop after SIGTERM before it is killed
SIM_STOP_TIMEOUT = 10.0


def build_parser() -> argparse.ArgumentParser:
    """The command line (its --help is scripts/develop's documentation)."""
    parser = argparse.ArgumentParser(
        prog="scripts/develop",
        description="Home Assistant with this integration and a simulated DSMR 5 meter.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "config",
        help="Home Assistant's configuration directory (default: config/)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8123,
        help="Home Assistant's HTTP port, taken at its first start (default 8123)",
    )
    parser.add_argument(
        "--meter-port", type=int, default=2001, help="the simulated meter's TCP port (default 2001)"
    )
    return parser


def http_port(config: Path, wanted: int) -> int:
    """The port Home Assistant will listen on: the one it stored at its first start, if any."""
    try:
        stored = json.loads((config / ".storage" / "http").read_text())["data"]["stable"]
        port = int(stored["server_port"])
    except OSError, ValueError, KeyError, TypeError:
        return wanted
    if port != wanted:
        say(f"Home Assistant keeps the HTTP port of its first start: {port} (not {wanted})")
    return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM if this script dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def _spawn(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    # A session of its own: a terminal's Ctrl-C reaches this script only, which then stops
    # Home Assistant before the meter (Home Assistant would log the meter going away).
    return await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


async def _stop(proc: asyncio.subprocess.Process, grace: float, hurry: asyncio.Event) -> None:
    """SIGTERM, then SIGKILL after ``grace`` s or when ``hurry`` is set (a second Ctrl-C)."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    waiting = asyncio.ensure_future(proc.wait())
    hurried = asyncio.ensure_future(hurry.wait())
    await asyncio.wait({waiting, hurried}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    hurried.cancel()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await waiting


class Develop:
    """The simulator and Home Assistant, started and stopped together."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Prepare the configuration directory; nothing runs yet."""
        self.config: Path = args.config.resolve()
        self.meter_port: int = args.meter_port
        self.config.mkdir(parents=True, exist_ok=True)
        if not (self.config / "configuration.yaml").exists():
            shutil.copy(ROOT / "config" / "configuration.yaml", self.config)
        link = self.config / "custom_components"
        if not link.exists():
            link.symlink_to(os.path.relpath(ROOT / "custom_components", self.config))
        self.url = f"http://127.0.0.1:{http_port(self.config, args.port)}"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT / "scripts"), os.environ.get("PYTHONPATH")])
            ),
            "DSMR_DEV_METER_PORT": str(args.meter_port),
            "SETUP_PORT": str(args.port),
        }
        self.stop, self.hurry = asyncio.Event(), asyncio.Event()
        self.sim: asyncio.subprocess.Process | None = None
        self.hass: asyncio.subprocess.Process | None = None

    def on_signal(self) -> None:
        """Ctrl-C / SIGTERM: stop; a second one: do not wait for anything."""
        if self.stop.is_set():
            self.hurry.set()
        self.stop.set()

    async def run(self) -> int:
        """Start both, get Home Assistant ready, wait; stop both. Returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal)
        try:
            self.sim = await _spawn(
                sys.executable,
                "-m",
                "dsmr_sim",
                *("--dsmr-version", "5", "--tcp", f"127.0.0.1:{self.meter_port}"),
                *("--mbus", "gas,water", "--interval", "1"),
                *("--state", str(self.config / ".dsmr_sim" / f"meter-{self.meter_port}.json")),
                *shlex.split(os.environ.get("DSMR_SIM_ARGS", "")),
                env=self.env,
            )
            while (code := await self._serve()) == RESTART_EXIT_CODE:
                say("Home Assistant restarts")
            return code
        finally:
            if self.hass is not None:
                await _stop(self.hass, STOP_TIMEOUT, self.hurry)
            if self.sim is not None:
                await _stop(self.sim, SIM_STOP_TIMEOUT, self.hurry)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _serve(self) -> int:
        """Run Home Assistant once: until a signal, or until it or the simulator exits."""
        assert self.sim is not None
        started = time.monotonic()
        self.hass = hass = await _spawn(
            sys.executable, "-m", "homeassistant", "--config", str(self.config), env=self.env
        )
        stopped = asyncio.ensure_future(self.stop.wait())
        hass_exit = asyncio.ensure_future(hass.wait())
        sim_exit = asyncio.ensure_future(self.sim.wait())
        ready = asyncio.ensure_future(prepare(self.url, lambda: hass.returncode is None))
        tasks = waiting = {stopped, hass_exit, sim_exit, ready}
        try:
            while True:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopped in done:
                    say("stopping")
                    return 0
                if hass_exit in done:
                    if hass.returncode != RESTART_EXIT_CODE:
                        say(f"Home Assistant exited with {hass.returncode}")
                    return hass.returncode or 0
                if sim_exit in done:
                    say(f"the meter simulator exited with {self.sim.returncode}; stopping")
                    return self.sim.returncode or 1
                if ready in done:
                    try:
                        ready.result()
                    except (SetupError, aiohttp.ClientError, TimeoutError, KeyError) as err:
                        # Home Assistant runs on; say what went wrong
                        say(f"could not get Home Assistant ready: {err}")
                    say(
                        f"Home Assistant on {self.url} (user {USERNAME}, password {PASSWORD}), "
                        f"ready {time.monotonic() - started:.0f} s after its start; Ctrl-C stops"
                    )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    """Install what is missing, then run; Ctrl-C while installing exits 0 too."""
    args = build_parser().parse_args(argv)
    try:
        # The frontend, and what its service list imports (voice packages built from source).
        ensure_requirements(("frontend", *SERVICE_BASE_COMPONENTS))
        try:
            ensure_media_tools()
        except InstallError as err:
            say(f"{err}; Home Assistant will log tracebacks for FFmpeg and libturbojpeg")
        return asyncio.run(Develop(args).run())
    except KeyboardInterrupt:
        say("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
