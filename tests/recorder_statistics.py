"""Compiling and reading long-term statistics with Home Assistant's recorder in a test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
    statistics_during_period,
)

T0 = datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
# Time jumps minutes ahead between telegrams: no watchdog reconnect in between.
OPTIONS = {"time_between_update": 0, "watchdog_timeout": 3600}


async def compile_periods(hass: HomeAssistant, start: datetime, end: datetime) -> None:
    """Compile every 5-minute period from `start` to `end` (and the hour, at :55), in order."""
    await async_wait_recording_done(hass)
    while start < end:
        do_adhoc_statistics(hass, start=start)
        await async_wait_recording_done(hass)
        start += timedelta(minutes=5)


async def statistics(hass: HomeAssistant, ids: set[str], period: str) -> dict[str, Any]:
    """Statistics of `ids` since two hours before T0, per `period` ("5minute", "hour")."""
    result: dict[str, Any] = await hass.async_add_executor_job(
        statistics_during_period, hass, T0 - timedelta(hours=2), None, ids, period
    )
    return result
