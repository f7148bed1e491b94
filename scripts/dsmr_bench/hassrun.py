"""Inside a worker: one Home Assistant test instance running either our `dsmr` or core's.

Home Assistant comes from pytest-homeassistant-custom-component's `async_test_home_assistant`
(an in-memory instance: registries and storage are not written to disk, no recorder). Whether
a config entry of domain `dsmr` loads `custom_components/dsmr` or core's
`homeassistant.components.dsmr` is the harness's switch for custom integrations.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
import socket
import tempfile
import time
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries, loader
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er, frame, translation
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
    mock_storage,
)

DOMAIN = "dsmr"
POWER_KEY = "current_electricity_usage"
READING_KEY = "electricity_used_tariff_1"
RELOAD_DELAY = 0.2  # seconds from enabling entities to Home Assistant reloading the entry


class TelegramCounter:
    """Counts telegrams the integration's protocol handled (parsed and passed on, or not).

    Wraps what each side calls once per frame cut from the stream: `handle_telegram` of
    dsmr_parser's `DSMRProtocol` (core) and `_frame` of our `P1Protocol`, so both sides pay the
    same few nanoseconds.
    """

    def __init__(self, ours: bool) -> None:
        """Install the counting wrappers."""
        from dsmr_parser.clients.protocol import DSMRProtocol

        self.count = 0
        self._waiter: tuple[int, asyncio.Future[None]] | None = None
        methods: list[tuple[type, str]] = [(DSMRProtocol, "handle_telegram")]
        if ours:
            from custom_components.dsmr.connection import P1Protocol

            methods.append((P1Protocol, "_frame"))
        for cls, name in methods:
            self._wrap(cls, name)

    def _wrap(self, cls: type, name: str) -> None:
        original: Callable[[Any, Any], None] = cls.__dict__[name]
        counter = self

        def handle(protocol: Any, frame: Any) -> None:
            original(protocol, frame)
            counter.count += 1
            if counter._waiter is not None and counter.count >= counter._waiter[0]:
                _, done = counter._waiter
                counter._waiter = None
                if not done.done():
                    done.set_result(None)

        setattr(cls, name, handle)

    async def reached(self, count: int, limit: float) -> None:
        """Return once `count` telegrams were handled in total (TimeoutError after `limit`)."""
        if self.count >= count:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiter = (count, done)
        async with asyncio.timeout(limit):
            await done


class StateWatch:
    """Counts state changes of every entity and keeps the power sensor's published values."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start listening."""
        self.hass = hass
        self.changes: Counter[str] = Counter()
        self.power: list[tuple[float, float | None]] = []
        self._is_power: dict[str, bool] = {}  # entities may appear later (core: first telegram)
        self._registry = er.async_get(hass)
        self._unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, self._changed)

    @callback
    def _changed(self, event: Event[EventStateChangedData]) -> None:
        entity_id = event.data["entity_id"]
        self.changes[entity_id] += 1
        if (is_power := self._is_power.get(entity_id)) is None:
            reg = self._registry.async_get(entity_id)
            is_power = reg is not None and reg.unique_id.endswith(f"_{POWER_KEY}")
            self._is_power[entity_id] = is_power
        if is_power:
            state = event.data["new_state"]
            try:
                value = float(state.state) if state is not None else None
            except ValueError:
                value = None
            self.power.append((time.monotonic(), value))

    def stop(self) -> None:
        """Stop listening."""
        self._unsub()


@asynccontextmanager
async def home_assistant(ours: bool) -> AsyncIterator[HomeAssistant]:
    """A running test instance; with `ours`, custom integrations (ours) load.

    Storage is kept in memory (as in the integration's tests), in a config folder of its own.
    """
    with (
        tempfile.TemporaryDirectory(prefix="dsmr-bench-") as config_dir,
        mock_storage(),
    ):
        async with async_test_home_assistant(
            asyncio.get_running_loop(), config_dir=config_dir
        ) as hass:
            yield await _started(hass, ours)


async def _started(hass: HomeAssistant, ours: bool) -> HomeAssistant:
    frame.async_setup(hass)
    await translation.async_load_integrations(hass, {"homeassistant"})
    # Both integrations depend on `usb`, which pulls in `http`: serve it on a free loopback
    # port, not on 8123 (where a developer's Home Assistant, or another worker, may listen).
    http = {"server_host": ["127.0.0.1"], "server_port": _free_port()}
    if not await async_setup_component(hass, "http", {"http": http}):
        raise RuntimeError("cannot set up http")
    # Confirm these settings as a user would: an unconfirmed change is reverted after five
    # minutes with a restart, which a worker living in meter time reaches within seconds.
    from homeassistant.components.http.config import DATA_STORE

    if hass.data[DATA_STORE].pending is not None:
        await hass.data[DATA_STORE].async_promote_pending()
    if ours:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)
    return hass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def stop(hass: HomeAssistant) -> None:
    """Unload our entries and stop the instance."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_stop(force=True)


async def add_entry(
    hass: HomeAssistant, data: dict[str, Any], options: dict[str, Any]
) -> ConfigEntry:
    """Add and set up a `dsmr` entry as the integration's config flow would have made it."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data=data,
        options=options,
        unique_id=data.get("serial_id"),
        title=str(data.get("port")),
    )
    entry.add_to_hass(hass)
    if not await hass.config_entries.async_setup(entry.entry_id):
        raise RuntimeError(f"setting up {data} failed")
    await hass.async_block_till_done()
    return entry  # type: ignore[no-any-return]


async def enable_all(hass: HomeAssistant, entry_id: str) -> int:
    """Enable every disabled entity of an entry, as a user would; return how many.

    Home Assistant reloads the entry by itself some time after entities were enabled (30 s;
    shortened here), so that reload is waited for rather than doing one of our own, which
    would leave Home Assistant's own one to land in the middle of a measurement.
    """
    registry = er.async_get(hass)
    enabled = 0
    with patch.object(config_entries, "RELOAD_AFTER_UPDATE_DELAY", RELOAD_DELAY):
        for reg in er.async_entries_for_config_entry(registry, entry_id):
            if reg.disabled_by is not None:
                registry.async_update_entity(reg.entity_id, disabled_by=None)
                enabled += 1
    if enabled:
        await asyncio.sleep(RELOAD_DELAY + 0.5)
        await hass.async_block_till_done()
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"entry {entry_id} did not reload: {entry and entry.state}")
    return enabled


def entity_count(hass: HomeAssistant, entry_id: str) -> dict[str, int]:
    """Entities of an entry: registered, enabled, and with a state."""
    registry = er.async_get(hass)
    regs = er.async_entries_for_config_entry(registry, entry_id)
    return {
        "registered": len(regs),
        "enabled": sum(reg.disabled_by is None for reg in regs),
        "with_state": sum(hass.states.get(reg.entity_id) is not None for reg in regs),
    }


def queue_depth(hass: HomeAssistant) -> int:
    """Telegrams parsed but not yet taken by a coordinator, over all of our entries.

    Since issue 16 the protocol hands each telegram to the coordinator as it parses it: no
    connection has a queue, and a backlog shows only as lag. (Kept for older checkouts, whose
    entries held a `reader` with a queue.)
    """
    depth = 0
    for entry in hass.config_entries.async_entries(DOMAIN):
        reader = getattr(getattr(entry, "runtime_data", None), "reader", None)
        queue = getattr(reader, "queue", None)
        if queue is not None:
            depth += queue.qsize()
    return depth


def reader_stats(hass: HomeAssistant) -> list[str]:
    """Our connections' counters, for error messages."""
    return [
        repr(entry.runtime_data.coordinator.counters)
        for entry in hass.config_entries.async_entries(DOMAIN)
        if hasattr(getattr(entry, "runtime_data", None), "connection")
    ]


async def config_flow(
    hass: HomeAssistant, *, ours: bool, host: str, port: int, version: str, first: bool
) -> dict[str, Any]:
    """Run the user config flow for a network meter; time the final form submission.

    Returns the seconds from submitting the form to the flow creating the entry and, with
    `first`, from there to the entry's first entity state other than unknown.
    """
    flow = hass.config_entries.flow
    result = await flow.async_init(DOMAIN, context={"source": "user"})
    if ours:
        result = await flow.async_configure(result["flow_id"], {"next_step_id": "network"})
        form = {"host": host, "port": port, "dsmr_version": version}
    else:
        form = {"port": f"socket://{host}:{port}", "dsmr_version": version}
    started = time.monotonic()
    result = await flow.async_configure(result["flow_id"], form)
    created = time.monotonic()
    if result["type"] is not FlowResultType.CREATE_ENTRY:
        raise RuntimeError(f"config flow did not create an entry: {result}")
    entry_id = result["result"].entry_id
    timings = {"submit_to_entry": created - started}
    if first:
        timings["entry_to_first_state"] = await _first_state(hass, entry_id) - created
    await hass.config_entries.async_remove(entry_id)
    await hass.async_block_till_done()
    return timings


async def _first_state(hass: HomeAssistant, entry_id: str, limit: float = 45.0) -> float:
    """When the entry's meter reading (energy tariff 1) first shows a value (inf: not yet)."""
    registry = er.async_get(hass)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for reg in er.async_entries_for_config_entry(registry, entry_id):
            if not reg.unique_id.endswith(f"_{READING_KEY}"):
                continue
            state = hass.states.get(reg.entity_id)
            if state is not None and state.state not in ("unknown", "unavailable"):
                return time.monotonic()
        await asyncio.sleep(0.005)
    return float("inf")
