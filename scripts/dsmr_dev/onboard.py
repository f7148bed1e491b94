"""Get a development Home Assistant ready to use: onboarded (owner dev / dev), or logged in.

Used by scripts/develop (dsmr_dev.develop). A fresh configuration is onboarded through Home
Assistant's onboarding API, as the frontend does; an onboarded one answers 404 there, and the
owner logs in instead (login flow, as the login page does). Then the repair Home Assistant
raises for every development setup, "installation method deprecated" (a venv is a Core
installation), is ignored the way a user ignores it in Settings > Repairs; the other one seen on
a first start, "country not configured", does not arise: config/configuration.yaml sets it.
After onboarding, the online services it adds that a DSMR setup does not need are disabled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from http import HTTPStatus
import json
import sys
import time
from typing import Any

import aiohttp

USERNAME = "dev"
PASSWORD = "dev"  # a local development instance; the README says so
# Raised by Home Assistant on every Core installation; ignored (not deleted: it is its issue).
DEV_REPAIRS = (("homeassistant", "deprecated_method"),)
REPAIRS_WAIT = 20.0  # s after RUNNING: the check runs once Home Assistant has started
# Integrations onboarding adds that go online as they start; a DSMR development setup needs
# none. Offline (as in CI) Radio Browser retries its lookups, and Home Assistant stopping during
# one logs a traceback. Disabled after onboarding, once its first set-up attempt is over (a
# user can enable it again under Settings > Integrations).
ONLINE_SERVICES = ("radio_browser",)
SETTLE_WAIT = 90.0  # s for its first set-up attempt (offline: DNS time-outs)
APPEAR_WAIT = 10.0  # s for onboarding to add it at all
PROGRESS_EVERY = 30.0  # s between "still starting" notes


class SetupError(RuntimeError):
    """Home Assistant answered, but not as expected (the message says what it answered)."""


def say(message: str) -> None:
    """One line on stderr, marked as the development script's."""
    print(f"develop: {message}", flush=True, file=sys.stderr)


class DevSetup:
    """Talks to one Home Assistant at ``url`` (e.g. http://127.0.0.1:8123)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        """Use ``session`` for every request."""
        self.session = session
        self.url = url.rstrip("/")
        self.client_id = f"{self.url}/"

    async def _post(self, path: str, body: Any, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.post(self.url + path, json=body, headers=headers) as response:
            text = await response.text()
            if response.status != HTTPStatus.OK:
                raise SetupError(f"POST {path} -> {response.status}: {text[:300]}")
            return json.loads(text) if text else None

    async def _token(self, code: str) -> str:
        form = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        async with self.session.post(self.url + "/auth/token", data=form) as response:
            if response.status != HTTPStatus.OK:
                raise SetupError(f"/auth/token -> {response.status}: {await response.text()}")
            token: str = (await response.json())["access_token"]
            return token

    async def wait_until_up(self, alive: Callable[[], bool]) -> list[dict[str, Any]] | None:
        """Wait until the HTTP server answers; the onboarding steps, or None when onboarded.

        Waits as long as ``alive()`` says Home Assistant runs (a first start installs
        requirements and can take minutes), with a note every half minute.
        """
        started = last_note = time.monotonic()
        while True:
            try:
                async with self.session.get(self.url + "/api/onboarding") as response:
                    if response.status == HTTPStatus.NOT_FOUND:
                        return None  # onboarding is done: its views are gone
                    if response.status == HTTPStatus.OK:
                        steps: list[dict[str, Any]] = await response.json()
                        return steps
            except aiohttp.ClientError, TimeoutError:
                pass
            if not alive():
                raise SetupError("Home Assistant exited before it answered")
            if time.monotonic() - last_note > PROGRESS_EVERY:
                last_note = time.monotonic()
                say(f"Home Assistant is still starting ({last_note - started:.0f} s)")
            await asyncio.sleep(0.5)

    async def create_owner(self) -> str:
        """Onboarding's first step: the owner dev / dev; returns a token."""
        created = await self._post(
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Developer",
                "username": USERNAME,
                "password": PASSWORD,
                "language": "en",
            },
        )
        return await self._token(created["auth_code"])

    async def finish_onboarding(self, token: str, steps: list[dict[str, Any]]) -> None:
        """The steps after the owner, with their defaults (those not done yet)."""
        done = {step["step"] for step in steps if step["done"]}
        redirect = {"client_id": self.client_id, "redirect_uri": self.client_id}
        for step, body in (("core_config", {}), ("analytics", {}), ("integration", redirect)):
            if step not in done:
                await self._post(f"/api/onboarding/{step}", body, token)

    async def log_in(self) -> str:
        """Log in as dev / dev through the login flow, as the login page does."""
        flow = await self._post(
            "/auth/login_flow",
            {
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": self.client_id,
            },
        )
        result = await self._post(
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self.client_id, "username": USERNAME, "password": PASSWORD},
        )
        if result.get("type") != "create_entry":
            raise SetupError(f"logging in as {USERNAME} failed: {result.get('errors')}")
        return await self._token(result["result"])

    async def _get(self, path: str, token: str) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.get(self.url + path, headers=headers) as response:
            if response.status != HTTPStatus.OK:
                raise SetupError(f"GET {path} -> {response.status}")
            return await response.json()

    async def wait_running(self, token: str) -> None:
        """Until Home Assistant's core state is RUNNING (it is not pushed to a REST client)."""
        while (await self._get("/api/config", token)).get("state") != "RUNNING":  # noqa: ASYNC110
            await asyncio.sleep(0.5)

    async def ignore_dev_repairs(self, ws: Websocket) -> list[str]:
        """Ignore DEV_REPAIRS once they are raised (soon after start); returns their ids."""
        ignored: list[str] = []
        deadline = time.monotonic() + REPAIRS_WAIT
        while True:
            issues = (await ws.call("repairs/list_issues"))["issues"]
            open_ = {(i["domain"], i["issue_id"]) for i in issues if not i["ignored"]}
            for domain, issue_id in sorted(set(DEV_REPAIRS) & open_):
                await ws.call("repairs/ignore_issue", domain=domain, issue_id=issue_id, ignore=True)
                ignored.append(f"{domain}.{issue_id}")
            known = {(i["domain"], i["issue_id"]) for i in issues}
            if set(DEV_REPAIRS) <= known or time.monotonic() > deadline:
                return ignored
            await asyncio.sleep(0.5)

    async def disable_online_services(self, ws: Websocket) -> list[str]:
        """Disable ONLINE_SERVICES once their first set-up attempt is over; their titles."""
        disabled: list[str] = []
        started = time.monotonic()
        for domain in ONLINE_SERVICES:
            while True:
                entries = await ws.call("config_entries/get", domain=domain)
                busy = [e for e in entries if e["state"] in {"not_loaded", "setup_in_progress"}]
                waited = time.monotonic() - started
                if (entries and not busy) or waited > (SETTLE_WAIT if entries else APPEAR_WAIT):
                    break
                await asyncio.sleep(0.5)
            for entry in entries:
                if entry["disabled_by"] is None:
                    entry_id = entry["entry_id"]
                    await ws.call("config_entries/disable", entry_id=entry_id, disabled_by="user")
                    disabled.append(entry["title"])
        return disabled


class Websocket:
    """Home Assistant's websocket API, authenticated: ``await ws.call(type, **payload)``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Wrap an open, authenticated websocket."""
        self.ws = ws
        self.next_id = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, setup: DevSetup, token: str) -> AsyncIterator[Websocket]:
        """Open and authenticate."""
        async with setup.session.ws_connect(setup.url + "/api/websocket") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise SetupError("websocket authentication failed")
            yield cls(ws)

    async def call(self, command: str, **payload: Any) -> Any:
        """Send a command; its result (SetupError if it did not succeed)."""
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "type": command, **payload})
        while (answer := await self.ws.receive_json()).get("id") != self.next_id:
            continue  # an event or an older answer
        if not answer.get("success"):
            raise SetupError(f"{command} failed: {answer.get('error')}")
        return answer["result"]


async def prepare(url: str, alive: Callable[[], bool]) -> None:
    """Wait for Home Assistant at ``url``, onboard or log in, and ignore the dev repairs."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        setup = DevSetup(session, url)
        steps = await setup.wait_until_up(alive)
        if steps is None or all(step["done"] for step in steps):
            token = await setup.log_in()
            say(f"already onboarded: logged in as {USERNAME}")
        else:
            if any(step["step"] == "user" and not step["done"] for step in steps):
                token = await setup.create_owner()
                say(f"onboarding: created the owner {USERNAME} / {PASSWORD}")
            else:  # an onboarding interrupted after the owner was made
                token = await setup.log_in()
            await setup.finish_onboarding(token, steps)
        await setup.wait_running(token)
        async with Websocket.connect(setup, token) as ws:
            if steps is not None and not all(step["done"] for step in steps):
                for title in await setup.disable_online_services(ws):
                    say(f"disabled {title}: onboarding adds it, and it needs the internet")
            for issue in await setup.ignore_dev_repairs(ws):
                say(f"ignored the repair {issue} (a development setup is a Core installation)")
