"""A user installs this repository with Home Assistant 2026.11's Marketplace (issue 15, item 4).

A fresh configuration, Home Assistant's own `marketplace` integration unchanged, and GitHub (and
the HACS catalog) played by a loopback stand-in (github_standin.py says how `hass` reaches it).
The steps are the panel's, through the same websocket commands and flows the frontend uses:

1. open the Marketplace and accept its first-run warning;
2. connect a GitHub account: the device flow shows a code, the user enters it on GitHub;
3. add this repository as a custom repository (type integration);
4. install it: the Marketplace refuses until the user confirms replacing the built-in `dsmr`;
   confirmed, it downloads the release and writes custom_components/dsmr;
5. restart Home Assistant (the Marketplace's restart repair, or Settings -> Restart);
6. add a meter: our config flow runs and our own entities (the health sensors, which core's dsmr
   does not have) appear, so the `dsmr` loaded is ours, not core's.

Runs on Home Assistant 2026.11 or newer (scripts/test runs tests/e2e on it); with an older
`hass` it is skipped, unless scripts/test said the newest release is under test. It needs root,
as the stand-in's name mapping does (a mount namespace, port 443).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import contextlib
import json
import os
from pathlib import Path
import re
from typing import Any

import pytest

from dsmr_dev.installer import components

from .github_standin import (
    GitHubStandIn,
    RepositorySnapshot,
    loopback_address,
    with_hosts_file,
    write_certificates,
    write_hosts,
)
from .harness import (
    ARTIFACTS,
    HASS_PYTHON,
    INTEGRATION,
    ROOT,
    ApiError,
    HassClient,
    HassProcess,
    Simulator,
    async_wait_until,
    entities_of,
)

MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())
REPOSITORY = MANIFEST["documentation"]  # https://github.com/<owner>/<repo>
FULL_NAME = "/".join(REPOSITORY.rstrip("/").split("/")[-2:])
EVIDENCE = ARTIFACTS / "e2e" / "marketplace" / "evidence.json"
# Our entities that core's dsmr does not have (health, on the electricity meter's device).
OUR_OWN = {"connection", "telegrams_per_minute", "skipped_telegrams", "last_telegram"}


@pytest.fixture(scope="module")
def marketplace_available() -> None:
    """The `hass` under test has the Marketplace (2026.11+), and this test may set up names."""
    if not (components(HASS_PYTHON) / "marketplace").is_dir():
        reason = "the Home Assistant under test has no Marketplace (it came with 2026.11)"
        if os.environ.get("DSMR_E2E_HASS_PYTHON"):
            pytest.fail(f"{reason}: {HASS_PYTHON}")
        pytest.skip(f"{reason}; scripts/test runs it on the newest release")
    if os.geteuid() != 0:
        pytest.fail("needs root: the GitHub stand-in mounts /etc/hosts for hass and listens on 443")


@pytest.fixture(scope="module")
def standin(e2e_dir: Path, marketplace_available: None) -> Iterator[GitHubStandIn]:
    """The loopback GitHub serving this repository, with its own CA."""
    write_certificates(e2e_dir / "tls")
    repository = RepositorySnapshot(ROOT, FULL_NAME, MANIFEST["version"])
    server = GitHubStandIn(repository, loopback_address(), e2e_dir / "tls")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fresh_hass(
    e2e_dir: Path, standin: GitHubStandIn, hass_processes: Callable[[str], HassProcess]
) -> HassProcess:
    """A fresh configuration (no custom_components/dsmr), onboarded; GitHub is the stand-in."""
    hass = hass_processes("marketplace")
    hass.launcher = with_hosts_file(write_hosts(e2e_dir / "hosts", standin.address))
    hass.env = {"REQUESTS_CA_BUNDLE": str(e2e_dir / "tls" / "ca.pem")}
    hass.write_configuration()
    assert not (hass.config_dir / "custom_components" / "dsmr").exists()
    hass.start()
    hass.onboard()
    return hass


async def _marketplace_running(api: HassClient) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        entries = await api.entries("marketplace")
        if not entries or entries[0]["state"] != "loaded":
            return None
        info: dict[str, Any] = await api.ws("marketplace/info")
        return info if info["stage"] == "running" else None

    return await async_wait_until(probe, 60, "the Marketplace to be set up and running")


async def _connect_github(api: HassClient, standin: GitHubStandIn) -> list[dict[str, Any]]:
    """Connect GitHub: the panel starts the flow, the user enters the code on github.com."""
    started = await api.ws("marketplace/github/connect")
    flow_path = f"/api/config/config_entries/flow/{started['flow_id']}"
    steps = [await api.get(flow_path)]
    assert steps[-1]["type"] == "form" and steps[-1]["step_id"] == "reconfigure", steps
    steps.append(await api.post(flow_path, {}))
    assert steps[-1]["type"] == "progress" and steps[-1]["step_id"] == "device", steps
    shown = steps[-1]["description_placeholders"]
    assert shown["url"] == "https://github.com/login/device"
    standin.authorize(shown["code"])

    async def finished() -> dict[str, Any] | None:
        result: dict[str, Any] = await api.post(flow_path, {})
        return None if result["type"] == "progress" else result

    steps.append(await async_wait_until(finished, 30, "GitHub to hand out the token", 1.0))
    assert steps[-1]["type"] == "abort", steps
    assert steps[-1]["reason"] == "reconfigure_successful", steps
    return steps


async def _install(api: HassClient) -> dict[str, Any]:
    """Add the repository, and install it: the replacement of core's dsmr must be confirmed."""
    detected = await api.ws("marketplace/repositories/detect", repository=REPOSITORY)
    assert detected["categories"] == ["integration"], detected
    await api.ws("marketplace/repositories/add", repository=REPOSITORY, category="integration")
    listed = await api.ws("marketplace/repositories/list", categories=["integration"])
    ours = [r for r in listed if r["full_name"] == FULL_NAME]
    assert len(ours) == 1, listed
    repo_id = ours[0]["id"]
    info = await api.ws("marketplace/repository/info", repository_id=repo_id)
    assert info["custom"] is True and info["domain"] == "dsmr", info
    assert info["replaces_built_in"] is True, info
    assert info["available_version"] == f"v{MANIFEST['version']}", info

    refused = await api.ws_answer("marketplace/repository/install", repository=repo_id)
    assert not refused["success"], refused
    assert refused["error"]["code"] == "replaces_built_in", refused
    await api.ws(
        "marketplace/repository/install", repository=repo_id, confirm_replace_built_in=True
    )
    installed = await api.ws("marketplace/repository/info", repository_id=repo_id)
    assert installed["installed"] is True, installed
    assert installed["installed_version"] == f"v{MANIFEST['version']}", installed
    return {"detected": detected, "info": info, "refused": refused["error"], "after": installed}


async def _restart(hass: HassProcess) -> dict[str, Any]:
    """Restart Home Assistant as the user does (its Restart button); it exits with 100.

    A Home Assistant Core install runs under a service manager that starts it again; here the
    test is that service manager. Whether the Marketplace also raised its "restart required"
    repair is recorded: it does only when this run's loader had already resolved `dsmr`.
    """
    async with hass.client() as api:
        issues = (await api.ws("repairs/list_issues"))["issues"]
        repairs = [
            i["issue_id"]
            for i in issues
            if i["domain"] == "marketplace" and i["issue_id"].startswith("restart_required_")
        ]
        # Home Assistant may go down before it answers.
        with contextlib.suppress(ApiError, OSError, TimeoutError):
            await api.post("/api/services/homeassistant/restart", {})
    code = await asyncio.to_thread(hass.wait_exit, 120)
    assert code == 100, f"exit {code} after a restart"
    await asyncio.to_thread(hass.start)
    return {"restart_repairs": repairs, "exit_code": code}


async def _add_meter(api: HassClient, sim: Simulator) -> dict[str, Any]:
    menu = await api.flow_start("dsmr")
    assert menu["type"] == "menu" and menu["menu_options"] == ["serial", "network"], menu
    form = await api.flow_next(menu["flow_id"], {"next_step_id": "network"})
    user_input = {"host": sim.host, "port": sim.port, "dsmr_version": "5", "rfxtrx": False}
    done = await api.flow_next(form["flow_id"], user_input)
    assert done["type"] == "create_entry", done
    entry_id = done["result"]["entry_id"]

    async def own_entities() -> dict[str, str] | None:
        registry = await api.entity_registry()
        found = {
            e["translation_key"]: e["entity_id"]
            for e in entities_of(registry, entry_id).values()
            if e["translation_key"] in OUR_OWN
        }
        return found if set(found) == OUR_OWN else None

    found = await async_wait_until(own_entities, 60, "our health entities")

    async def connected() -> dict[str, Any] | None:
        state = await api.state(found["connection"])
        return state if state is not None and state["state"] == "on" else None

    connection = await async_wait_until(connected, 60, "the meter's connection to turn on")
    return {"entry": done["result"], "entities": found, "connection": connection}


async def test_install_through_the_marketplace(
    fresh_hass: HassProcess,
    standin: GitHubStandIn,
    simulators: Callable[..., Simulator],
) -> None:
    hass = fresh_hass
    evidence: dict[str, Any] = {"home_assistant": None, "steps": {}}
    try:
        async with hass.client() as api:
            info = await _marketplace_running(api)
            evidence["home_assistant"] = (await api.get("/api/config"))["version"]
            assert info["github_connected"] is False and info["warning_accepted"] is False, info
            refused = await api.ws_answer(
                "marketplace/repositories/add", repository=REPOSITORY, category="integration"
            )
            assert refused["error"]["code"] == "warning_not_accepted", refused
            await api.ws("marketplace/warning/accept")
            refused = await api.ws_answer(
                "marketplace/repositories/add", repository=REPOSITORY, category="integration"
            )
            assert refused["error"]["code"] == "github_not_connected", refused
            evidence["steps"]["github"] = await _connect_github(api, standin)

        async with hass.client() as api:  # the entry reloaded with the token
            info = await _marketplace_running(api)
            assert info["github_connected"] is True, info
            evidence["steps"]["install"] = await _install(api)

        written = hass.config_dir / "custom_components" / "dsmr"
        assert json.loads((written / "manifest.json").read_text()) == MANIFEST
        assert sorted(p.name for p in written.iterdir()) == sorted(
            p.name for p in INTEGRATION.iterdir() if p.name != "__pycache__"
        )
        evidence["steps"]["restart"] = await _restart(hass)

        sim = await asyncio.to_thread(simulators, seed=15)
        async with hass.client() as api:
            manifest = await api.ws("manifest/get", integration="dsmr")
            assert manifest["is_built_in"] is False, manifest
            assert manifest["version"] == MANIFEST["version"], manifest
            evidence["steps"]["loaded"] = {
                "manifest": {k: manifest.get(k) for k in ("version", "is_built_in")},
                **await _add_meter(api, sim),
            }
        assert re.search(r"custom integration dsmr", hass.log_text()), "no custom-dsmr warning"
        assert not hass.dsmr_errors()
    finally:
        # This `hass` is done; with it stopped, the stand-in gets no more requests and its
        # threads end before the test's (the harness checks that no thread outlives a test).
        hass.stop(check=False)
        standin.stop()
        evidence["github_calls"] = standin.calls()
        EVIDENCE.parent.mkdir(parents=True, exist_ok=True)
        EVIDENCE.write_text(json.dumps(evidence, indent=2, default=str))

    assert hass.exit_codes == [100, 0], hass.exit_codes  # the restart, then a clean stop
    # Every call went to the stand-in and was answered; the API saw the connected account.
    assert [str(r) for r in standin.requests if r.status >= 400] == []
    api_calls = [r for r in standin.requests if r.host == "api.github.com"]
    assert api_calls and all(r.token == standin.token for r in api_calls)
    # The files came from the release's archive (the Marketplace's way for a directory),
    # not from its file-by-file fallback.
    calls = standin.calls()
    tag = standin.repository.tag
    assert f"GET https://github.com/{FULL_NAME}/archive/refs/tags/{tag}.zip -> 200" in calls
    assert not [c for c in calls if f"{FULL_NAME}/{tag}/custom_components/" in c]
