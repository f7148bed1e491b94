"""One meter's snapshots, pushed to its entities through Home Assistant's coordinator.

The reader's protocol calls `telegram_received` for every good telegram and
`connection_changed` when the connection comes or goes, straight on the event loop: no queue.
The first two telegrams of a connection are published at once; later ones through a `Debouncer`
(immediate, cooldown = the update window): at most one publish per window. Each telegram is
added to the snapshot builder's window as it arrives (running figures: nothing is kept per
telegram, however fast telegrams come), and each publish builds the next `Snapshot` from the
window and the previous snapshot (snapshot.py) and hands it to `async_set_updated_data`; a lost
connection makes every entity unavailable. With a window of 0 every telegram is published at
once, without the debouncer.

The coordinator owns the counters (`ReaderStats`, filled by the reader) and publishes a frozen
`Health` of them for the health entities; entities never touch the reader or the counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
import time
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .const import CONF_SERIAL_ID, DOMAIN, LOGGER
from .counters import ReaderStats
from .flow import FlowState
from .health import Health
from .issues import async_connection_changed, async_meter_replaced, async_register_new_cycle
from .policy import Judgement, Verdict
from .ports import redact_port
from .reader import ConnectionState
from .rebroadcast import RebroadcastServer
from .snapshot import Snapshot, SnapshotBuilder

if TYPE_CHECKING:
    from .reader import DsmrReader

CONF_AUTO_DISABLED = "auto_disabled"
# A meter sends a telegram every second at most (DSMR 2.2/4: every ten): sooner is too fast.
TOO_FAST = 0.5
AT_ONCE = 2


class ConnectionLost(Exception):
    """The connection to the meter is down (the reader logs why)."""


@dataclass(slots=True)
class DsmrRuntimeData:
    """What a loaded entry holds: the coordinator, the connection, the counters, the sharing."""

    coordinator: DsmrCoordinator
    reader: DsmrReader
    counters: ReaderStats
    # The re-broadcast server while the meter is shared (sharing.py), else None.
    rebroadcast: RebroadcastServer | None = None


type DsmrConfigEntry = ConfigEntry[DsmrRuntimeData]


class DsmrCoordinator(DataUpdateCoordinator[Snapshot]):
    """Publish a meter's telegrams as snapshots, at most once per update window."""

    config_entry: DsmrConfigEntry | None
    data: Snapshot | None  # type: ignore[assignment]  # None until the first telegram

    def __init__(
        self,
        hass: HomeAssistant,
        entry: DsmrConfigEntry | None,
        builder: SnapshotBuilder,
        window: float,
        counters: ReaderStats | None = None,
    ) -> None:
        """Initialize for an entry (None in tests), building snapshots with `builder`."""
        super().__init__(hass, LOGGER, config_entry=entry, name=DOMAIN, update_interval=None)
        self.builder = builder
        self.window = max(0.0, float(window))
        self.counters = counters if counters is not None else ReaderStats()
        # Set when the meter reports another equipment id than the entry's: a replaced meter,
        # whose registers may start lower (a new cycle for the statistics, not a bad read).
        self.meter_replaced = False
        self.connected = False
        self.published = 0
        # Telegrams that came sooner after the one before than a meter sends them (a bridge
        # flushing its buffer, or a flood): taken like any other, counted for diagnostics.
        self.too_fast = 0
        self.latest: Any = None  # the newest telegram received
        self._received = -1.0  # time.monotonic() of the latest
        self._fresh = True  # the next telegram is the first since a (re)connect
        # Telegrams of a connection still published at once: the first shows the meter, the
        # second makes its sub-meters (named by two publishes in a row: mbus.py).
        self._at_once = AT_ONCE
        self._debouncer: Debouncer[None] | None = None
        # Keys of the fields some added entity shows (counted); once `select_shown` ran, the
        # builder reads only these.
        self._shown: dict[str, int] = {}
        self._selecting = False
        if self.window:
            self._debouncer = Debouncer(
                hass, LOGGER, cooldown=self.window, immediate=True, function=self._publish
            )

    @callback
    def telegram_received(self, telegram: Any) -> None:
        """Take a good telegram from the protocol; whatever fails is counted, never raised."""
        try:
            now = time.monotonic()
            if now - self._received < TOO_FAST:
                self.too_fast += 1
            self._received = now
            self.latest = telegram
            self.builder.add(telegram)
            debouncer = self._debouncer
            if debouncer is None:
                self._publish()
            elif self._at_once:
                self._at_once -= 1
                debouncer.async_cancel()  # a connection's first telegrams: at once
                debouncer.async_schedule_call()
            else:
                debouncer.async_schedule_call()
        except Exception as err:  # counted and logged; the next telegram is taken
            self.failed(err, "the coordinator")

    @callback
    def connection_changed(self, state: ConnectionState) -> None:
        """Take a connection change: unavailable at once when down, available with a telegram."""
        self._fresh = True
        self._at_once = AT_ONCE
        self.connected = state.connected
        if self.config_entry is not None:
            async_connection_changed(self.hass, self.config_entry, state)
        if state.connected:
            return
        if self._debouncer is not None:
            self._debouncer.async_cancel()
        self.builder.discard()
        self._set_unavailable(ConnectionLost(state.reason or "connection closed"))

    @callback
    def async_show(self, key: str) -> CALLBACK_TYPE:
        """An added entity shows the field `key` (or `FORECAST`); returns its removal callback."""
        self._shown[key] = self._shown.get(key, 0) + 1
        if self._selecting and self._shown[key] == 1:
            self.builder.select(self._shown)

        @callback
        def hide() -> None:
            self._shown[key] -= 1
            if not self._shown[key]:
                del self._shown[key]  # read on until the next setup: it may come back

        return hide

    @callback
    def select_shown(self) -> None:
        """Once the entities are added: build only the fields they show (and any added later)."""
        self._selecting = True
        self.builder.select(self._shown)

    def _set_unavailable(self, err: Exception) -> None:
        """`async_set_update_error` without its error log line.

        Home Assistant's logs every outage (every unload too) at error level; the reader logs
        why a connection ended already, rate-limited, and a connection that cannot be opened
        is a repair issue.
        """
        self.last_exception = err
        if self.last_update_success:
            self.last_update_success = False
            self.async_update_listeners()

    @callback
    def _publish(self) -> None:
        if not self.builder.pending:
            return
        try:
            snapshot = self.builder.build(self.data, time.time(), fresh=self._fresh)
        except Exception as err:  # a telegram the builder cannot read: counted, skipped
            self.failed(err, "the snapshot")
            return
        if self._fresh:
            self._fresh = False
            self._check_identity(snapshot.equipment_id)
        self.published += 1
        self.async_set_updated_data(snapshot)

    def _check_identity(self, found: str | None) -> None:
        """Check, on the first telegram of each connection, that it is still the same meter."""
        entry = self.config_entry
        if entry is None or not (expected := entry.data.get(CONF_SERIAL_ID)):
            return
        if found is not None and found != expected and not self.meter_replaced:
            LOGGER.warning(
                "%s reports another equipment identifier: meter replaced?",
                redact_port(entry.title),
            )
            self.meter_replaced = True
            async_meter_replaced(self.hass, entry)

    @property
    def online(self) -> bool:
        """Whether the meter is connected and its telegrams are published."""
        return self.connected and self.last_update_success

    def health(self) -> Health:
        """The counters as they stand, for the health entities."""
        stats = self.counters
        received = stats.last_telegram
        at = None if received is None else datetime.fromtimestamp(received, UTC)
        stamp = getattr(getattr(self.latest, "P1_MESSAGE_TIMESTAMP", None), "value", None)
        offset = None
        if isinstance(stamp, datetime) and at is not None:
            offset = round((stamp - at).total_seconds(), 1)
        return Health(
            connected=self.online,
            telegrams_per_minute=stats.per_minute(),
            skipped_telegrams=stats.crc_errors + stats.parse_errors,
            last_telegram=None if at is None else at.replace(microsecond=0),
            meter_clock_offset=offset,
        )

    def flow(self, key: str) -> FlowState | None:
        """The flow `key` (derived.py's `flow_key`) as the latest snapshot has it."""
        return None if self.data is None else self.data.derived.flows.get(key)

    def restore_flow(self, key: str, state: FlowState) -> FlowState | None:
        """Start the flow `key` from its stored `state` (returned) unless it runs already.

        A state without a capture starts nothing; neither does a builder without flows.
        """
        deriver = self.builder.deriver
        if self.flow(key) is not None or state.last is None or not deriver:
            return None
        deriver.restored[key] = state
        return state

    def report(self, kind: str, message: str, *args: object) -> None:
        """Log an entity's fault (rate-limited per kind) and keep it as the last error."""
        self.counters.fault(kind, message, *args)

    @callback
    def async_explain(self, entity_id: str, judgement: Judgement, unit: str | None) -> None:
        """Tell why a register shows what it shows (policy.py's `Judgement`).

        A lower reading held back is logged when the hold starts; one shown as a new cycle
        raises a repair issue.
        """
        shown, reading = judgement.shown, judgement.reading
        if judgement.hold_starts:
            self.report(
                "decrease",
                "%s went down from %s to %s; showing %s until the lower value lasts an hour"
                " or the meter reports another equipment identifier",
                entity_id,
                shown,
                reading,
                shown,
            )
        elif judgement.verdict is Verdict.NEW_CYCLE and self.config_entry is not None:
            unit = unit or ""
            async_register_new_cycle(
                self.hass, self.config_entry, entity_id, f"{shown} {unit}", f"{reading} {unit}"
            )

    def failed(self, err: Exception, who: str) -> None:
        """Count and log (rate-limited) a telegram that failed somewhere; the rest goes on."""
        self.counters.update_errors += 1
        self.counters.fault(
            "update", "A telegram failed in %s (%s); the rest is updated", who, type(err).__name__
        )

    @callback
    def async_auto_disable(self, entity_id: str, unique_id: str) -> None:
        """Disable an entity whose value the meter does not send (once: the user may undo it)."""
        entry = self.config_entry
        registry = er.async_get(self.hass)
        reg = registry.async_get(entity_id)
        if entry is None or reg is None:
            return
        auto_disabled: list[str] = list(entry.data.get(CONF_AUTO_DISABLED, []))
        if reg.disabled_by is not None or unique_id in auto_disabled:
            return  # disabled already, or the user enabled it again after we disabled it once
        LOGGER.info("%s: the meter does not send this value; disabling the entity", entity_id)
        self.hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_AUTO_DISABLED: [*auto_disabled, unique_id]}
        )
        registry.async_update_entity(entity_id, disabled_by=er.RegistryEntryDisabler.INTEGRATION)

    async def async_shutdown(self) -> None:
        """Cancel a pending publish, then Home Assistant's own shutdown."""
        if self._debouncer is not None:
            self._debouncer.async_shutdown()
        await super().async_shutdown()
