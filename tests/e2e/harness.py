"""Processes and clients for the end-to-end tests.

Everything here drives real programs the way a user's machine runs them:

* `Simulator` runs the meter simulator CLI (`python -m dsmr_sim`) as a subprocess and reads
  the endpoints it announces on stdout;
* `HassProcess` runs `python -m homeassistant --skip-pip -c DIR` (what the `hass` command
  runs) on a config directory of its own, on a free port on 127.0.0.1, and stops it with
  SIGTERM (SIGKILL if it hangs); `python` is `HASS_PYTHON`: the test harness's Home Assistant,
  or the newest release's venv when scripts/test runs the suite on it;
* `HassClient` talks to it over REST and the websocket API with aiohttp, as the frontend does;
* `onboard` completes onboarding through the onboarding REST API, as a new user does;
* `shift_recorder_history` moves everything the recorder stored back in time while `hass`
  is stopped, so that the recorder's catch-up compiles statistics at the next start (see
  its docstring).

Every wait is bounded; every process is stopped by whoever started it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import json
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from typing import Any, Self
import urllib.error
import urllib.request

import aiohttp

from dsmr_sim.meter import Meter

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
INTEGRATION = ROOT / "custom_components" / "dsmr"
ARTIFACTS = ROOT / "artifacts"

# The Python that runs `hass`: this interpreter (the test harness's Home Assistant), or the one
# scripts/test names to run the suite again on the newest release.
HASS_PYTHON = os.environ.get("DSMR_E2E_HASS_PYTHON") or sys.executable

USERNAME = "owner"
PASSWORD = "correct horse battery staple"

# Loggers whose errors fail a test (the integration, core's dsmr, and the parser they share).
DSMR_LOGGERS = ("custom_components.dsmr", "homeassistant.components.dsmr", "dsmr_parser")

# Home Assistant bounds each stage of its own shutdown (20 + 100 + 60 + 30 s) and logs a stage
# that overran, naming what still ran. `hass` is given that long to exit, not a shorter
# wall-clock limit that a loaded machine overruns; an overrun stage fails with that account.
STOP_TIMEOUT = 240.0
SHUTDOWN_OVERRUN = re.compile(
    r"Timed out waiting for (shutdown jobs|integrations to stop|final writes|close event)"
    r"|Shutdown stage '|still running after final writes|could not be canceled during final"
)


class E2EError(AssertionError):
    """Something in the end-to-end setup did not behave (carries the relevant log)."""


_RECORD_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (?P<level>[A-Z]+) \([^)]*\) \[(?P<logger>[^\]]+)\]"
)
_DSMR_PATHS = ("custom_components/dsmr/", "components/dsmr/", "dsmr_parser/")


def log_records(text: str) -> list[str]:
    """Split Home Assistant's log into records (a header line and its continuation lines)."""
    records: list[str] = []
    for line in text.splitlines():
        if _RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return records


def dsmr_error(record: str) -> bool:
    """Whether a log record is an error of dsmr code (see `HassProcess.dsmr_errors`)."""
    match = _RECORD_START.match(record)
    if match is None:
        return False
    if match["level"] in {"ERROR", "CRITICAL"} and match["logger"].startswith(DSMR_LOGGERS):
        return True
    return "Traceback" in record and any(path in record for path in _DSMR_PATHS)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours, without coverage or pytest hooks.

    Nor our PYTHONPATH (scripts/run puts the project root on it): with the root on its path a
    Home Assistant without custom_components/dsmr in its configuration would import ours from
    the root, not run core's `dsmr`. A child that needs a path is given one.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COV_CORE_", "COVERAGE_", "PYTEST_")) and key != "PYTHONPATH"
    }
    env.update(extra)
    return env


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"<no {path.name}>"
    return "\n".join(text.splitlines()[-lines:])


def run_async[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code (fixtures), on a loop of its own.

    The loop lives in a worker thread, so the main thread's event loop state, which
    pytest-asyncio manages for the tests, is left alone.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="e2e-run-async") as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_until[T](
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Call `probe` until it returns something other than None/False; bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise E2EError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


async def async_wait_until[T](
    probe: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.25
) -> T:
    """Await `probe` until it returns something other than None/False; bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise E2EError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


# --- the meter simulator -------------------------------------------------------------------


@dataclass
class Simulator:
    """`python -m dsmr_sim` in a subprocess: a TCP endpoint, a pty behind a symlink, or both."""

    workdir: Path
    seed: int
    version: str = "5"
    tcp_port: int | None = 0  # None: no TCP endpoint; 0: any free port
    link: Path | None = None  # a pty, reachable through this symlink
    mbus: str = "gas,water"
    interval: float = 1.0
    faults: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int | None = None  # the TCP port it listens on
    pty: str | None = None  # the pty's device path
    _out: Path | None = field(default=None, repr=False)
    _runs: int = field(default=0, repr=False)

    @property
    def name(self) -> str:
        """A short name for files and messages."""
        return f"sim{self.seed}"

    def start(self, timeout: float = 20.0) -> Self:
        """Start the CLI and wait until it announced every endpoint it was asked for."""
        if self.proc is not None:
            raise E2EError(f"{self.name} is running already")
        self._runs += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._out = self.workdir / f"{self.name}-{self._runs}.out"
        # The same meter in this process: tests/leaks.py learns its identifiers, which must not
        # show in the Home Assistant logs.
        with contextlib.suppress(ValueError):  # (an encrypted one needs its key: not used here)
            Meter(self.version, seed=self.seed, mbus=tuple(filter(None, self.mbus.split(","))))
        err = self.workdir / f"{self.name}-{self._runs}.err"
        args = [sys.executable, "-m", "dsmr_sim", "--dsmr-version", self.version]
        args += ["--seed", str(self.seed), "--interval", str(self.interval), "--mbus", self.mbus]
        if self.tcp_port is not None:
            args += ["--tcp", f"{self.host}:{self.tcp_port}"]
        if self.link is not None:
            args += ["--link", str(self.link)]
        for fault in self.faults:
            args += ["--fault", fault]
        with self._out.open("wb") as out, err.open("wb") as errors:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=errors,
                stdin=subprocess.DEVNULL,
                env=child_env(PYTHONPATH=str(SCRIPTS)),
                cwd=self.workdir,
            )

        def announced() -> dict[str, str] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise E2EError(
                    f"{self.name} exited with {self.proc.returncode}: {' '.join(args)}\n{tail(err)}"
                )
            lines = self._announcements()
            wanted = {"TCP"} if self.tcp_port is not None else set()
            wanted |= {"LINK", "PTY"} if self.link is not None else set()
            return lines if wanted <= lines.keys() else None

        try:
            lines = wait_until(announced, timeout, f"{self.name} to announce its endpoints")
        except BaseException:
            self.stop()
            raise
        if "TCP" in lines:
            self.host, _, port = lines["TCP"].rpartition(":")
            self.port = int(port)
            self.tcp_port = self.port  # a restart serves the same port again
        self.pty = lines.get("PTY")
        return self

    def _announcements(self) -> dict[str, str]:
        assert self._out is not None
        found: dict[str, str] = {}
        for line in self._out.read_text(errors="replace").splitlines():
            kind, _, value = line.partition(" ")
            if kind in {"TCP", "PTY", "LINK"} and value:
                found[kind] = value.strip()
        return found

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (then SIGKILL); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def restart(self, *, faults: tuple[str, ...] | None = None) -> Self:
        """Stop and start again on the same TCP port / link (optionally with other faults)."""
        self.stop()
        if faults is not None:
            self.faults = faults
        return self.start()


# --- Home Assistant ------------------------------------------------------------------------


BASE_CONFIGURATION = """\
# Written by tests/e2e: the integrations a user's default setup brings that these tests use.
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
auth:
config:
onboarding:
websocket_api:
energy:
history:
recorder:
  commit_interval: 1
logger:
  default: info
  logs:
    custom_components.dsmr: debug
    homeassistant.components.dsmr: debug
"""


# Onboarding's core-config step sets up met (weather) and radio_browser, which go to the
# internet at once (and radio_browser holds up every start while its lookups time out). The
# machines these tests run on are offline, so a stub of the same domain in custom_components
# takes their place: its config flow declines. Nothing else about onboarding changes.
OFFLINE_STUBS = ("met", "radio_browser")
STUB_FLOW = """\
\"\"\"Offline stub (tests/e2e): declines to be set up.\"\"\"

from homeassistant.config_entries import ConfigFlow


class StubFlow(ConfigFlow, domain="{domain}"):
    \"\"\"Abort every flow.\"\"\"

    async def async_step_onboarding(self, data=None):
        \"\"\"Onboarding's automatic set-up.\"\"\"
        return self.async_abort(reason="offline")

    async def async_step_user(self, user_input=None):
        \"\"\"A user's attempt.\"\"\"
        return self.async_abort(reason="offline")
"""


@dataclass
class HassProcess:
    """One `hass` on its own config directory and port."""

    config_dir: Path
    label: str
    port: int = field(default_factory=free_port)
    token: str | None = None
    refresh_token: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    # dsmr errors logged by runs that have ended (each start rotates home-assistant.log).
    past_errors: list[str] = field(default_factory=list)
    # What `hass` is started with: a command to run it through (e.g. one that gives it a
    # private /etc/hosts) and extra environment variables.
    launcher: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Home Assistant's own log (rewritten at every start; older runs in .1)."""
        return self.config_dir / "home-assistant.log"

    @property
    def out_file(self) -> Path:
        """Everything the process printed, over all its runs."""
        return self.config_dir / "hass.out"

    @property
    def fault_file(self) -> Path:
        """Where Home Assistant's faulthandler writes the threads' stacks on a fatal signal."""
        return self.config_dir / "home-assistant.log.fault"

    @property
    def db_file(self) -> Path:
        """The recorder's SQLite database."""
        return self.config_dir / "home-assistant_v2.db"

    def write_configuration(self, extra: str = "") -> None:
        """Write configuration.yaml (the base integrations and `extra`) and the offline stubs."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            BASE_CONFIGURATION.format(port=self.port) + extra
        )
        for domain in OFFLINE_STUBS:
            stub = self.config_dir / "custom_components" / domain
            stub.mkdir(parents=True, exist_ok=True)
            (stub / "manifest.json").write_text(
                json.dumps(
                    {
                        "domain": domain,
                        "name": f"{domain} (stub: the e2e tests run offline)",
                        "version": "0.0.0",
                        "config_flow": True,
                        "documentation": "https://example.invalid",
                        "codeowners": [],
                        "iot_class": "local_push",
                    }
                )
            )
            (stub / "__init__.py").write_text('"""Offline stub (tests/e2e)."""\n')
            (stub / "config_flow.py").write_text(STUB_FLOW.format(domain=domain))

    def install_integration(self) -> None:
        """Copy custom_components/dsmr into the config, as HACS or a manual install does."""
        target = self.config_dir / "custom_components" / "dsmr"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(INTEGRATION, target, ignore=shutil.ignore_patterns("__pycache__"))

    def start(self, timeout: float = 120.0) -> None:
        """Start `hass --skip-pip` and wait until its API answers and it is RUNNING."""
        if self.proc is not None:
            raise E2EError(f"hass {self.label} is running already")
        self.starts += 1
        self.config_dir.mkdir(parents=True, exist_ok=True)
        args = [*self.launcher, HASS_PYTHON, "-m", "homeassistant", "--skip-pip"]
        args += ["--log-no-color", "--config", str(self.config_dir)]
        with self.out_file.open("ab") as out:
            out.write(f"\n===== start {self.starts}: {' '.join(args)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(**self.env),
                cwd=self.config_dir,
            )
        try:
            self.wait_running(timeout)
        except BaseException:
            self.stop(check=False)
            raise

    def _alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise E2EError(
                f"hass {self.label} is not running (exit {code}):\n{tail(self.out_file)}"
            )

    def http_json(
        self, method: str, path: str, body: Any = None, *, auth: bool = True
    ) -> tuple[int, Any]:
        """A blocking REST call (for setup code outside an event loop)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def wait_running(self, timeout: float = 120.0) -> None:
        """Wait until the API answers: onboarding before it is done, then core state RUNNING."""
        last: list[object] = ["no answer"]

        def probe() -> bool:
            self._alive()
            try:
                if self.token is None:  # not onboarded: the onboarding API is what answers
                    status, body = self.http_json("GET", "/api/onboarding", auth=False)
                    last[0] = (status, body)
                    return status == 200
                status, body = self.http_json("GET", "/api/config")
                last[0] = (status, body if status != 200 else body.get("state"))
            except OSError as err:
                last[0] = err
                return False
            return status == 200 and body.get("state") == "RUNNING"

        try:
            wait_until(probe, timeout, f"hass {self.label} to start", interval=0.25)
        except E2EError as err:
            raise E2EError(f"{err}; last answer: {last[0]!r}\n{tail(self.log_file)}") from None

    def stop(self, timeout: float = STOP_TIMEOUT, *, check: bool = True) -> int | None:
        """SIGTERM, wait for the exit (SIGABRT after `timeout`); with `check`, insist on 0.

        With `check`, a shutdown stage that Home Assistant reports as overrun fails too.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Home Assistant's faulthandler writes every thread's stack to the fault file.
                proc.send_signal(signal.SIGABRT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
                if check:
                    raise E2EError(
                        f"hass {self.label} did not stop within {timeout:.0f} s of SIGTERM:\n"
                        f"{tail(self.log_file)}\nIts threads then:\n{tail(self.fault_file, 200)}"
                    ) from None
        self.exit_codes.append(proc.returncode)
        self.past_errors += [f"[run {self.starts}] {error}" for error in self._log_errors()]
        if check and proc.returncode != 0:
            raise E2EError(
                f"hass {self.label} exited with {proc.returncode}:\n{tail(self.out_file)}"
            )
        overruns = [line for line in self.log_text().splitlines() if SHUTDOWN_OVERRUN.search(line)]
        if check and overruns:
            raise E2EError(f"hass {self.label} overran its shutdown:\n" + "\n".join(overruns))
        return proc.returncode

    def wait_exit(self, timeout: float = 60.0) -> int:
        """Wait for `hass` to exit by itself (a restart from its UI exits with 100)."""
        proc = self.proc
        if proc is None:
            raise E2EError(f"hass {self.label} is not running")
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise E2EError(f"hass {self.label} did not exit within {timeout:.0f} s") from None
        self.proc = None
        self.exit_codes.append(code)
        self.past_errors += [f"[run {self.starts}] {error}" for error in self._log_errors()]
        return code

    def restart(self, before_start: Callable[[], None] | None = None) -> None:
        """Stop (must exit cleanly), run `before_start` while stopped, start again."""
        self.stop()
        if before_start is not None:
            before_start()
        self.start()

    def log_text(self) -> str:
        """Home Assistant's log of the current (or last) run."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def dsmr_errors(self) -> list[str]:
        """Errors of dsmr code logged so far, by this run and the runs before it.

        An ERROR/CRITICAL record from a dsmr logger, or any record whose traceback runs
        through the integration, core's dsmr or dsmr_parser (e.g. "Task exception was never
        retrieved"). Other integrations' errors (this venv lacks ffmpeg, turbojpeg, ... as
        `--skip-pip` keeps their requirements out) are not ours.
        """
        return self.past_errors + (self._log_errors() if self.proc is not None else [])

    def _log_errors(self) -> list[str]:
        return [record[:3000] for record in log_records(self.log_text()) if dsmr_error(record)]

    def save_logs(self) -> None:
        """Copy the logs to artifacts/e2e/<label>/ (for CI)."""
        target = ARTIFACTS / "e2e" / self.label
        target.mkdir(parents=True, exist_ok=True)
        previous = self.config_dir / "home-assistant.log.1"
        for path in (
            self.log_file,
            previous,
            self.out_file,
            self.fault_file,
            self.config_dir / "configuration.yaml",
        ):
            if path.exists():
                shutil.copy2(path, target / path.name)

    def onboard(self) -> None:
        """Complete onboarding through the API (see `onboard`); keeps the tokens."""
        tokens = run_async(onboard(self.url))
        self.token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        self.wait_running()

    def client(self) -> HassClient:
        """An API client (use as `async with hass.client() as api:`)."""
        if self.token is None:
            raise E2EError("not onboarded: no token")
        return HassClient(self.url, self.token)


# --- REST and websocket clients ------------------------------------------------------------


class ApiError(AssertionError):
    """A REST or websocket call that did not succeed."""


class HassClient:
    """REST and websocket access with a bearer token, over one aiohttp session."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        """Create the client; the session opens in `__aenter__`."""
        self.url = url
        self.token = token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}

    async def __aenter__(self) -> Self:
        """Open the HTTP session."""
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the websocket (if any) and the session."""
        await self.close()

    async def close(self) -> None:
        """Close everything this client opened."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open HTTP session."""
        if self._session is None:
            raise ApiError("client is not open")
        return self._session

    # REST

    async def request(
        self, method: str, path: str, body: Any = None, *, expect: Iterable[int] = (200, 201)
    ) -> Any:
        """Call the REST API; fail unless the status is one of `expect`; return the JSON."""
        async with self.session.request(method, self.url + path, json=body) as response:
            text = await response.text()
            if response.status not in set(expect):
                raise ApiError(f"{method} {path} -> {response.status}: {text[:2000]}")
            return json.loads(text) if text else None

    async def get(self, path: str, **kwargs: Any) -> Any:
        """GET `path`."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        """POST JSON to `path`."""
        return await self.request("POST", path, body, **kwargs)

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        """GET /api/states/<entity_id>, or None if there is no such state."""
        async with self.session.get(f"{self.url}/api/states/{entity_id}") as response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise ApiError(f"GET state {entity_id} -> {response.status}")
            state: dict[str, Any] = await response.json()
            return state

    # config flows, as the frontend drives them

    async def flow_start(self, handler: str) -> dict[str, Any]:
        """Start a config flow (Settings -> Add integration -> `handler`)."""
        result: dict[str, Any] = await self.post(
            "/api/config/config_entries/flow",
            {"handler": handler, "show_advanced_options": False},
        )
        return result

    async def flow_next(self, flow_id: str, user_input: dict[str, Any]) -> dict[str, Any]:
        """Submit a form, or a menu choice as {"next_step_id": ...}."""
        result: dict[str, Any] = await self.post(
            f"/api/config/config_entries/flow/{flow_id}", user_input
        )
        return result

    async def entries(self, domain: str = "dsmr") -> list[dict[str, Any]]:
        """Config entries of a domain (REST, as the integrations page loads them)."""
        result: list[dict[str, Any]] = await self.get(
            f"/api/config/config_entries/entry?domain={domain}"
        )
        return result

    # websocket

    async def ws_connect(self) -> None:
        """Open and authenticate the websocket (once)."""
        if self._ws is not None:
            return
        ws = await self.session.ws_connect(f"{self.url}/api/websocket", heartbeat=None)
        hello = await ws.receive_json(timeout=10)
        if hello.get("type") != "auth_required":
            raise ApiError(f"websocket: unexpected greeting {hello}")
        await ws.send_json({"type": "auth", "access_token": self.token})
        answer = await ws.receive_json(timeout=10)
        if answer.get("type") != "auth_ok":
            raise ApiError(f"websocket auth failed: {answer}")
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws), name="e2e websocket reader")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(message.data)
                for item in data if isinstance(data, list) else [data]:
                    if item.get("type") == "result":
                        future = self._pending.pop(item["id"], None)
                        if future is not None and not future.done():
                            future.set_result(item)
                    elif item.get("type") == "event" and item["id"] in self._events:
                        self._events[item["id"]].put_nowait(item["event"])
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ApiError("websocket closed"))
            self._pending.clear()

    async def _send(self, payload: dict[str, Any]) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        await self.ws_connect()
        assert self._ws is not None
        self._next_id += 1
        msg_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send_json({"id": msg_id, **payload})
        return msg_id, future

    async def ws_answer(self, command: str, **payload: Any) -> dict[str, Any]:
        """Run a websocket command; return the whole answer (`success`, `result` or `error`)."""
        _, future = await self._send({"type": command, **payload})
        async with asyncio.timeout(self.timeout):
            return await future

    async def ws(self, command: str, **payload: Any) -> Any:
        """Run a websocket command; return its result or raise ApiError."""
        answer = await self.ws_answer(command, **payload)
        if not answer.get("success"):
            raise ApiError(f"websocket {command} failed: {answer.get('error')}")
        return answer.get("result")

    async def subscribe(self, command: str, **payload: Any) -> asyncio.Queue[dict[str, Any]]:
        """Subscribe (e.g. `subscribe_entities`); events arrive on the returned queue."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        msg_id, future = await self._send({"type": command, **payload})
        self._events[msg_id] = queue
        async with asyncio.timeout(self.timeout):
            answer = await future
        if not answer.get("success"):
            raise ApiError(f"websocket {command} failed: {answer.get('error')}")
        return queue

    # registries

    async def entity_registry(self) -> list[dict[str, Any]]:
        """config/entity_registry/list."""
        result: list[dict[str, Any]] = await self.ws("config/entity_registry/list")
        return result

    async def device_registry(self) -> list[dict[str, Any]]:
        """config/device_registry/list."""
        result: list[dict[str, Any]] = await self.ws("config/device_registry/list")
        return result


async def onboard(url: str, username: str = USERNAME, password: str = PASSWORD) -> dict[str, Any]:
    """Onboard a fresh Home Assistant through its API, in the order the frontend does.

    Creates the owner (which answers with an authorization code), exchanges the code for
    tokens at /auth/token, sets the location like the frontend's core-config step (websocket
    `config/core/update`), then finishes the core config, analytics and integration steps.
    """
    client_id = f"{url}/"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def post(path: str, body: Any, token: str | None = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.post(url + path, json=body, headers=headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise ApiError(f"POST {path} -> {response.status}: {text}")
                return json.loads(text) if text else None

        async with session.get(url + "/api/onboarding") as response:
            steps = await response.json()
        if [step["step"] for step in steps if not step["done"]][:1] != ["user"]:
            raise ApiError(f"onboarding does not start with the user step: {steps}")
        created = await post(
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": "E2E Owner",
                "username": username,
                "password": password,
                "language": "en",
            },
        )
        async with session.post(
            url + "/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": created["auth_code"],
                "client_id": client_id,
            },
        ) as response:
            if response.status != 200:
                raise ApiError(f"/auth/token -> {response.status}: {await response.text()}")
            tokens: dict[str, Any] = await response.json()
        token = tokens["access_token"]
        async with HassClient(url, token) as api:
            await api.ws(
                "config/core/update",
                country="NL",
                currency="EUR",
                language="en",
                time_zone="Europe/Amsterdam",
                unit_system="metric",
                latitude=52.37,
                longitude=4.89,
                elevation=0,
            )
        await post("/api/onboarding/core_config", {}, token)
        await post("/api/onboarding/analytics", {}, token)
        await post(
            "/api/onboarding/integration",
            {"client_id": client_id, "redirect_uri": f"{url}/?auth_callback=1"},
            token,
        )
        async with session.get(url + "/api/onboarding") as response:
            steps = await response.json()
        if not all(step["done"] for step in steps):
            raise ApiError(f"onboarding not complete: {steps}")
        # Home Assistant 2026.10 moves `http:` from YAML into storage as a trial ("pending")
        # config that reverts, with a restart, to the defaults (port 8123, all interfaces)
        # unless confirmed within 5 minutes; the frontend asks the user to confirm. Confirm.
        async with HassClient(url, token) as api:
            await api.ws("http/config/promote")
            http_config = await api.ws("http/config")
        if "127.0.0.1" not in json.dumps(http_config) or http_config.get("pending"):
            raise ApiError(f"unexpected HTTP config after confirming it: {http_config}")
    return tokens


# --- the meter's entities ------------------------------------------------------------------


def entities_of(registry: list[dict[str, Any]], entry_id: str) -> dict[str, dict[str, Any]]:
    """The entity registry entries of one config entry, by entity id."""
    return {e["entity_id"]: e for e in registry if e.get("config_entry_id") == entry_id}


def entity_by_unique_suffix(registry: list[dict[str, Any]], entry_id: str, suffix: str) -> str:
    """The entity id of the entry's entity whose unique id ends with `suffix`."""
    found = [
        e["entity_id"]
        for e in entities_of(registry, entry_id).values()
        if e["unique_id"].endswith(suffix)
    ]
    if len(found) != 1:
        raise E2EError(f"expected one entity with unique id *{suffix} in {entry_id}: {found}")
    return found[0]


def entity_by_translation_key(
    registry: list[dict[str, Any]], entry_id: str, translation_key: str
) -> str:
    """The entity id of the entry's entity with this translation key."""
    found = [
        e["entity_id"]
        for e in entities_of(registry, entry_id).values()
        if e.get("translation_key") == translation_key
    ]
    if len(found) != 1:
        raise E2EError(f"expected one {translation_key} entity in {entry_id}: {found}")
    return found[0]


def duplicated_entity_ids(entity_ids: Iterable[str]) -> list[str]:
    """Entity ids that Home Assistant numbered because their plain id was taken (`x_2` for x)."""
    taken = set(entity_ids)
    return sorted(
        entity_id
        for entity_id in taken
        if (match := re.fullmatch(r"(.+)_(\d+)", entity_id)) and match[1] in taken
    )


def registry_snapshot(
    entities: list[dict[str, Any]], devices: list[dict[str, Any]], domain: str = "dsmr"
) -> dict[str, Any]:
    """What must not change across a restart or a migration: ids, unique ids, devices."""
    mine = [e for e in entities if e["platform"] == domain]
    device_ids = {e["device_id"] for e in mine}
    return {
        "entities": sorted(
            (e["entity_id"], e["unique_id"], e["device_id"] or "", e["config_entry_id"] or "")
            for e in mine
        ),
        "devices": sorted(
            (d["id"], json.dumps(sorted(map(tuple, d["identifiers"]))), d["name"] or "")
            for d in devices
            if d["id"] in device_ids or any(i[0] == domain for i in d["identifiers"])
        ),
    }


# --- recorder time travel ------------------------------------------------------------------

_TS_COLUMNS = {
    "states": ("last_updated_ts", "last_changed_ts", "last_reported_ts"),
    "events": ("time_fired_ts",),
    "statistics": ("start_ts", "created_ts", "last_reset_ts"),
    "statistics_short_term": ("start_ts", "created_ts", "last_reset_ts"),
}
_DATETIME_COLUMNS = {
    "recorder_runs": ("start", "end", "created"),
    "statistics_runs": ("start",),
}


def shift_recorder_history(db_file: Path, minutes: float) -> None:
    """Move everything the recorder stored `minutes` into the past (`hass` must be stopped).

    The recorder compiles 5-minute statistics at :x0:10 and :x5:10 wall-clock time, and at
    start-up it compiles every 5-minute period that ended since its last compile run. No API
    forces a compile, and waiting for one takes up to 5 minutes. So the tests let time pass
    while `hass` is down: states, events, statistics and the recorder's own run bookkeeping
    all move back by the same amount, as if `hass` had been stopped that long ago. The next
    start then compiles the periods that hold these states, with the recorder's own code.
    Keep `minutes` a multiple of 5 (at least 15) so 5-minute periods stay aligned and every
    shifted state falls into a period that has ended.
    """
    delta = minutes * 60
    with contextlib.closing(sqlite3.connect(db_file)) as db, db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in _TS_COLUMNS.items():
            if table not in tables:
                continue
            for column in columns:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = "{column}" - ? '
                    f'WHERE "{column}" IS NOT NULL',
                    (delta,),
                )
        for table, columns in _DATETIME_COLUMNS.items():
            if table not in tables:
                continue
            for column in columns:
                rows = db.execute(
                    f'SELECT rowid, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'
                ).fetchall()
                for rowid, value in rows:
                    moved = datetime.fromisoformat(value) - timedelta(seconds=delta)
                    db.execute(
                        f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?',
                        (moved.strftime("%Y-%m-%d %H:%M:%S.%f"), rowid),
                    )
