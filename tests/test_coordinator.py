"""The update window: nothing lost, connection changes and first telegrams at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from dsmr_parser.objects import Telegram
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.dsmr.connection import ConnectionState
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.coordinator import SAVE_DELAY, DsmrCoordinator
from custom_components.dsmr.p1.flow_rate import Capture, FlowState
from custom_components.dsmr.p1.snapshot import Snapshot, Window, flow_key
from custom_components.dsmr.p1.telegram import TelegramReader, version_setup

from .telegrams import GAS_ID, dsmr5


def _coordinator(hass: HomeAssistant, window: float) -> tuple[DsmrCoordinator, list[object]]:
    coordinator = DsmrCoordinator(hass, None, Window("5", ()), window)
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


async def test_a_window_that_no_snapshot_can_be_made_of_is_counted(
    hass: HomeAssistant,
) -> None:
    """A snapshot that fails to be made: counted in update_errors, the next one is published."""

    class Broken(Window):
        def publish(self, previous: Snapshot | None, received_at: float, **kw: Any) -> Snapshot:
            if self._latest is bad:
                raise ValueError("cannot")
            return super().publish(previous, received_at, **kw)

    coordinator = DsmrCoordinator(hass, None, Broken("5", ()), 0)
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


async def test_flows_are_kept_in_a_store_across_restarts(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """The flows saved at the last shutdown go on; a flow with no capture is not taken.

    Saved again a while after a publish moved them, and at shutdown.
    """
    entry = MockConfigEntry(domain=DOMAIN, title="Meter")
    entry.add_to_hass(hass)
    key = f"{DOMAIN}.{entry.entry_id}"
    gas = flow_key(1, GAS_ID)
    at = datetime(2024, 1, 15, 10, 55, tzinfo=UTC)  # 11:55 on the meter's clock (CET)
    stored = FlowState(Capture(at, Decimal("1.000")), 0.5)
    hass_storage[key] = {
        "version": 1,
        "minor_version": 1,
        "key": key,
        "data": {"flows": {gas: stored.as_dict(), "channel 2": FlowState().as_dict()}},
    }
    window = Window("5", ())
    coordinator = DsmrCoordinator(hass, entry, window, 0)
    await coordinator.async_load()
    assert dict(window.flows) == {gas: stored}
    coordinator.connection_changed(ConnectionState(True))
    coordinator.telegram_received(gas_telegram("240115120000W", "00001.100"))
    flows = coordinator.data.flows  # type: ignore[union-attr]
    assert flows[gas].last is not None and flows[gas].last.value == Decimal("1.100")
    assert flows[gas].m3h == pytest.approx(1.2)  # 0.1 m³ in 5 minutes since the stored capture
    assert hass_storage[key]["data"]["flows"] != {gas: flows[gas].as_dict()}  # not yet
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert hass_storage[key]["data"]["flows"] == {gas: flows[gas].as_dict()}
    coordinator.telegram_received(gas_telegram("240115120500W", "00001.150"))
    await coordinator.async_shutdown()
    flows = coordinator.data.flows  # type: ignore[union-attr]
    assert flows[gas].m3h == pytest.approx(0.6)
    assert hass_storage[key]["data"]["flows"] == {gas: flows[gas].as_dict()}


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"flows": None},
        {"flows": {"channel 1": None, "channel 2": "x", "channel 3": {"value": "x", "at": "y"}}},
    ],
)
async def test_a_damaged_store_is_no_flow(
    hass: HomeAssistant, hass_storage: dict[str, Any], data: dict[str, Any]
) -> None:
    entry = MockConfigEntry(domain=DOMAIN, title="Meter")
    entry.add_to_hass(hass)
    key = f"{DOMAIN}.{entry.entry_id}"
    hass_storage[key] = {"version": 1, "minor_version": 1, "key": key, "data": data}
    window = Window("5", ())
    await DsmrCoordinator(hass, entry, window, 0).async_load()
    assert window.flows == {}


async def test_without_an_entry_no_store_is_read(hass: HomeAssistant) -> None:
    window = Window("5", ())
    coordinator = DsmrCoordinator(hass, None, window, 0)
    await coordinator.async_load()
    assert window.flows == {}
    coordinator.telegram_received(gas_telegram("240115120000W", "00001.100"))
    await coordinator.async_shutdown()
    assert list(window.flows) == [flow_key(1, GAS_ID)]


def gas_telegram(stamp: str, reading: str) -> Telegram:
    """A DSMR 5 telegram with a gas meter on channel 1, and its capture of the same time."""
    text = dsmr5(
        "0-1:24.1.0(003)",
        f"0-1:96.1.0({GAS_ID})",
        f"0-1:24.2.1({stamp})({reading}*m3)",
        stamp=stamp,
    )
    return TelegramReader(version_setup("5")[0]).read(text).telegram
