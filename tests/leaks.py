"""Pytest plugin: the log of the whole test session holds no key and no equipment identifier.

Every record of every logger (the simulator's own excepted: it is the meter, and its test-side
reader stands for other software) is checked
as it is emitted, its traceback included, against the secrets the session knows of: every key
and identifier of every simulated meter (registered when the meter is made, as sent and as
text) and every 32-hex-digit key written in a test module. The loggers that Home Assistant's
"Enable debug logging" turns on for the integration log at DEBUG for the whole session, so
their debug lines are checked too. At the end of the session
any leak fails the run (exit status 1, the offending records listed with the secret masked); so
does a check that saw no record at all (its handler gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import contextlib
import json
import logging
from pathlib import Path
import re
from typing import Any

import pytest

from dsmr_sim.client import TelegramReader
from dsmr_sim.meter import Meter

MANIFEST = Path(__file__).parents[1] / "custom_components/dsmr/manifest.json"
# At DEBUG for the whole session: what Home Assistant's "Enable debug logging" button turns on
# for this integration (its own logger and the manifest's `loggers`).
DEBUG_LOGGERS = ("custom_components.dsmr", *json.loads(MANIFEST.read_text())["loggers"])
# The simulator logs what a meter sends (its identifiers): it is not what is tested here.
NOT_CHECKED = ("dsmr_sim",)


# Core `dsmr` run side by side (tests/parity.py): its reader is dsmr_parser's stock protocol,
# which logs every telegram it receives at debug, identifiers and all. That is core's behaviour
# (one of the reasons to switch), not ours: while core runs, its and dsmr_parser's records are
# not checked.
CORE = ("homeassistant.components.dsmr", "dsmr_parser")
HARNESS_STORAGE = "pytest_homeassistant_custom_component.common"


def not_ours(record: logging.LogRecord) -> bool:
    """Records that are not the integration's to keep clean.

    The simulator's; core `dsmr`'s and dsmr_parser's while core runs; asyncio's debug-mode note
    of a slow step ("Executing <Task ... result={...}> took 0.1 seconds"), which prints
    whatever the task returned (a flow result, entry data and all): the test harness runs
    asyncio in debug mode, Home Assistant only with --debug, and that note is about every
    integration's tasks, not this one's; and the test harness's stand-in for Home Assistant's
    storage, which logs what it is given to write (a Store's data, e.g. the flows by sub-meter
    identifier), where Home Assistant's own logs only the file's name.
    """
    if record.name.startswith(NOT_CHECKED):
        return True
    if HANDLER.core_running and record.name.startswith(CORE):
        return True
    if record.name == HARNESS_STORAGE and str(record.msg).startswith(
        ("Writing data to ", "Loading data for ")
    ):
        return True
    return record.name == "asyncio" and str(record.msg).startswith("Executing ")


KEY_LITERAL = re.compile(r"""["']([0-9A-Fa-f]{32})["']""")
MASK = "<secret>"


def meter_secrets(meter: Meter) -> set[str]:
    """A simulated meter's keys and identifiers: as sent (hex) and as text."""
    found = {meter.equipment_id, meter.key_hex, meter.auth_key_hex}
    for name, value in meter.render().values.items():
        if value and any(part in name for part in ("IDENTIFIER", "SERIAL", "DEVICE_NAME")):
            found.add(str(value))
            with contextlib.suppress(ValueError):
                found.add(bytes.fromhex(str(value)).decode("ascii"))
    # Too short or all zeros: not telling, and found everywhere.
    return {text for text in found if len(text) >= 8 and text.strip("0")}


class SecretLog(logging.Handler):
    """Checks every record against the known secrets; keeps the ones that leak."""

    def __init__(self) -> None:
        """No secrets known yet."""
        super().__init__(logging.NOTSET)
        self.secrets: set[str] = set()
        # (logger, level, message template) -> the first such record, secrets masked
        self.leaks: dict[tuple[str, str, str], str] = {}
        self.found = 0
        self.seen = 0
        self.test = "setup"  # the test running (for the report)
        self._pattern: re.Pattern[str] | None = None
        self._meters: list[Meter] = []  # made, secrets not read yet
        self.core_running = False  # core `dsmr` runs (tests/parity.py)

    def add_meter(self, meter: Meter) -> None:
        """Know a simulated meter's secrets, read when the next record is checked.

        Not at once: a subclass (a replaying meter) is still being made when Meter.__init__
        returns, and cannot render its telegram yet.
        """
        self._meters.append(meter)

    def read_meters(self) -> None:
        """Add the secrets of the meters made since the last check.

        A meter whose making failed (a replay of nothing) has no telegram and no secrets.
        """
        while self._meters:
            meter = self._meters.pop()
            with contextlib.suppress(Exception):
                self.add(meter_secrets(meter))

    def add(self, secrets: Iterable[str]) -> None:
        """Know more secrets (compared in any letter case)."""
        new = {s.upper() for s in secrets} - self.secrets
        if new:
            self.secrets |= new
            self._pattern = None

    def check_text(self, source: str, text: str) -> None:
        """Check a log kept elsewhere (a Home Assistant process of the end-to-end tests)."""
        self.emit(logging.LogRecord(source, logging.NOTSET, source, 0, text, None, None))

    def emit(self, record: logging.LogRecord) -> None:
        """Check one record: its message, arguments formatted, and its traceback."""
        if not_ours(record):
            return
        self.seen += 1
        self.read_meters()
        if not self.secrets:
            return
        if self._pattern is None:
            alternatives = sorted(self.secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format: check its parts
            text = f"{record.msg} {record.args}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        if self._pattern.search(text):
            self.found += 1
            kind = (record.name, record.levelname, str(record.msg)[:100])
            if kind not in self.leaks:  # each kind of record once, with its first example
                masked = self._pattern.sub(MASK, text)[:600]
                self.leaks[kind] = f"{masked}\n    (in {self.test})"


HANDLER = SecretLog()


@contextlib.contextmanager
def core_runs() -> Iterator[None]:
    """Core `dsmr` runs in this block: its own (and dsmr_parser's) log lines are its own.

    Also for dsmr_parser's stock reader run as another program reading our re-broadcast: it
    logs every telegram it receives, as it does in core.
    """
    HANDLER.core_running = True
    try:
        yield
    finally:
        HANDLER.core_running = False


def typed_keys(root: Path) -> set[str]:
    """Every 32-hex-digit string literal in the test modules: keys the tests type."""
    return {
        match.group(1)
        for path in root.rglob("*.py")
        for match in KEY_LITERAL.finditer(path.read_text(encoding="utf-8"))
    }


def pytest_configure(config: pytest.Config) -> None:
    """Start checking: before any test module (or meter) exists."""
    HANDLER.add(typed_keys(Path(__file__).parent))
    made = Meter.__init__

    def registering(self: Meter, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        HANDLER.add_meter(self)

    Meter.__init__ = registering  # type: ignore[method-assign]
    config.stash[_ORIGINAL_CONNECT] = connect = TelegramReader.connect

    async def connect_as_simulator(self: TelegramReader) -> TelegramReader:
        # The simulator's test-side reader is dsmr_parser's stock protocol, which logs every
        # telegram at debug: it stands for other software, so it logs as the simulator.
        reader = await connect(self)
        self.protocol.log = logging.getLogger("dsmr_sim.client")
        return reader

    TelegramReader.connect = connect_as_simulator  # type: ignore[method-assign]
    config.stash[_ORIGINAL_INIT] = made
    logging.getLogger().addHandler(HANDLER)
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


_ORIGINAL_INIT = pytest.StashKey[Any]()
_ORIGINAL_CONNECT = pytest.StashKey[Any]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    """Note which test runs, so that a leak says where it happened."""
    HANDLER.test = item.nodeid
    return (yield)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run on a leak, or when nothing was checked."""
    problems = [f"{name} {level}: {example}" for (name, level, _), example in HANDLER.leaks.items()]
    if HANDLER not in logging.getLogger().handlers:
        problems.append("the secret check's log handler was removed during the session")
    elif not HANDLER.seen and session.testscollected:
        problems.append("the secret check saw no log record at all")
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"{HANDLER.found} log record(s) hold a key or an identifier:", *problems]
        if reporter is not None:
            reporter.write_sep("=", "secrets in the log", red=True)
            for line in lines:
                reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave logging and the simulator as they were."""
    logging.getLogger().removeHandler(HANDLER)
    if (made := config.stash.get(_ORIGINAL_INIT, None)) is not None:
        Meter.__init__ = made  # type: ignore[method-assign]
    if (connect := config.stash.get(_ORIGINAL_CONNECT, None)) is not None:
        TelegramReader.connect = connect  # type: ignore[method-assign]
