"""Statistics recorded under the specification's unit while the meter sent another: relabelled.

Earlier releases labelled every energy value kWh and every power value kW, whatever the line
said: an Austrian meter's `1-0:1.8.0(000326641*Wh)` was recorded as 326641 kWh. Values now
carry the line's unit (326641 Wh). Left alone, Home Assistant's long-term statistics would take
the unit change as a conversion: the new states become 326.641 kWh, a total_increasing register
that drops to a thousandth is a new meter cycle, and the whole reading (326.641 kWh) is added
to the sum as one period's consumption, on top of a history that stays a thousand times too
high. The history holds the meter's own numbers, so the right fix is to relabel it, not to
convert it: the statistics' unit becomes the meter's (Wh), numbers unchanged.

That is done once per entity, before its first value in the new unit is shown, and only when
the recorded statistics are the mislabelled ones: their unit is the specification's, the line's
unit is another unit of the same kind, and (for a register) the last recorded reading is on the
meter's scale rather than a thousand times smaller. Relabelling must not meet a period that
still holds a state in the old label (its compiled statistics would be converted after all): so
the entity shows "unknown" in the meter's unit from then on, the recorder compiles the current
5-minute period (old states only), then the label changes, then values are shown again. The
gap is between half a minute and five and a half minutes, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
import math
from typing import Any, Final

from homeassistant.components.recorder import statistics
from homeassistant.components.recorder.db_schema import StatisticsRuns
from homeassistant.components.recorder.models import process_timestamp
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.recorder import get_instance, session_scope
from homeassistant.util import dt as dt_util
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError

from .const import LOGGER

RECORDER: Final = "recorder"
# The recorder compiles a period's statistics 10 seconds after it ends; look a little later.
AFTER_COMPILE: Final = timedelta(seconds=30)
PERIOD: Final = timedelta(minutes=5)


def recorder_running(hass: HomeAssistant) -> bool:
    """Whether Home Assistant records statistics here."""
    return RECORDER in hass.config.components


@dataclass(frozen=True, slots=True)
class Recorded:
    """An entity's long-term statistics: their unit, kind, and last recorded state."""

    unit: str | None
    has_sum: bool
    last_state: float | None


def mislabelled(recorded: Recorded, label: str, unit: str, value: float | None) -> bool:
    """Whether statistics `recorded` (in their unit) hold the meter's numbers in `unit`.

    `label` is the unit earlier releases gave every value of this kind; `value` the meter's
    current reading. A register's statistics were mislabelled when their last state is closer
    to the reading itself than to the reading converted to the label (326641 "kWh" next to a
    reading of 326641 Wh; a core user's 326.641 kWh is right and is converted as usual).
    """
    if recorded.unit != label or unit == label:
        return False
    converter = statistics.STATISTIC_UNIT_TO_UNIT_CONVERTER.get(label)
    if converter is None or unit not in converter.VALID_UNITS:
        return False
    last_state = recorded.last_state
    if not recorded.has_sum or last_state is None or value is None:
        return True  # means, min and max of a measurement: the label was ours
    # A right label: value ~ last_state * factor (1 kWh = 1000 Wh). Mislabelled: value ~
    # last_state. Which is nearer, on a logarithmic scale?
    factor = converter.converter_factory(label, unit)(1.0)
    middle = last_state * math.sqrt(factor)
    return value < middle if factor > 1 else value > middle


async def async_statistics_mislabelled(
    hass: HomeAssistant, entity_id: str, label: str, unit: str, value: float | None
) -> bool:
    """Whether the recorder holds statistics of `entity_id` that `mislabelled` says so of."""
    if not recorder_running(hass):
        return False
    instance = get_instance(hass)
    try:
        metadata = await instance.async_add_executor_job(_metadata, hass, entity_id)
        if metadata is None:
            return False
        last = await instance.async_add_executor_job(
            statistics.get_last_short_term_statistics, hass, 1, entity_id, False, {"state"}
        )
    except SQLAlchemyError as err:
        LOGGER.warning("Could not read the statistics of %s: %s", entity_id, err)
        return False
    rows = last.get(entity_id) or [{}]
    last_state = rows[0].get("state")
    recorded = Recorded(
        metadata.get("unit_of_measurement"), bool(metadata.get("has_sum")), last_state
    )
    return mislabelled(recorded, label, unit, value)


def _metadata(hass: HomeAssistant, entity_id: str) -> dict[str, Any] | None:
    found = statistics.get_metadata(hass, statistic_ids={entity_id})
    if entity_id not in found:
        return None
    return dict(found[entity_id][1])


def _last_run(hass: HomeAssistant) -> datetime | None:
    """The start of the last 5-minute period the recorder compiled statistics for."""
    with session_scope(hass=hass, read_only=True) as session:
        last: datetime | None = session.query(func.max(StatisticsRuns.start)).scalar()
    return process_timestamp(last)


async def async_relabel_when_compiled(hass: HomeAssistant, entity_id: str, unit: str) -> None:
    """Relabel `entity_id`'s statistics to `unit` once the current period is compiled.

    The caller shows no value in the old label from now on; every period up to the current
    one is compiled with the old label, every later one with the new.
    """
    now = dt_util.utcnow()
    current = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    instance = get_instance(hass)
    await instance.async_db_ready
    when = current + PERIOD + AFTER_COMPILE
    while True:
        await _until(hass, when)
        try:
            last_run = await instance.async_add_executor_job(_last_run, hass)
        except SQLAlchemyError:
            last_run = None
        LOGGER.debug(
            "%s: statistics compiled up to %s; relabelling after %s", entity_id, last_run, current
        )
        if last_run is not None and last_run >= current:
            break
        when = dt_util.utcnow() + AFTER_COMPILE
    converter = statistics.STATISTIC_UNIT_TO_UNIT_CONVERTER.get(unit)
    statistics.async_update_statistics_metadata(
        hass,
        entity_id,
        new_unit_class=converter.UNIT_CLASS if converter is not None else None,
        new_unit_of_measurement=unit,
    )
    LOGGER.info(
        "%s: statistics recorded as the specification's unit hold the meter's numbers in %s;"
        " relabelled to %s (not converted)",
        entity_id,
        unit,
        unit,
    )


async def _until(hass: HomeAssistant, when: datetime) -> None:
    """Sleep on Home Assistant's clock until `when`."""
    done = hass.loop.create_future()

    @callback
    def wake(_now: datetime) -> None:
        if not done.done():
            done.set_result(None)

    cancel = async_track_point_in_utc_time(hass, wake, when)
    try:
        await done
    finally:
        cancel()


class UnitUpgrade:
    """When one entity may show values in the meter's unit: after relabelling, if needed.

    Statistics recorded by an earlier release under the specification's unit (`label`) may need
    relabelling first: checked once per start, for the first line in another unit (also when
    the restored unit is already the meter's: a restart may have cut an upgrade short). The
    check runs as a task of the entity's entry; it calls the entity's `show(unit, relabel)` once
    the statistics are checked, and `done()` once the upgrade no longer decides what is shown.
    """

    def __init__(
        self,
        label: str | None,
        has_statistics: bool,
        entry: ConfigEntry,
        *,
        show: Callable[[str, bool], None],
        done: Callable[[], None],
    ) -> None:
        """For an entity of `entry` whose description says `label`, with statistics or not."""
        self.label = label
        self.checked = label is None or not has_statistics
        self.pending = False  # while the upgrade decides
        self._entry = entry
        self._show = show
        self._done = done

    def needed(self, hass: HomeAssistant, unit: str) -> bool:
        """Whether values in `unit` wait for an upgrade (then `start` it)."""
        if self.checked or unit == self.label or not recorder_running(hass):
            return False
        self.checked = self.pending = True
        return True

    def start(self, hass: HomeAssistant, entity_id: str, unit: str, value: Any) -> None:
        """Run the upgrade `needed` for `value` in `unit` (a task of the entry: may end at once)."""
        self._entry.async_create_background_task(
            hass, self._async_run(hass, entity_id, unit, float(value)), f"dsmr unit of {entity_id}"
        )

    async def _async_run(
        self, hass: HomeAssistant, entity_id: str, unit: str, value: float
    ) -> None:
        """Check the statistics, show the unit, relabel when compiled if needed; then done."""
        assert self.label is not None
        try:
            relabel = await async_statistics_mislabelled(hass, entity_id, self.label, unit, value)
            LOGGER.debug(
                "%s: the meter sends %s; statistics recorded as %s to relabel: %s",
                entity_id,
                unit,
                self.label,
                relabel,
            )
            self._show(unit, relabel)
            if relabel:
                await async_relabel_when_compiled(hass, entity_id, unit)
        finally:
            self.pending = False
        self._done()
