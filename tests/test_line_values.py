"""line_values.py: what a line's object becomes, read from telegrams dsmr_parser parsed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser

from custom_components.dsmr import line_values as lv
from dsmr_sim.meter import Meter


def _parsed(version: str, spec: dict[str, Any], **meter: Any) -> Any:
    sim = Meter(version, seed=7, **meter)
    sim.step(1.0)
    return TelegramParser(spec).parse(sim.telegram())


def test_tariff_is_low_or_normal_and_swapped_in_belgium() -> None:
    dutch = _parsed("5", telegram_specifications.V5)
    belgian = _parsed("5B", telegram_specifications.BELGIUM_FLUVIUS)
    nl = lv.tariff(dutch.ELECTRICITY_ACTIVE_TARIFF, "5")
    be = lv.tariff(belgian.ELECTRICITY_ACTIVE_TARIFF, "5B")
    assert nl in {"low", "normal"}
    assert be in {"low", "normal"}
    # The same code means the other tariff in Belgium.
    assert lv.tariff(dutch.ELECTRICITY_ACTIVE_TARIFF, "5B") != nl


def test_text_message_is_decoded_from_hex() -> None:
    telegram = _parsed("5", telegram_specifications.V5, text_message="Storing gepland")
    assert lv.text(telegram.TEXT_MESSAGE, "5") == "Storing gepland"


def test_power_failure_log_count_and_events() -> None:
    log = _parsed("5", telegram_specifications.V5).POWER_EVENT_FAILURE_LOG
    events = lv.failures(log)
    assert events is not None
    assert lv.event_count(log, "5") == len(events["events"]) > 0
    assert all(event["duration"] >= 0 for event in events["events"])


def test_belgian_peaks_average_and_history() -> None:
    telegram = _parsed("5B", telegram_specifications.BELGIUM_FLUVIUS)
    peaks = lv.monthly_peaks(telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS)
    history = lv.peak_history(telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS)
    assert history is not None
    assert len(history["history"]) == len(peaks) > 0
    average = lv.average_peak(telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS, "5B")
    last_12 = [float(p.value) for p in peaks[-12:]]
    assert average == Decimal(str(round(sum(last_12) / len(last_12), 3)))
    assert lv.peak_time(telegram.BELGIUM_MAXIMUM_DEMAND_MONTH) is not None


def test_net_power_is_import_minus_export() -> None:
    telegram = _parsed("5", telegram_specifications.V5)
    assert lv.net_power(telegram) == (
        telegram.CURRENT_ELECTRICITY_USAGE.value - telegram.CURRENT_ELECTRICITY_DELIVERY.value
    )
