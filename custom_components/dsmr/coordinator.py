"""The latest telegram, the update window, and pushing both to the entities.

The reader puts telegrams and connection changes on a queue; `DsmrCoordinator.async_run`
takes them off one by one. Connection changes and the first telegram after a (re)connect are
pushed at once; later telegrams at most once per `time_between_update` seconds. Nothing is
dropped: the window's telegrams are handed over with the push, measurement sensors publish
their mean and registers the latest value.

Each publish also says which 5-minute statistics period its telegram belongs to (by the meter's
own clock, HA's when the telegram has none) and whether it is the last publish of that period
that can be expected: registers write a grown value only then (see `DsmrSensor`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
import time
from typing import Any, Final

from dsmr_parser.objects import MbusDevice, Telegram
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .const import CONF_DSMR_VERSION, CONF_SERIAL_ID, LOGGER
from .ports import redact_port
from .reader import ConnectionState, DsmrReader, ReaderItem, equipment_identifier
from .rebroadcast import RebroadcastServer
from .repairs import async_connection_changed, async_meter_replaced

type MbusListener = Callable[[MbusDevice], None]

# Home Assistant's short-term statistics period, in seconds: long-term statistics take a
# register's last state of each such period.
STATISTICS_PERIOD: Final = 300


class DsmrCoordinator:
    """Hold the latest telegram of one meter and push it to listeners."""

    def __init__(
        self,
        hass: HomeAssistant,
        reader: DsmrReader,
        time_between_update: float,
        entry: ConfigEntry | None = None,
    ) -> None:
        """Initialize the coordinator for a reader's queue (and the entry it serves)."""
        self.hass = hass
        self.reader = reader
        self.entry = entry
        # Set when the meter reports another equipment id than the entry's: a replaced meter,
        # whose registers may start lower (a new cycle for the statistics, not a bad read).
        self.meter_replaced = False
        self.window = max(0.0, float(time_between_update))
        # Entities show their restored states until the first connection attempt says otherwise.
        self.available = True
        self.telegram: Telegram | None = None  # the published telegram
        self.latest: Telegram | None = None  # the newest telegram received
        # The telegrams of the window being published (the published one last): measurement
        # sensors publish their mean over these, so no reading is thrown away.
        self.window_telegrams: list[Telegram] = []
        self._collecting: list[Telegram] = []
        self.published = 0
        # The published telegram's statistics period (time // STATISTICS_PERIOD), and whether
        # the next publish, as far apart as the last two, falls in the next period.
        self.period = 0
        self.closes_period = False
        self._published_at: float | None = None
        self._listeners: dict[int, CALLBACK_TYPE] = {}
        self._mbus_listeners: list[MbusListener] = []
        self._known_channels: dict[int, Any] = {}
        self._fresh = True  # the next telegram is the first since a (re)connect
        self._next_publish = 0.0
        self._pending: asyncio.TimerHandle | None = None
        # The re-broadcast server while the meter is shared (sharing.py), else None.
        self.rebroadcast: RebroadcastServer | None = None

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update` on every push; return a function that removes it."""
        key = id(update)
        self._listeners[key] = update

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

    @callback
    def async_add_mbus_listener(self, found: MbusListener) -> CALLBACK_TYPE:
        """Call `found` for every M-Bus device the first time a telegram carries it."""
        self._mbus_listeners.append(found)
        for device in self._mbus_devices(self.telegram):
            found(device)
        return lambda: self._mbus_listeners.remove(found)

    async def async_run(self) -> None:
        """Consume the reader's queue until cancelled; a telegram that fails ends nothing."""
        queue = self.reader.queue
        while True:
            item = await queue.get()
            try:
                self.handle(item)
            except Exception as err:  # counted and logged; the next telegram is taken
                self._failed(err, "the coordinator")

    @callback
    def handle(self, item: ReaderItem) -> None:
        """Take one telegram or connection change from the reader."""
        if isinstance(item, ConnectionState):
            self._connection_changed(item)
            return
        self.latest = item
        if self.window:
            self._collecting.append(item)
        now = self.hass.loop.time()
        if self._fresh:
            self._check_identity(item)
            self._publish(now)
        elif now >= self._next_publish:
            self._publish(now)
        elif self._pending is None:
            self._pending = self.hass.loop.call_at(self._next_publish, self._publish_pending)

    def _connection_changed(self, state: ConnectionState) -> None:
        self._fresh = True
        if self.entry is not None:
            async_connection_changed(self.hass, self.entry, state)
        if state.connected:
            return  # available again with the first telegram, not before
        self._cancel_pending()
        self._collecting = []
        if self.available:
            self.available = False
            self._push()

    def _check_identity(self, telegram: Telegram) -> None:
        """Check, on the first telegram of each connection, that it is still the same meter."""
        entry = self.entry
        if entry is None or not (expected := entry.data.get(CONF_SERIAL_ID)):
            return
        found = equipment_identifier(telegram, entry.data[CONF_DSMR_VERSION])
        if found is not None and found != expected and not self.meter_replaced:
            LOGGER.warning(
                "%s reports another equipment identifier: meter replaced?",
                redact_port(entry.title),
            )
            self.meter_replaced = True
            async_meter_replaced(self.hass, entry)

    def _publish_pending(self) -> None:
        self._pending = None
        if self.available and self.latest is not self.telegram:
            self._publish(self.hass.loop.time())

    def _publish(self, now: float) -> None:
        self._cancel_pending()
        self._fresh = False
        self._next_publish = now + self.window
        telegram = self.telegram = self.latest
        self.window_telegrams, self._collecting = self._collecting, []
        self.available = True
        self.published += 1
        self._place_in_period(telegram)
        if self._mbus_listeners:
            for device in self._mbus_devices(telegram):
                key = device.channel_id
                ident = getattr(getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None), "value", None)
                # Again when a reading appears: a channel without one has no entity yet.
                seen = (ident, hasattr(device, "MBUS_METER_READING"))
                if self._known_channels.get(key) != seen:
                    self._known_channels[key] = seen
                    for found in list(self._mbus_listeners):
                        self._call(found, device)
        self._push()

    def _place_in_period(self, telegram: Telegram | None) -> None:
        stamp = getattr(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None), "value", None)
        at = stamp.timestamp() if isinstance(stamp, datetime) else time.time()
        previous, self._published_at = self._published_at, at
        step = at - previous if previous is not None and previous < at else 0.0
        self.period = int(at // STATISTICS_PERIOD)
        self.closes_period = int((at + step) // STATISTICS_PERIOD) != self.period

    def _push(self) -> None:
        for update in list(self._listeners.values()):
            self._call(update)

    def _call(self, listener: Callable[..., None], *args: Any) -> None:
        """Call one listener; if it fails, count it and go on.

        An entity meeting a value it cannot show, say: the other listeners are still called,
        and it gets the next telegram again.
        """
        try:
            listener(*args)
        except Exception as err:  # counted and logged; the others are updated
            owner = getattr(listener, "__self__", None)
            self._failed(err, f"entity {getattr(owner, 'entity_id', None) or owner or listener}")

    def _failed(self, err: Exception, who: str) -> None:
        stats = self.reader.stats
        stats.update_errors += 1
        stats.fault(
            "update", "A telegram failed in %s (%s); the rest is updated", who, type(err).__name__
        )

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    @callback
    def async_shutdown(self) -> None:
        """Cancel the pending publish (the run task is cancelled by the entry)."""
        self._cancel_pending()

    @staticmethod
    def _mbus_devices(telegram: Telegram | None) -> list[MbusDevice]:
        devices: list[MbusDevice] = getattr(telegram, "MBUS_DEVICES", None) or []
        return devices
