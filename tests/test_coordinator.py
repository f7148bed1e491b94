"""The update window: nothing lost, connection changes and first telegrams at once."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
import time
from typing import Any

from dsmr_parser.objects import Telegram
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.coordinator import DsmrCoordinator
from custom_components.dsmr.derived import Derived, Deriver
from custom_components.dsmr.flow import Capture, FlowState
from custom_components.dsmr.policy import Judgement, Verdict
from custom_components.dsmr.reader import ConnectionState
from custom_components.dsmr.snapshot import SnapshotBuilder

from .test_snapshot import publish


def _coordinator(hass: HomeAssistant, window: float) -> tuple[DsmrCoordinator, list[object]]:
    coordinator = DsmrCoordinator(hass, None, SnapshotBuilder(()), window)
    pushed: list[object] = []

    def update() -> None:
        data = coordinator.data
        assert data is not None
        pushed.append(data.telegram if coordinator.last_update_success else None)

    coordinator.async_add_listener(update)
    return coordinator, pushed


async def test_every_telegram_without_a_window(hass: HomeAssistant) -> None:
    coordinator, pushed = _coordinator(hass, 0)
    telegrams = [Telegram() for _ in range(5)]
    coordinator.connection_changed(ConnectionState(True))
    for telegram in telegrams:
        coordinator.telegram_received(telegram)
    assert pushed == telegrams
    assert coordinator.published == 5


async def test_window_publishes_first_at_once_and_latest_at_the_end(hass: HomeAssistant) -> None:
    coordinator, pushed = _coordinator(hass, 0.2)
    first, second, third, fourth = Telegram(), Telegram(), Telegram(), Telegram()
    coordinator.connection_changed(ConnectionState(True))
    coordinator.telegram_received(first)
    assert pushed == [first]  # the first telegrams after connecting: at once
    coordinator.telegram_received(second)
    assert pushed == [first, second]
    coordinator.telegram_received(third)
    coordinator.telegram_received(fourth)
    assert pushed == [first, second]  # inside the window: held back ...
    await asyncio.sleep(0.3)
    assert pushed == [first, second, fourth]  # ... and the latest published when it closes
    await asyncio.sleep(0.3)
    assert pushed == [first, second, fourth]  # nothing new: nothing written
    await coordinator.async_shutdown()


async def test_disconnect_is_published_inside_the_window(hass: HomeAssistant) -> None:
    coordinator, pushed = _coordinator(hass, 10)
    first, second, pending, after = Telegram(), Telegram(), Telegram(), Telegram()
    coordinator.connection_changed(ConnectionState(True))
    coordinator.telegram_received(first)
    coordinator.telegram_received(second)
    coordinator.telegram_received(pending)
    coordinator.connection_changed(ConnectionState(False, "closed"))
    assert pushed == [first, second, None]  # unavailable at once; the pending one is dropped
    assert coordinator.last_update_success is False
    coordinator.connection_changed(ConnectionState(True))
    assert pushed == [first, second, None]  # available again only with a telegram
    coordinator.telegram_received(after)
    assert pushed == [first, second, None, after]  # first after reconnect: at once
    await coordinator.async_shutdown()


async def test_a_window_telegram_that_the_builder_cannot_read_is_counted(
    hass: HomeAssistant,
) -> None:
    """A snapshot that fails to build: counted in update_errors, the next one is published."""

    class Broken(SnapshotBuilder):
        def build(self, previous: Any, received_at: float, **kw: Any) -> Any:
            if self._latest is bad:
                self.discard()
                raise ValueError("cannot")
            return super().build(previous, received_at, **kw)

    coordinator = DsmrCoordinator(hass, None, Broken(()), 0)
    pushed: list[object] = []
    coordinator.async_add_listener(lambda: pushed.append(coordinator.data))
    bad, good = Telegram(), Telegram()
    coordinator.connection_changed(ConnectionState(True))
    coordinator.telegram_received(bad)
    assert pushed == []
    assert coordinator.counters.update_errors == 1
    coordinator.telegram_received(good)
    assert len(pushed) == 1
    assert pushed[0].telegram is good  # type: ignore[attr-defined]
    await coordinator.async_shutdown()


async def test_a_held_register_is_logged_and_a_new_cycle_is_a_repair_issue(
    hass: HomeAssistant,
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, title="Meter")
    entry.add_to_hass(hass)
    coordinator = DsmrCoordinator(hass, entry, SnapshotBuilder(()), 0)
    entity_id = "sensor.electricity_meter_energy_consumption_tarif_1"
    coordinator.async_explain(entity_id, Judgement(6.5, Verdict.HOLD, 6.5, 0.0), "kWh")
    assert coordinator.counters.last_error is None  # held on: told when the hold started
    coordinator.async_explain(entity_id, Judgement(6.5, Verdict.HOLD, 6.5, 0.0, True), "kWh")
    assert coordinator.counters.last_error == (
        f"{entity_id} went down from 6.5 to 0.0; showing 6.5 until the lower value lasts an"
        " hour or the meter reports another equipment identifier"
    )
    issues = ir.async_get(hass)
    coordinator.async_explain(entity_id, Judgement(0.1, Verdict.SHOW, 6.5, 0.1), "kWh")
    assert not issues.async_get_issue(DOMAIN, f"new_cycle_{entity_id}")
    coordinator.async_explain(entity_id, Judgement(0.1, Verdict.NEW_CYCLE, 6.5, 0.1), "kWh")
    issue = issues.async_get_issue(DOMAIN, f"new_cycle_{entity_id}")
    assert issue is not None
    assert issue.translation_placeholders == {
        "title": "Meter",
        "entity": entity_id,
        "before": "6.5 kWh",
        "after": "0.1 kWh",
    }


async def test_a_stored_flow_starts_the_builder_unless_it_runs(hass: HomeAssistant) -> None:
    deriver = Deriver(demand=False)
    coordinator = DsmrCoordinator(hass, None, SnapshotBuilder((), deriver=deriver), 0)
    stored = FlowState(Capture(datetime(2024, 1, 15, 16, tzinfo=UTC), Decimal("1.0")), 0.5)
    assert coordinator.flow("gas") is None  # nothing published yet
    assert coordinator.restore_flow("gas", FlowState()) is None  # no capture to go on from
    assert coordinator.restore_flow("gas", stored) is stored
    assert deriver.restored == {"gas": stored}
    # A builder without flows takes none.
    assert DsmrCoordinator(hass, None, SnapshotBuilder(()), 0).restore_flow("gas", stored) is None
    # Once a snapshot carries the flow, a stored state is too late.
    running = FlowState(stored.last, 0.7)
    snapshot = publish(coordinator.builder, [Telegram()], None, time.time())
    flows = Derived(flows={"gas": running})
    coordinator.async_set_updated_data(dataclasses.replace(snapshot, derived=flows))
    assert coordinator.flow("gas") is running
    assert coordinator.flow("water") is None
    assert coordinator.restore_flow("gas", stored) is None
