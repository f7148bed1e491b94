"""Fixtures of the end-to-end tests: simulators and `hass` processes, always stopped at teardown.

These tests do not use the `hass` fixture of pytest-homeassistant-custom-component: they start
real `hass` processes. So the suite-wide autouse fixture that enables custom integrations in
the in-process test instance is switched off here, and sockets are allowed for every e2e test
(setup included) while pytest-socket's allow-list keeps connections to 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket

from dsmr_dev.installer import components, ensure_requirements

from ..leaks import HANDLER
from .harness import HASS_PYTHON, HassProcess, Simulator

# Home Assistant's own integrations that every `hass` here loads and `--skip-pip` would leave
# without their requirements: the frontend, usb (this integration's dependency) and, from
# 2026.11 on, the Marketplace (a default integration there).
HASS_REQUIREMENTS = ("frontend", "usb", "marketplace")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """Allow sockets while e2e fixtures set up (they start processes and poll their APIs).

    Home Assistant's plugin disables sockets before every test and allows connections to
    127.0.0.1 only; enabling sockets keeps that allow-list, so nothing here reaches further.
    The tests themselves get sockets from the suite-wide `socket_enabled` fixture.
    """
    pytest_socket.enable_socket()
    return (yield)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the suite-wide fixture: no in-process `hass` in end-to-end tests."""


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A fresh directory per test module for config dirs, pty links and process output."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def simulators(e2e_dir: Path) -> Iterator[Callable[..., Simulator]]:
    """Factory: `simulators(seed=1, tcp_port=0 | None, link=path, ...)` -> a started simulator."""
    started: list[Simulator] = []

    def start(**kwargs: object) -> Simulator:
        sim = Simulator(e2e_dir / "sims", **kwargs)  # type: ignore[arg-type]
        started.append(sim)
        return sim.start()

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module")
def hass_processes(e2e_dir: Path) -> Iterator[Callable[[str], HassProcess]]:
    """Factory: `hass_processes(label)` -> a HassProcess on a fresh config dir (not started).

    At teardown every one still running is stopped, and its logs go to artifacts/e2e/<label>.
    """
    ensure_requirements(
        tuple(d for d in HASS_REQUIREMENTS if (components(HASS_PYTHON) / d).is_dir()), HASS_PYTHON
    )
    made: list[HassProcess] = []

    def make(label: str) -> HassProcess:
        proc = HassProcess(e2e_dir / label, label)
        made.append(proc)
        return proc

    yield make
    errors: list[str] = []
    for proc in made:
        try:
            proc.stop(check=False)
        finally:
            proc.save_logs()
        errors += [f"{proc.label}: {error}" for error in proc.dsmr_errors()]
        HANDLER.check_text(f"e2e {proc.label}", proc.log_text())  # the session's secret check
    if errors:  # e.g. logged while shutting down, after the tests' own checks
        pytest.fail("dsmr errors in Home Assistant's log:\n" + "\n".join(errors))
