"""The update window: nothing lost, connection changes and first telegrams at once."""

from __future__ import annotations

import asyncio

from dsmr_parser.objects import Telegram
from homeassistant.core import HomeAssistant

from custom_components.dsmr.coordinator import DsmrCoordinator
from custom_components.dsmr.reader import ConnectionState, DsmrReader, ReaderItem


def _coordinator(hass: HomeAssistant, window: float) -> tuple[DsmrCoordinator, list[object]]:
    queue: asyncio.Queue[ReaderItem] = asyncio.Queue()
    reader = DsmrReader({"port": "/dev/null", "dsmr_version": "5"}, queue)
    coordinator = DsmrCoordinator(hass, reader, window)
    pushed: list[object] = []
    coordinator.async_add_listener(
        lambda: pushed.append(coordinator.telegram if coordinator.available else None)
    )
    return coordinator, pushed


async def test_every_telegram_without_a_window(hass: HomeAssistant) -> None:
    coordinator, pushed = _coordinator(hass, 0)
    telegrams = [Telegram() for _ in range(5)]
    coordinator.handle(ConnectionState(True))
    for telegram in telegrams:
        coordinator.handle(telegram)
    assert pushed == telegrams
    assert coordinator.published == 5


async def test_window_publishes_first_at_once_and_latest_at_the_end(hass: HomeAssistant) -> None:
    coordinator, pushed = _coordinator(hass, 0.2)
    first, second, third = Telegram(), Telegram(), Telegram()
    coordinator.handle(ConnectionState(True))
    coordinator.handle(first)
    assert pushed == [first]  # the first telegram after connecting: at once
    coordinator.handle(second)
    coordinator.handle(third)
    assert pushed == [first]  # inside the window: held back ...
    await asyncio.sleep(0.3)
    assert pushed == [first, third]  # ... and the latest published when it closes
    await asyncio.sleep(0.3)
    assert pushed == [first, third]  # nothing new: nothing written
    coordinator.async_shutdown()


async def test_disconnect_is_published_inside_the_window(hass: HomeAssistant) -> None:
    coordinator, pushed = _coordinator(hass, 10)
    telegram, pending, after = Telegram(), Telegram(), Telegram()
    coordinator.handle(ConnectionState(True))
    coordinator.handle(telegram)
    coordinator.handle(pending)
    coordinator.handle(ConnectionState(False, "closed"))
    assert pushed == [telegram, None]  # unavailable at once; the pending publish is cancelled
    assert coordinator.available is False
    coordinator.handle(ConnectionState(True))
    assert pushed == [telegram, None]  # available again only with a telegram
    coordinator.handle(after)
    assert pushed == [telegram, None, after]  # first after reconnect: at once, despite the window
    coordinator.async_shutdown()
