"""What a line says when it is more than a number (p1/values.py), from the simulator's telegrams.

The tariff and net power are the snapshot's (tests/test_snapshot.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from custom_components.dsmr.p1 import values
from custom_components.dsmr.p1.telegram import TelegramReader
from dsmr_sim.meter import Meter

from .telegrams import dsmr5


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance here."""


def _read(version: str, **meter: Any) -> Any:
    sim = Meter(version, seed=7, **meter)
    sim.step(1.0)
    return TelegramReader(sim.telegram_specification()).read(sim.telegram()).telegram


def test_text_message_is_decoded_from_hex() -> None:
    telegram = _read("5", text_message="Storing gepland")
    assert values.text(telegram.TEXT_MESSAGE) == "Storing gepland"


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("48656C6C6F", "Hello"),
        ("", ""),
        ("Plain text", "Plain text"),  # not hex: as sent
        ("48650A6C6C6F", "Hello"),  # no line breaks or other unprintables
        ("FF", "FF"),  # not ASCII: as sent
        ("41" * 300, "A" * values.MAX_TEXT),  # Home Assistant's longest state
    ],
)
def test_texts(sent: str, shown: str) -> None:
    assert values.text(SimpleNamespace(value=sent)) == shown


def test_no_text_is_none() -> None:
    assert values.text(None) is None
    assert values.text(SimpleNamespace(value=None)) is None


def test_power_failure_log_events() -> None:
    log = _read("5").POWER_EVENT_FAILURE_LOG
    events = values.failures(log)["events"]
    assert len(events) == log.buffer_length > 0
    assert all(event["duration"] >= 0 for event in events)
    assert all(datetime.fromisoformat(event["end"]).tzinfo is not None for event in events)


def test_an_empty_power_failure_log() -> None:
    text = dsmr5("1-0:99.97.0()")
    log = TelegramReader(Meter("5").telegram_specification()).read(text).telegram
    assert values.failures(log.POWER_EVENT_FAILURE_LOG) == {"events": []}


def test_belgian_peaks_average_and_history() -> None:
    telegram = _read("5B")
    peaks = values.monthly_peaks(telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS)
    history = values.peak_history(telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS)
    assert len(history["history"]) == len(peaks) > 0
    assert history["history"][0] == {
        "month": peaks[0].datetime.isoformat(),
        "occurred": peaks[0].occurred.isoformat(),
        "value": float(peaks[0].value),
    }
    average = values.average_peak(telegram.BELGIUM_MAXIMUM_DEMAND_13_MONTHS)
    last_12 = [float(p.value) for p in peaks[-12:]]
    assert average == round(sum(last_12) / len(last_12), 3)
    peak = telegram.BELGIUM_MAXIMUM_DEMAND_MONTH
    assert values.peak_time(peak) == {"occurred": peak.datetime.isoformat()}


def test_unused_peak_slots_are_left_out() -> None:
    used = SimpleNamespace(
        value=2.5, datetime=datetime(2024, 1, 1, tzinfo=UTC), occurred=datetime(2024, 1, 5)
    )
    unused = SimpleNamespace(value=0, datetime=None, occurred=None)
    assert values.monthly_peaks([unused, used, unused]) == [used]
    assert values.average_peak([unused]) is None
    assert values.average_peak(None) is None
    assert values.peak_history(None) == {"history": []}
    assert values.peak_time(None) == {}
