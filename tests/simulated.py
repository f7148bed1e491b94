"""Simulated days for the pure demand and flow tests: what each telegram says, fast.

The meter steps in simulated time (no waiting). Telegrams are rendered and read with
dsmr_parser's own parser whenever what the test needs from them can have changed; in between,
the values of the last parsed telegram stand (as they do on a real P1 line), with the meter's
clock moving on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from dsmr_parser.parsers import TelegramParser

from custom_components.dsmr.p1.demand import DemandReading
from dsmr_sim import Meter


@dataclass(frozen=True)
class MbusReading:
    """A telegram as the flow sees it: its own time and one sub-meter's capture."""

    now: datetime  # the telegram's timestamp (UTC)
    at: datetime | None  # the capture's stamp (UTC)
    value: Decimal | None


def mbus_capture(channel: int, name: str = "MBUS_METER_READING") -> Callable[[Any], Any]:
    """The capture object of M-Bus ``channel`` in a parsed telegram."""

    def get(telegram: Any) -> Any:
        device = telegram.get_mbus_device_by_channel(channel)
        return getattr(device, name)

    return get


def mbus_readings(
    meter: Meter,
    seconds: float,
    *,
    step: float = 10,
    capture: Callable[[Any], Any] | None = None,
) -> Iterator[MbusReading]:
    """One reading per telegram, ``step`` simulated seconds apart, for ``seconds``.

    A telegram is parsed again when the sub-meter captured a new reading; ``capture`` finds
    the reading in a parsed telegram (default: M-Bus channel 1's ``MBUS_METER_READING``).
    """
    parser = TelegramParser(meter.telegram_specification())
    get = capture or mbus_capture(1)
    stamp: object = None
    at: datetime | None = None
    value: Decimal | None = None
    for _ in range(round(seconds / step)):
        meter.step(step)
        channel_stamp = meter.house.mbus[0].reading_at.astimezone(UTC)  # (fold counts)
        if channel_stamp != stamp:
            obj = get(parser.parse(meter.telegram(), throw_ex=True))
            at, value, stamp = obj.datetime, obj.value, channel_stamp
        yield MbusReading(meter.now.astimezone(UTC), at, value)


def demand_reading(meter: Meter) -> DemandReading:
    """What the meter's current telegram says about demand, as dsmr_parser reads it."""
    telegram = TelegramParser(meter.telegram_specification()).parse(meter.telegram(), throw_ex=True)
    return demand_from(telegram)


def demand_from(telegram: Any) -> DemandReading:
    """The demand fields of a parsed Belgian telegram."""
    peak = telegram.BELGIUM_MAXIMUM_DEMAND_MONTH
    return DemandReading(
        at=telegram.P1_MESSAGE_TIMESTAMP.value,
        average_kw=float(telegram.BELGIUM_CURRENT_AVERAGE_DEMAND.value),
        import_kw=float(telegram.CURRENT_ELECTRICITY_USAGE.value),
        peak_kw=float(peak.value),
        peak_at=peak.datetime,
    )


def rendered_demand(meter: Meter) -> DemandReading:
    """The same fields from the values the simulator wrote (no parse: for long runs).

    The simulator's telegram tests check that dsmr_parser reads exactly these values.
    """
    values = meter.render().values
    house = meter.house
    return DemandReading(
        at=values["P1_MESSAGE_TIMESTAMP"],
        average_kw=float(values["BELGIUM_CURRENT_AVERAGE_DEMAND"]),
        import_kw=float(values["CURRENT_ELECTRICITY_USAGE"]),
        peak_kw=float(values["BELGIUM_MAXIMUM_DEMAND_MONTH"]),
        peak_at=house.month_peak_at.replace(microsecond=0),
    )
