"""One meter's telegrams, pushed to its entities as snapshots through Home Assistant's coordinator.

The connection calls `telegram_received` and `connection_changed` on the event loop: no queue.
Each telegram goes into the update window (p1/snapshot.py); a connection's first two are published
at once (sub-meters need two publishes in a row), later ones through a `Debouncer`: at most one
publish per window. A lost connection makes every entity unavailable at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .connection import ConnectionState, Counters, redact_port
from .const import CONF_SERIAL_ID, DOMAIN, LOGGER
from .p1.flow_rate import FlowState
from .p1.snapshot import Snapshot, Window
from .repairs import async_connection_changed, async_meter_replaced

if TYPE_CHECKING:
    from .connection import Connection
    from .p1.rebroadcast import RebroadcastServer

TOO_FAST = 0.5  # s: sooner is too fast (a meter sends one a second at most; 2.2/4: every ten)
AT_ONCE = 2  # a connection's first telegrams, published at once
SAVE_DELAY = 60  # seconds: the flows are saved at most this often (and at shutdown)
_EMPTY: Mapping[str, str] = MappingProxyType({})


def signal(entry_id: str, event: str) -> str:
    """An entry's signal: "new" sub-meters or lines, a sub-meter "reading", the meter "online"."""
    return f"{DOMAIN}_{entry_id}_{event}"


@dataclass(slots=True)
class DsmrRuntimeData:
    """What a loaded entry holds."""

    coordinator: DsmrCoordinator
    connection: Connection
    rebroadcast: RebroadcastServer | None = None  # while the meter is shared (sharing.py)


type DsmrConfigEntry = ConfigEntry[DsmrRuntimeData]


@dataclass(frozen=True, slots=True)
class Health:
    """The connection's counters as they stood when asked."""

    connected: bool
    telegrams_per_minute: int
    skipped_telegrams: int
    last_telegram: datetime | None
    meter_clock_offset: float | None


class DsmrCoordinator(DataUpdateCoordinator[Snapshot]):
    """Publish a meter's telegrams as snapshots, at most once per update window."""

    config_entry: DsmrConfigEntry | None
    data: Snapshot | None  # type: ignore[assignment]  # None until the first telegram

    def __init__(
        self,
        hass: HomeAssistant,
        entry: DsmrConfigEntry | None,
        window: Window,
        seconds: float,
        counters: Counters | None = None,
    ) -> None:
        """Initialize for an entry (None in tests), publishing `window` every `seconds`."""
        super().__init__(hass, LOGGER, config_entry=entry, name=DOMAIN, update_interval=None)
        self.window = window
        self.seconds = max(0.0, float(seconds))
        self.counters = counters if counters is not None else Counters()
        self.connected, self.published = False, 0
        self.too_fast = 0  # telegrams sooner than a meter sends them: taken, counted
        self.latest: Any = None  # the newest telegram (diagnostics)
        self.replaced = False  # the meter reports another equipment identifier
        self.new_meter = False  # the entry was just moved to this meter (its first telegram)
        self._received = -1.0
        self._fresh = True  # the next telegram is the first since a (re)connect
        self._at_once = AT_ONCE
        self._debouncer: Debouncer[None] | None = None
        if self.seconds:
            self._debouncer = Debouncer(
                hass, LOGGER, cooldown=self.seconds, immediate=True, function=self._publish
            )
        self._store: Store[dict[str, Any]] | None = None
        if entry is not None:
            self._store = Store(hass, 1, f"{DOMAIN}.{entry.entry_id}")
        self._saved: Mapping[str, FlowState] = window.flows
        self._shape: tuple[Any, ...] = ()
        self._stamps: tuple[Any, ...] = ()

    async def async_load(self) -> None:
        """Take the flows saved at the last shutdown, so a short restart keeps them."""
        if self._store is None or not isinstance(stored := await self._store.async_load(), dict):
            return
        saved = stored.get("flows")
        flows = {  # those with a capture
            key: flow
            for key, state in (saved.items() if isinstance(saved, dict) else ())
            if (flow := FlowState.from_dict(state if isinstance(state, dict) else None)).last
        }
        self.window.flows = self._saved = MappingProxyType(flows)

    @callback
    def telegram_received(self, telegram: Any, unknown_lines: Mapping[str, str] = _EMPTY) -> None:
        """Take a good telegram; whatever fails is counted, never raised."""
        try:
            if (now := time.monotonic()) - self._received < TOO_FAST:
                self.too_fast += 1
            self._received, self.latest = now, telegram
            self.window.add(telegram, unknown_lines)
            if self._debouncer is None:
                self._publish()
            elif self._at_once:
                self._at_once -= 1
                self._debouncer.async_cancel()
                self._debouncer.async_schedule_call()
            else:
                self._debouncer.async_schedule_call()
        except Exception as err:  # counted and logged; the next telegram is taken
            self.failed(err, "the coordinator")

    @callback
    def connection_changed(self, state: ConnectionState) -> None:
        """Unavailable at once when the connection goes; available again with a telegram."""
        self._fresh, self._at_once, self.connected = True, AT_ONCE, state.connected
        if self.config_entry is not None:
            async_connection_changed(self.hass, self.config_entry, state)
            async_dispatcher_send(self.hass, signal(self.config_entry.entry_id, "online"))
        if state.connected:
            return
        if self._debouncer is not None:
            self._debouncer.async_cancel()
        self.window.discard()
        self.last_exception = ConnectionError(state.reason or "connection closed")
        if self.last_update_success:  # (async_set_update_error would log every outage)
            self.last_update_success = False
            self.async_update_listeners()

    @callback
    def _publish(self) -> None:
        if not self.window.pending:
            return
        try:
            replaced = (self._fresh and self._check_identity()) or self.replaced
            snapshot = self.window.publish(
                self.data, time.time(), fresh=self._fresh, replaced=replaced
            )
        except Exception as err:  # a window the snapshot cannot be made of: skipped
            self.window.discard()
            self.failed(err, "the snapshot")
            return
        fresh, self._fresh = self._fresh, False
        self.published += 1
        if snapshot.flows is not self._saved and self._store is not None:
            self._saved = snapshot.flows
            self._store.async_delay_save(self._flows_data, SAVE_DELAY)
        self.async_set_updated_data(snapshot)
        if self.config_entry is not None and (shape := snapshot.shape()) != self._shape:
            self._shape = shape  # sub-meters or unnamed lines came: their entities are made
            async_dispatcher_send(self.hass, signal(self.config_entry.entry_id, "new"))
        if self.config_entry is not None and (stamps := snapshot.stamps()) != self._stamps:
            self._stamps = stamps  # a sub-meter's new reading: filed in its hour's statistic
            async_dispatcher_send(self.hass, signal(self.config_entry.entry_id, "reading"))
        if fresh and self.config_entry is not None:  # available again with this publish
            async_dispatcher_send(self.hass, signal(self.config_entry.entry_id, "online"))

    def _flows_data(self) -> dict[str, Any]:
        return {"flows": {key: state.as_dict() for key, state in self._saved.items()}}

    def _check_identity(self) -> bool:
        """On a connection's first telegram: whether another meter than before sends it."""
        entry = self.config_entry
        if self.new_meter:  # moved to a replacing meter: its registers begin anew
            self.new_meter = False
            return True
        if entry is None or self.replaced or not (expected := entry.data.get(CONF_SERIAL_ID)):
            return False
        if self.window.identity() in (None, expected):
            return False
        LOGGER.warning(
            "%s reports another equipment identifier: meter replaced?", redact_port(entry.title)
        )
        self.replaced = True
        async_meter_replaced(self.hass, entry)
        return True

    @property
    def online(self) -> bool:
        """Whether the meter is connected and its telegrams are published."""
        return self.connected and self.last_update_success

    def health(self) -> Health:
        """The counters as they stand, for the health entities."""
        counters = self.counters
        received = counters.last_telegram
        at = None if received is None else datetime.fromtimestamp(received, UTC)
        stamp = getattr(getattr(self.latest, "P1_MESSAGE_TIMESTAMP", None), "value", None)
        offset = None
        if isinstance(stamp, datetime) and at is not None:
            offset = round((stamp - at).total_seconds(), 1)
        last = None if at is None else at.replace(microsecond=0)
        skipped = counters.crc_errors + counters.parse_errors
        return Health(self.online, counters.per_minute(), skipped, last, offset)

    def failed(self, err: Exception, where: str) -> None:
        """Count and log (rate-limited) a telegram that failed somewhere; the rest goes on."""
        self.counters.update_errors += 1
        self.counters.fault(
            "update", "A telegram failed in %s (%s); the rest is updated", where, type(err).__name__
        )

    async def async_shutdown(self) -> None:
        """Cancel a pending publish and save the flows, then Home Assistant's own shutdown."""
        if self._debouncer is not None:
            self._debouncer.async_shutdown()
        if self._store is not None and self._saved:
            await self._store.async_save(self._flows_data())
        await super().async_shutdown()
