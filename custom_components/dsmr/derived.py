"""What a window's telegrams say beyond their lines: the quarter-hour forecast and the flows.

Pure (no Home Assistant; a test parses the imports): `Deriver.flows_after` takes each telegram
as it arrives, `Deriver.publish` the window's latest and the previous publish's `Derived`, and
returns the next one, for the snapshot builder (`derive` does both for a list of telegrams).
The formulas are in demand.py and flow.py; this module only reads the telegrams into them:

- **Demand** (meters that send ``1-0:1.4.0``): once per publish, with the window's latest
  telegram (its running average, its timestamp, the present import power ``1-0:1.7.0`` as it
  is, and this month's peak ``1-0:1.6.0`` with its stamp). A reading that cannot be placed
  gives no forecast (unknown); the next one continues from the last good forecast.
- **Flow** (every M-Bus gas or water channel whose reading is in m³, and the DSMR 2.2/4 gas
  reading on the main telegram): for every telegram of the window in order, so that a
  capture's arrival is the telegram that first carried it. Keyed by `flow_key`: a sub-meter
  with another identifier starts afresh. `restored` holds the states saved at the last
  shutdown; a key the previous publish does not know starts from there. A reading that cannot
  be computed with (an absurd number) leaves that flow unknown, never the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
import math
from types import MappingProxyType
from typing import Any, Final

from .demand import (
    DEFAULT_THRESHOLD_KW,
    OFF,
    DemandReading,
    PeakAlarm,
    QuarterForecast,
    forecast_quarter,
    peak_ahead,
)
from .flow import FlowState, timed_out, update_flow

__all__ = [
    "MAIN_GAS_KEY",
    "MAIN_GAS_READINGS",
    "Derived",
    "Deriver",
    "demand_reading",
    "device_type",
    "flow_key",
]

# EN 13757-3 device types whose m³ reading has a flow: gas, warm water, water.
FLOW_DEVICE_TYPES: Final = frozenset({3, 6, 7})
# The DSMR 2.2/4 gas reading on the main telegram (no M-Bus channel): its flow's key.
MAIN_GAS_KEY: Final = "gas"
MAIN_GAS_READINGS: Final = ("HOURLY_GAS_METER_READING", "GAS_METER_READING")
#: The key an entity that shows the forecast is counted under (`DsmrCoordinator.async_show`).
FORECAST: Final = "<forecast>"
_EMPTY: Final[Mapping[str, FlowState]] = MappingProxyType({})
# Sub-meters whose flow is followed at most: channels 1-9 and the DSMR 2.2/4 gas reading.
MAX_FLOWS: Final = 10


def device_type(value: Any) -> int | None:
    """An M-Bus device type as a number: sent as a number, or as text ("003") as core takes it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip() if isinstance(value, str) else ""
    return int(text) if text.isdecimal() and len(text) <= 3 else None


def flow_key(channel: int, identifier: str | None) -> str:
    """The key of an M-Bus channel's flow: its identifier, or the channel without one."""
    return f"mbus {identifier}" if identifier else f"channel {channel}"


@dataclass(frozen=True, slots=True)
class Derived:
    """The forecast, the new-peak decision and the flows of one publish."""

    #: This publish's forecast; None: unknown (no demand lines, or a reading it cannot place).
    quarter: QuarterForecast | None = None
    #: The last forecast that was not None: the next reading continues from it.
    last_quarter: QuarterForecast | None = None
    alarm: PeakAlarm = OFF
    threshold_kw: float = DEFAULT_THRESHOLD_KW
    flows: Mapping[str, FlowState] = field(default_factory=lambda: _EMPTY)


def _kw(obj: Any) -> float | None:
    """A power line's value in kW (a meter sending W is divided); None if absent or odd."""
    value = getattr(obj, "value", None)
    if not isinstance(value, Decimal | int | float) or isinstance(value, bool):
        return None
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    kw = float(value) / 1000 if getattr(obj, "unit", None) == "W" else float(value)
    return kw if math.isfinite(kw) else None


def _aware(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def demand_reading(telegram: Any) -> DemandReading:
    """What a telegram says about demand; a missing or garbled line is None, never raised."""
    peak = getattr(telegram, "BELGIUM_MAXIMUM_DEMAND_MONTH", None)
    return DemandReading(
        at=_aware(getattr(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None), "value", None)),
        average_kw=_kw(getattr(telegram, "BELGIUM_CURRENT_AVERAGE_DEMAND", None)),
        import_kw=_kw(getattr(telegram, "CURRENT_ELECTRICITY_USAGE", None)),
        peak_kw=_kw(peak),
        peak_at=_aware(getattr(peak, "datetime", None)),
    )


def _captures(telegram: Any) -> Iterator[tuple[str, Any]]:
    """(key, capture object) of every reading in m³ that has a flow."""
    for device in getattr(telegram, "MBUS_DEVICES", None) or ():
        kind = device_type(getattr(getattr(device, "MBUS_DEVICE_TYPE", None), "value", None))
        reading = getattr(device, "MBUS_METER_READING", None)
        if kind in FLOW_DEVICE_TYPES and getattr(reading, "unit", None) == "m3":
            ident = getattr(getattr(device, "MBUS_EQUIPMENT_IDENTIFIER", None), "value", None)
            yield flow_key(device.channel_id, str(ident) if ident else None), reading
    for name in MAIN_GAS_READINGS:
        reading = getattr(telegram, name, None)
        if getattr(reading, "unit", None) == "m3":
            yield MAIN_GAS_KEY, reading


#: What a snapshot carries without a `Deriver`: no forecast, no flows.
NOTHING_DERIVED: Final = Derived()


class Deriver:
    """Derives one meter's forecast and flows, publish after publish."""

    def __init__(self, *, demand: bool, threshold_kw: float = DEFAULT_THRESHOLD_KW) -> None:
        """`demand`: the meter's version sends the quarter-hour demand (1-0:1.4.0)."""
        self.demand = demand
        self.threshold_kw = threshold_kw
        #: Flow states restored at startup (by the flow entities), by key.
        self.restored: dict[str, FlowState] = {}
        #: Whether the forecast is derived (off while no entity shows it: `SnapshotBuilder.select`).
        self.forecasting = True

    def derive(self, telegrams: Sequence[Any], previous: Derived | None) -> Derived:
        """The next `Derived` after `previous`, from a window's telegrams (latest last)."""
        flows = previous.flows if previous is not None else _EMPTY
        for telegram in telegrams:
            flows = self.flows_after(telegram, flows)
        return self.publish(telegrams[-1], previous, flows)

    def publish(
        self, telegram: Any, previous: Derived | None, flows: Mapping[str, FlowState]
    ) -> Derived:
        """The `Derived` of a publish: the forecast from its latest telegram, and `flows`."""
        previous = previous or Derived(threshold_kw=self.threshold_kw)
        quarter, last, alarm = None, previous.last_quarter, previous.alarm
        if self.demand and self.forecasting:
            try:
                quarter = forecast_quarter(demand_reading(telegram), last)
            except ArithmeticError, ValueError:  # absurd numbers: no forecast this time
                quarter = None
            last = quarter or last
            alarm = peak_ahead(quarter, alarm, self.threshold_kw)
        if (
            quarter is previous.quarter
            and last is previous.last_quarter
            and alarm is previous.alarm
            and flows is previous.flows
            and previous.threshold_kw == self.threshold_kw
        ):
            return previous  # nothing moved (a meter without demand lines, the same flows)
        return Derived(quarter, last, alarm, self.threshold_kw, flows)

    def flows_after(self, telegram: Any, flows: Mapping[str, FlowState]) -> Mapping[str, FlowState]:
        """The flows after one more telegram: every telegram of a window, in order.

        A sub-meter that is not in the telegram keeps its flow until it times out, unless it has
        none (a churning identifier leaves nothing behind); at most MAX_FLOWS are kept.
        """
        now = _aware(getattr(getattr(telegram, "P1_MESSAGE_TIMESTAMP", None), "value", None))
        changed: dict[str, FlowState] | None = None  # a copy, once a flow moved
        seen: set[str] = set()
        for key, capture in _captures(telegram):
            seen.add(key)
            before = flows.get(key) or self.restored.get(key)
            value = getattr(capture, "value", None)
            number = value if isinstance(value, Decimal) and value.is_finite() else None
            try:
                state = update_flow(before, _aware(getattr(capture, "datetime", None)), number, now)
            except ArithmeticError:  # an absurd reading (1E1000000): this flow only is unknown
                state = FlowState()
            if state is not flows.get(key):
                changed = changed if changed is not None else dict(flows)
                changed[key] = state
        for key in flows.keys() - seen:  # not in this telegram: only the timeout moves
            state = timed_out(flows[key], now)
            if state.m3h is None or len(flows) > MAX_FLOWS:  # nothing to show: forgotten
                changed = changed if changed is not None else dict(flows)
                del changed[key]
            elif state is not flows[key]:
                changed = changed if changed is not None else dict(flows)
                changed[key] = state
        return flows if changed is None else MappingProxyType(changed)
