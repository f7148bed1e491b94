"""A person in a browser adds the meter through the real frontend (issue 8, item 6).

Debian's Chromium, headless, driven by Playwright: log in, Settings -> Devices & services ->
Add integration -> search "DSMR" -> DSMR Smart Meter -> Network bridge -> host, port and
meter type -> Submit -> Finish, then the device page, saved as artifacts/device-page.png.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import re
from typing import Any

import pytest

from dsmr_dev.installer import ensure_browser

from .harness import (
    ARTIFACTS,
    HASS_PYTHON,
    PASSWORD,
    USERNAME,
    HassProcess,
    Simulator,
    async_wait_until,
)

SCREENSHOT = ARTIFACTS / "device-page.png"
STEPS = ARTIFACTS / "e2e" / "browser-steps"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Offline: no name resolves but 127.0.0.1, so the page can reach nothing else.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium and Playwright, installed if missing (a failure fails the test)."""
    return ensure_browser(HASS_PYTHON)


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Any]:
    """A fresh browser page (Playwright), closed with its browser at teardown."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # Playwright gives the browser a fresh temporary profile (--user-data-dir) itself.
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            yield await context.new_page()
        finally:
            await browser.close()


async def _step(page: Any, name: str) -> None:
    """A screenshot of each step, for whoever has to find out why a run failed."""
    STEPS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(STEPS / f"{name}.png"))


async def test_add_meter_in_the_browser(
    page: Any,
    simulators: Callable[..., Simulator],
    hass_processes: Callable[[str], HassProcess],
) -> None:
    """Item 6: the config flow in the real frontend, and a screenshot of the device page."""
    sim = await asyncio.to_thread(simulators, seed=11)
    hass = hass_processes("browser")
    hass.install_integration()
    hass.write_configuration()
    await asyncio.to_thread(hass.start)
    await asyncio.to_thread(hass.onboard)
    SCREENSHOT.unlink(missing_ok=True)
    try:
        await _add_meter(page, hass.url, sim.port)
    except BaseException:
        await _step(page, "failure")
        raise

    async with hass.client() as api:
        port = sim.port
        entries = [e for e in await api.entries() if e["title"] == f"127.0.0.1:{port}"]
        assert [(e["source"], e["state"]) for e in entries] == [("user", "loaded")]
        devices = [
            d for d in await api.device_registry() if entries[0]["entry_id"] in d["config_entries"]
        ]
        assert sorted(d["name"] for d in devices) == [
            "Electricity Meter",
            "Gas Meter",
            "Water Meter",
        ]
        meter = next(d for d in devices if d["name"] == "Electricity Meter")
        diagnostics = await api.get(f"/api/diagnostics/config_entry/{entries[0]['entry_id']}")
        data = diagnostics["data"]["entry"]["data"]
        assert (data["port"], data["dsmr_version"]) == (port, "5")  # the host is redacted

        async def power() -> bool:
            state = await api.state("sensor.electricity_meter_power_consumption")
            return state is not None and state["state"] not in {"unknown", "unavailable"}

        await async_wait_until(power, 30, "the meter's power in Home Assistant")

    # Finishing the flow opened the integration's page: click through to the meter's device.
    try:
        await page.wait_for_url(re.compile(r".*/config/integrations/integration/dsmr"))
        await page.get_by_text(f"127.0.0.1:{port}", exact=True).wait_for()
        await _step(page, "05-integration")
        await page.get_by_text("Electricity Meter", exact=True).first.click()
        await page.wait_for_url(re.compile(rf".*/config/devices/device/{meter['id']}$"))
        await page.get_by_text("Sensors", exact=True).wait_for()
        await page.get_by_text("Power consumption", exact=True).wait_for()
        await page.get_by_text(re.compile(r"\d\s*kWh")).first.wait_for()
        await page.wait_for_load_state("networkidle")
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
    except BaseException:
        await _step(page, "failure")
        raise
    assert SCREENSHOT.stat().st_size > 10_000
    assert hass.dsmr_errors() == []


async def _add_meter(page: Any, url: str, port: int) -> None:
    """Log in and add the meter: every click a person makes, in the real frontend."""
    await page.goto(url + "/")
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await _step(page, "01-login")
    await page.get_by_role("button", name="Log in").click()

    await page.get_by_role("link", name=re.compile("Settings")).click()
    await page.get_by_text("Devices & services").first.click()
    await page.wait_for_url(re.compile(r".*/config/integrations/dashboard$"))
    await page.get_by_role("button", name="Add integration").click()
    await page.get_by_placeholder("Search for a brand name").fill("DSMR")
    await page.get_by_text("DSMR Smart Meter", exact=True).click()
    await _step(page, "02-menu")

    await page.get_by_text("Network bridge (ser2net, ESP P1 reader)").click()
    await page.get_by_role("textbox", name=re.compile(r"^Host")).fill("127.0.0.1")
    await page.get_by_role("spinbutton", name=re.compile(r"^Port")).fill(str(port))
    await page.locator("ha-selector-select ha-picker-field").click()
    await page.get_by_role("menuitem", name="DSMR 5 (Netherlands)").click()
    await _step(page, "03-form")
    await page.get_by_role("button", name="Submit").click()

    # The flow read a telegram and created the entry: name the devices and pick areas.
    finish = page.get_by_role("button", name="Skip and finish")
    await finish.wait_for()
    for name in ("Electricity Meter", "Gas Meter", "Water Meter"):
        await (
            page.get_by_role("textbox", name="Device name")
            .and_(page.get_by_placeholder(name))
            .wait_for()
        )
    await _step(page, "04-created")
    await finish.click()
    await finish.wait_for(state="detached")
