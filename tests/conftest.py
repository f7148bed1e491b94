"""Shared fixtures: custom integrations enabled, meter simulator fixtures, entry factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import os
from pathlib import Path
import subprocess
import sys
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.dsmr.const import DOMAIN
from dsmr_sim.server import BaseServer

from .helpers import RawBridge

pytest_plugins = ["dsmr_sim.pytest_plugin", "tests.leaks"]

MISSING_PORT = "/dev/serial/by-id/usb-no-such-meter-if00-port0"

# Paths opened (open(), os.open(), in any thread) while a test holds `opened_files`.
_opened: set[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes)):
        _opened.add(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only while armed


@pytest.fixture
def opened_files() -> Iterator[set[str]]:
    """Every path opened during the test (Python's audit events: nothing escapes them).

    Not /dev/null: subprocesses (an import running ldconfig) open it for their stdin.
    """
    global _opened  # noqa: PLW0603
    _opened = set()
    try:
        yield _opened
    finally:
        _opened = None


def opened_any(opened: set[str], paths: list[str]) -> list[str]:
    """The `paths` (or what they link to) among the opened ones."""
    wanted = {os.path.realpath(p) for p in paths} | set(paths)
    return sorted(p for p in opened if p in wanted or os.path.realpath(p) in wanted)


@pytest.fixture(scope="session")
def newest_ha() -> Path:
    """The `homeassistant` package of the newest release, from its own venv (.venv-ha-*).

    The test harness pins an older Home Assistant; what the newest release ships (its
    Marketplace, its manifest vocabulary, its quality scale rules) is read from its files.
    scripts/test and scripts/run create that venv and name its Python in DSMR_HA_NEWEST_PYTHON.
    """
    python = os.environ.get("DSMR_HA_NEWEST_PYTHON")
    if not python:
        pytest.fail("DSMR_HA_NEWEST_PYTHON is not set: run the tests through scripts/test")
    found = subprocess.run(
        [python, "-c", "import homeassistant; print(homeassistant.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(found.stdout.strip()).parent


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom_components/dsmr instead of core's dsmr in every test."""


@pytest.fixture(autouse=True)
def loopback_sockets(socket_enabled: None) -> None:
    """Real TCP on 127.0.0.1 (ser2net-style bridges are real sockets in these tests)."""


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots with Home Assistant's extension, in tests/snapshots/ (one convention).

    Its serializer shows registry entries and states without their ids. (syrupy's own
    `snapshot` fixture is registered after pytest_homeassistant_custom_component's, which would
    make the same choice: this one overrides both.)
    """
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def ha_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """The same snapshots, under the name some tests use."""
    return snapshot


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Every entity enabled when created (as Home Assistant core's fixture of that name)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture
async def servers(hass: HomeAssistant) -> AsyncIterator[list[BaseServer]]:
    """Simulators to stop at the end, after the entries that read them are unloaded."""
    started: list[BaseServer] = []
    yield started
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
    for server in started:
        await server.stop()


@pytest.fixture
async def silent_port(hass: HomeAssistant) -> AsyncIterator[str]:
    """A port that opens and stays silent (a bridge whose meter sends nothing yet).

    For entries that must set up (setup opens the port first) without a meter behind them.
    """
    bridge = await RawBridge().start()
    yield bridge.url
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
    await bridge.stop()


def core_entry(data: dict[str, Any], **kwargs: Any) -> MockConfigEntry:
    """A config entry laid out exactly as Home Assistant core's dsmr writes it."""
    defaults: dict[str, Any] = {
        "domain": DOMAIN,
        "version": 1,
        "title": str(data.get("port")),
        "unique_id": data.get("serial_id"),
        "options": {"time_between_update": 0},
    }
    return MockConfigEntry(data=data, **{**defaults, **kwargs})
