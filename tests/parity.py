"""Core `dsmr` and ours side by side: the same entry, the same telegrams, the same registry.

`run_core` starts a second Home Assistant in the test (custom integrations off, so `dsmr` is
core's integration as installed), sets up an entry connected over real TCP to the simulator
serving the test's telegrams, and returns what it made: entities, their states and devices.
`observe` takes the same picture of our integration in the test's own `hass`; tests compare the
two. Nothing of core is patched or mocked: its own reader (dsmr_parser over serialx) reads the
socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant import config_entries, core as core_module
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, async_get_hass
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    translation as translation_helper,
)
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.dsmr.config_flow import DsmrFlowHandler
from custom_components.dsmr.const import DOMAIN
from dsmr_sim.tcp import TcpServer

from .helpers import wait_for
from .leaks import core_runs

type Before = Callable[[HomeAssistant, ConfigEntry], None]
# The test harness shares one translation cache across all tests (patching this class): core's
# and our `dsmr` strings would mix. Core's Home Assistant gets a cache of its own.
OWN_TRANSLATIONS = translation_helper._TranslationsCacheData
ENTRY_ID = "01JPARITY0000000000000000"


@dataclass
class Entity:
    """An entity as the user sees it."""

    unique_id: str
    device: frozenset[tuple[str, str]]
    state: str | None
    unit: str | None
    device_class: str | None
    state_class: str | None


@dataclass
class Observed:
    """What an integration made of an entry: entities by entity id, and devices."""

    entities: dict[str, Entity]
    devices: dict[frozenset[tuple[str, str]], str | None]
    registry: list[er.RegistryEntry]
    device_registry: list[dr.DeviceEntry]

    def handover(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Leave this registry in `hass` for `entry`: as a user who switches finds it."""
        devices, entities = dr.async_get(hass), er.async_get(hass)
        made = {
            device.id: devices.async_get_or_create(
                config_entry_id=entry.entry_id, identifiers=device.identifiers, name=device.name
            ).id
            for device in self.device_registry
        }
        for reg in self.registry:
            entities.async_get_or_create(
                reg.domain,
                reg.platform,
                reg.unique_id,
                suggested_object_id=reg.entity_id.split(".", 1)[1],
                config_entry=entry,
                device_id=made.get(str(reg.device_id)),
                original_device_class=reg.original_device_class,
                translation_key=reg.translation_key,
                unit_of_measurement=reg.unit_of_measurement,
                has_entity_name=reg.has_entity_name,
                disabled_by=reg.disabled_by,
            )


def entry_for(server: TcpServer, version: str, **data: Any) -> MockConfigEntry:
    """The entry both integrations get: core's data layout, a fixed entry id."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title=server.url,
        data={"port": server.url, "dsmr_version": version, "protocol": "dsmr_protocol"} | data,
        unique_id=data.get("serial_id"),
        options={"time_between_update": 0},
    )


def observe(hass: HomeAssistant, entry: ConfigEntry) -> Observed:
    """The entry's entities (with their states) and devices."""
    devices = {
        device.id: frozenset(device.identifiers)
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    entities = {}
    registry = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    for reg in registry:
        state = hass.states.get(reg.entity_id)
        attributes = state.attributes if state is not None else {}
        entities[reg.entity_id] = Entity(
            unique_id=reg.unique_id,
            device=devices.get(str(reg.device_id), frozenset()),
            state=state.state if state is not None else None,
            unit=attributes.get("unit_of_measurement"),
            device_class=attributes.get("device_class"),
            state_class=attributes.get("state_class"),
        )
    device_registry = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    names = {frozenset(d.identifiers): d.name for d in device_registry}
    return Observed(entities, names, registry, device_registry)


async def run_core(
    server: TcpServer, entry: MockConfigEntry, *, before: Before | None = None, telegrams: int = 1
) -> Observed:
    """Run core's `dsmr` on `entry` against `server`; what it shows after `telegrams`."""
    # Config flow handlers are registered per domain for the whole process (importing core's
    # flow replaces ours): core's flow is `dsmr`'s while core runs, ours again afterwards.
    from homeassistant.components.dsmr.config_flow import DSMRFlowHandler

    config_entries.HANDLERS[DOMAIN] = DSMRFlowHandler
    with core_runs():
        return await _run_core(server, entry, before, telegrams)


async def _run_core(
    server: TcpServer, entry: MockConfigEntry, before: Before | None, telegrams: int
) -> Observed:
    """Core's run itself (its log lines are its own: `core_runs`)."""
    ours = async_get_hass()
    async with async_test_home_assistant() as core:
        translations = core.data[translation_helper.TRANSLATION_FLATTEN_CACHE]
        translations.cache_data = OWN_TRANSLATIONS({}, {})
        entry = MockConfigEntry(
            domain=entry.domain,
            entry_id=entry.entry_id,
            title=entry.title,
            data=dict(entry.data),
            unique_id=entry.unique_id,
            options=dict(entry.options),
        )
        entry.add_to_hass(core)
        if before is not None:
            before(core, entry)
        try:
            assert await core.config_entries.async_setup(entry.entry_id)
            await core.async_block_till_done()
            assert "custom_components" not in type(entry.runtime_data).__module__
            await server.wait_for_clients(1)
            for _ in range(telegrams):
                await server.send_telegram()
                # Core's reader reads the socket in the same loop; its entities follow.
                await asyncio.sleep(0.05)
            await wait_for(lambda: bool(entry.runtime_data.telegram))
            await core.async_block_till_done()
            return observe(core, entry)
        finally:
            await core.config_entries.async_unload(entry.entry_id)
            await core.async_stop(force=True)
            await server.wait_for_clients(0)
            _cancel_keep_alive_timers()
            # A HomeAssistant made is the "current" one for helpers that look it up: ours again.
            core_module._hass.hass = ours
            config_entries.HANDLERS[DOMAIN] = DsmrFlowHandler


def _cancel_keep_alive_timers() -> None:
    """dsmr_parser never cancels its keep-alive timer when a connection closes: do it here."""
    loop: Any = asyncio.get_running_loop()
    for handle in list(loop._scheduled):
        callback = getattr(handle, "_callback", None)
        if getattr(callback, "__qualname__", "") == "DSMRProtocol.keep_alive":
            handle.cancel()
