"""The window's telegrams read into the forecast and the flows (derived.py): no Home Assistant.

Telegrams are the simulator's, parsed by dsmr_parser as the reader does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dsmr_parser.parsers import TelegramParser
import pytest

from custom_components.dsmr.demand import OFF, forecast_quarter
from custom_components.dsmr.derived import (
    MAIN_GAS_KEY,
    Derived,
    Deriver,
    demand_reading,
    flow_key,
)
from custom_components.dsmr.flow import FlowState
from custom_components.dsmr.snapshot import SnapshotBuilder
from dsmr_sim import Meter

from .test_snapshot import publish

PACKAGE = Path(__file__).parent.parent / "custom_components" / "dsmr"
JANUARY = datetime(2024, 1, 15, 17, 0)


def telegrams(meter: Meter, count: int, step: float = 10) -> Iterator[Any]:
    """`count` telegrams `step` simulated seconds apart, parsed as the reader parses them."""
    parser = TelegramParser(meter.telegram_specification())
    for _ in range(count):
        meter.step(step)
        yield parser.parse(meter.telegram(), throw_ex=True)


def windows(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run(deriver: Deriver, stream: list[Any], size: int = 1) -> list[Derived]:
    """Publish `stream` in windows of `size` telegrams; every publish's result."""
    results: list[Derived] = []
    previous: Derived | None = None
    for window in windows(stream, size):
        previous = deriver.derive(window, previous)
        results.append(previous)
    return results


def test_it_imports_only_the_standard_library_and_the_pure_modules() -> None:
    tree = ast.parse((PACKAGE / "derived.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = str(node.module)
            imported.add(f".{name}" if node.level else name.split(".", maxsplit=1)[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    stdlib = {"__future__", "collections", "dataclasses", "datetime", "decimal", "math", "types"}
    assert imported <= stdlib | {"typing", ".demand", ".flow"}


def test_the_forecast_is_the_latest_telegrams_continuing_from_the_last() -> None:
    meter = Meter("5B", seed=4, start=JANUARY, appliances=True)
    stream = list(telegrams(meter, 180))  # half an hour, a telegram every 10 s
    results = run(Deriver(demand=True), stream, size=3)
    quarter = None
    for window, result in zip(windows(stream, 3), results, strict=True):
        quarter = forecast_quarter(demand_reading(window[-1]), quarter)
        assert result.quarter == result.last_quarter == quarter
    # The quarters changed on the meter's clock, and each knew the one before.
    starts = {r.quarter.quarter_start for r in results if r.quarter is not None}
    assert len(starts) >= 2
    assert results[-1].quarter is not None
    assert results[-1].quarter.previous_quarter_kw is not None


def test_a_reading_it_cannot_place_keeps_the_last_forecast_and_decision() -> None:
    meter = Meter("5B", seed=4, start=JANUARY, appliances=True)
    good = list(telegrams(meter, 3))
    deriver = Deriver(demand=True, threshold_kw=0.0)
    before = deriver.derive(good, None)
    assert before.quarter is not None
    garbled = SimpleNamespace(
        P1_MESSAGE_TIMESTAMP=good[-1].P1_MESSAGE_TIMESTAMP,
        CURRENT_ELECTRICITY_USAGE=good[-1].CURRENT_ELECTRICITY_USAGE,
        BELGIUM_CURRENT_AVERAGE_DEMAND=SimpleNamespace(value=Decimal("NaN"), unit="kW"),
    )
    after = deriver.derive([garbled], before)
    assert after.quarter is None  # unknown now ...
    assert after.last_quarter == before.quarter  # ... and the next reading continues from it
    assert after.alarm == before.alarm


def test_a_power_line_in_w_is_read_in_kw() -> None:
    stamp = SimpleNamespace(value=datetime(2024, 1, 15, 17, 10, tzinfo=UTC))
    telegram = SimpleNamespace(
        P1_MESSAGE_TIMESTAMP=stamp,
        CURRENT_ELECTRICITY_USAGE=SimpleNamespace(value=Decimal(3000), unit="W"),
        BELGIUM_CURRENT_AVERAGE_DEMAND=SimpleNamespace(value=Decimal("1.2"), unit="kW"),
    )
    reading = demand_reading(telegram)
    assert (reading.import_kw, reading.average_kw) == (3.0, 1.2)
    assert (reading.peak_kw, reading.peak_at) == (None, None)  # no 1-0:1.6.0: unknown


def test_a_new_peak_turns_the_decision_on_above_the_threshold() -> None:
    # An 11 kW car charging on a January evening sets a new monthly peak.
    meter = Meter("5B", seed=5, start=datetime(2024, 1, 15, 17, 30), appliances=True, ev_kw=11)
    stream = list(telegrams(meter, 720))  # two hours
    results = run(Deriver(demand=True, threshold_kw=2.5), stream)
    turned_on = [b for a, b in itertools.pairwise(results) if b.alarm.on and not a.alarm.on]
    assert turned_on, "no new peak announced while the car charged"
    for result in turned_on:
        assert result.quarter is not None and result.alarm.limit_kw is not None
        assert result.quarter.forecast_kw > result.alarm.limit_kw >= 2.5
    assert not results[0].alarm.on
    # Far above any demand: never on.
    assert not any(r.alarm.on for r in run(Deriver(demand=True, threshold_kw=99), stream))


def test_meters_without_the_demand_lines_get_no_forecast() -> None:
    meter = Meter("5", seed=1, start=JANUARY)
    results = run(Deriver(demand=False), list(telegrams(meter, 3)))
    assert all(r.quarter is None and r.alarm == OFF for r in results)


def _captures(stream: list[Any], channel: int) -> list[tuple[datetime, Decimal]]:
    """The distinct captures of an M-Bus channel, in the order the telegrams carried them."""
    found: list[tuple[datetime, Decimal]] = []
    for telegram in stream:
        reading = telegram.get_mbus_device_by_channel(channel).MBUS_METER_READING
        if not found or found[-1][0] != reading.datetime:
            found.append((reading.datetime, reading.value))
    return found


@pytest.mark.parametrize("size", [1, 30])
def test_flow_is_the_volume_between_captures_over_their_time(size: int) -> None:
    meter = Meter(
        "5",
        seed=5,
        start=JANUARY,
        appliances=True,
        mbus=("gas", "water", "heat"),
        mbus_interval=300,
    )
    stream = list(telegrams(meter, 360))  # an hour: 12 captures
    results = run(Deriver(demand=False), stream, size)
    gas_id = stream[0].get_mbus_device_by_channel(1).MBUS_EQUIPMENT_IDENTIFIER.value
    water_id = stream[0].get_mbus_device_by_channel(2).MBUS_EQUIPMENT_IDENTIFIER.value
    assert set(results[-1].flows) == {flow_key(1, gas_id), flow_key(2, water_id)}  # no heat
    for channel, ident in ((1, gas_id), (2, water_id)):
        (at0, v0), (at1, v1) = _captures(stream, channel)[-2:]
        flow = results[-1].flows[flow_key(channel, ident)]
        span = (at1 - at0).total_seconds()
        assert span == 300
        assert flow.interval_s == span
        assert flow.m3h == pytest.approx(float((v1 - v0) * 3600 / Decimal(span)))
    moving = [r.flows[flow_key(1, gas_id)].m3h for r in results[-size * 2 :]]
    assert any(m for m in moving), "the boiler burned no gas in a January hour"


def test_a_replaced_sub_meter_starts_afresh() -> None:
    meter = Meter("5", seed=5, start=JANUARY, appliances=True, mbus_interval=300)
    stream = list(telegrams(meter, 90))
    deriver = Deriver(demand=False)
    first = run(deriver, stream)[-1]
    gas_id = stream[0].get_mbus_device_by_channel(1).MBUS_EQUIPMENT_IDENTIFIER.value
    assert first.flows[flow_key(1, gas_id)].m3h is not None
    other = Meter("5", seed=6, start=meter.now, appliances=True, mbus_interval=300)
    after = deriver.derive(list(telegrams(other, 1)), first)
    new_id = next(k for k in after.flows if k != flow_key(1, gas_id))
    assert after.flows[new_id].m3h is None and after.flows[new_id].last is not None


def test_a_restored_state_gives_the_first_flow_after_a_restart() -> None:
    meter = Meter("5", seed=5, start=JANUARY, appliances=True, mbus_interval=300)
    stream = list(telegrams(meter, 120))
    gas = [t.get_mbus_device_by_channel(1) for t in stream]
    key = flow_key(1, gas[0].MBUS_EQUIPMENT_IDENTIFIER.value)
    arrivals = [
        i
        for i in range(1, len(stream))
        if gas[i].MBUS_METER_READING.datetime != gas[i - 1].MBUS_METER_READING.datetime
    ]
    arrival = arrivals[-2]
    # Home Assistant stops just before a capture arrives and starts 30 s after it did.
    saved = run(Deriver(demand=False), stream[:arrival])[-1].flows[key]
    later = stream[arrival + 3 :]
    fresh = run(Deriver(demand=False), later)
    restored = Deriver(demand=False)
    restored.restored[key] = FlowState.from_dict(saved.as_dict())
    resumed = run(restored, later)
    assert fresh[0].flows[key].m3h is None  # nothing before it to divide by
    (at0, v0), (at1, v1) = _captures(stream[: arrival + 1], 1)[-2:]
    assert resumed[0].flows[key].interval_s == (at1 - at0).total_seconds() == 300
    assert resumed[0].flows[key].m3h == pytest.approx(float((v1 - v0) * 12))


def test_the_dsmr4_gas_reading_on_the_main_telegram_has_a_flow() -> None:
    meter = Meter("4", seed=3, start=JANUARY, appliances=True)
    stream = list(telegrams(meter, 3 * 360 + 6))  # three hours and a minute: hourly captures
    results = run(Deriver(demand=False), stream, size=6)
    flow = results[-1].flows[MAIN_GAS_KEY]
    assert flow.interval_s == 3600
    assert flow.m3h is not None and flow.m3h > 0


def test_an_unchanged_window_keeps_the_same_flows_object() -> None:
    meter = Meter("5", seed=5, start=JANUARY, mbus_interval=300)
    stream = list(telegrams(meter, 10))
    deriver = Deriver(demand=False)
    first = deriver.derive(stream[:1], None)
    again = deriver.derive(stream[:1], replace(first))
    assert again.flows is first.flows


def test_the_snapshot_builder_derives_once_per_publish_from_the_last() -> None:
    class Counting(Deriver):
        def __init__(self) -> None:
            super().__init__(demand=True)
            self.calls: list[tuple[int, Derived | None]] = []

        def publish(
            self, telegram: Any, previous: Derived | None, flows: Mapping[str, FlowState]
        ) -> Derived:
            self.calls.append((telegram, previous))
            return super().publish(telegram, previous, flows)

    deriver = Counting()
    builder = SnapshotBuilder((), deriver=deriver)
    stream = list(telegrams(Meter("5B", seed=4, start=JANUARY), 5))
    first = publish(builder, stream[:2], None, 0.0)
    second = publish(builder, stream[2:], first, 0.0)
    assert deriver.calls == [(stream[1], None), (stream[4], first.derived)]
    assert second.derived.quarter is not None
    assert publish(SnapshotBuilder(()), stream, None, 0.0).derived.quarter is None
