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


# Each language's word for power and energy (tests/test_translations.py holds the full table).
WORDS = {
    "nl": ("vermogen|piek", "energie"),
    "fr": ("puissance|pointe", "énergie"),
    "de": ("leistung|spitze", "energie"),
    "sv": ("effekt", "energi"),
}
LANGUAGE_SHOTS = ARTIFACTS / "e2e" / "device-pages"


async def test_device_pages_in_four_languages(
    page: Any,
    simulators: Callable[..., Simulator],
    hass_processes: Callable[[str], HassProcess],
) -> None:
    """Issue 27: a DSMR 5 and a 5B meter's device page in Dutch, French, German and Swedish.

    Home Assistant names entities in its system language: each language is set there, the
    entries reloaded, and the owner's profile follows it; every power and energy entity's name
    says its quantity, and no kW state has more decimals than the meter's three.
    """
    sims = {
        "5": await asyncio.to_thread(simulators, seed=21),
        "5B": await asyncio.to_thread(simulators, seed=22, version="5B"),
    }
    hass = hass_processes("languages")
    hass.install_integration()
    hass.write_configuration()
    await asyncio.to_thread(hass.start)
    await asyncio.to_thread(hass.onboard)
    LANGUAGE_SHOTS.mkdir(parents=True, exist_ok=True)
    async with hass.client() as api:
        entries = {}
        for version, sim in sims.items():
            menu = await api.flow_start("dsmr")
            form = await api.flow_next(menu["flow_id"], {"next_step_id": "network"})
            done = await api.flow_next(
                form["flow_id"],
                {"host": "127.0.0.1", "port": sim.port, "dsmr_version": version.lower()},
            )
            assert done["type"] == "create_entry", done
            entries[version] = done["result"]["entry_id"]
        await _log_in(page, hass.url)
        for language, (power, energy) in WORDS.items():
            await api.ws("config/core/update", language=language)
            await api.ws("frontend/set_user_data", key="language", value={"language": language})
            for entry_id in entries.values():
                await api.post(f"/api/config/config_entries/entry/{entry_id}/reload")
            for version, entry_id in entries.items():
                names = await _names_and_states(api, entry_id, language)
                for name, (device_class, unit, state) in names.items():
                    word = {"power": power, "energy": energy}.get(device_class or "")
                    assert word is None or re.search(word, name, re.IGNORECASE), (language, name)
                    if unit == "kW" and re.fullmatch(r"-?\d+\.\d+", state):
                        assert len(state.split(".")[1]) <= 3, (name, state)
                device = next(
                    d
                    for d in await api.device_registry()
                    if entry_id in d["config_entries"] and d["name"] == "Electricity Meter"
                )
                await page.goto(f"{hass.url}/config/devices/device/{device['id']}")
                await page.wait_for_load_state("networkidle")
                await page.screenshot(
                    path=str(LANGUAGE_SHOTS / f"{language}-{version}.png"), full_page=True
                )
    assert hass.dsmr_errors() == []


async def _log_in(page: Any, url: str) -> None:
    await page.goto(url + "/")
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("link", name=re.compile("Settings")).wait_for()


async def _names_and_states(
    api: Any, entry_id: str, language: str
) -> dict[str, tuple[str | None, str | None, str]]:
    """Friendly name -> (device class, unit, state) of the entry's entities, once translated."""

    async def translated() -> dict[str, tuple[str | None, str | None, str]] | None:
        registry = [e for e in await api.entity_registry() if e["config_entry_id"] == entry_id]
        found = {}
        for reg in registry:
            if reg["disabled_by"] or (state := await api.state(reg["entity_id"])) is None:
                continue
            attributes = state["attributes"]
            found[attributes.get("friendly_name", "")] = (
                attributes.get("device_class"),
                attributes.get("unit_of_measurement"),
                state["state"],
            )
        power = next((n for n, v in found.items() if v[0] == "power"), "")
        return found if re.search(WORDS[language][0], power, re.IGNORECASE) else None

    return await async_wait_until(translated, 60, f"entity names in {language}")
