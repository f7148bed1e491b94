"""The register rules of one value (policy.py), without Home Assistant."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from custom_components.dsmr.policy import (
    ABSENT_TELEGRAMS_BEFORE_DISABLE,
    NEW_CYCLE_AFTER,
    Judgement,
    RegisterPolicy,
    Verdict,
)
from custom_components.dsmr.snapshot import SnapshotBuilder

from .test_snapshot import publish

T0 = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def test_a_lower_reading_is_held_then_a_new_cycle() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.judge(None, 5.0, now=T0) == (5.0, Verdict.SHOW)  # first value
    assert policy.judge(5.0, 6.0, now=T0) == (6.0, Verdict.SHOW)
    assert policy.judge(6.0, 0.0, now=T0) == (6.0, Verdict.HOLD)  # a glitch: keep showing 6
    assert policy.holding
    later = T0 + NEW_CYCLE_AFTER - timedelta(seconds=1)
    assert policy.judge(6.0, 0.5, now=later) == (6.0, Verdict.HOLD)
    assert policy.judge(6.0, 0.5, now=T0 + NEW_CYCLE_AFTER) == (0.5, Verdict.NEW_CYCLE)
    assert not policy.holding


def test_a_recovered_reading_ends_the_hold() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.judge(6.0, 0.0, now=T0) == (6.0, Verdict.HOLD)
    assert policy.judge(6.0, 6.0, now=T0) == (6.0, Verdict.SHOW)
    assert not policy.holding


def test_a_replaced_meter_shows_its_lower_reading_at_once() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.judge(6.0, 0.1, replaced=True, now=T0) == (0.1, Verdict.SHOW)


def test_zeros_are_values() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.judge(None, 0.0, now=T0) == (0.0, Verdict.SHOW)
    assert policy.judge(0.0, 0.0, now=T0) == (0.0, Verdict.SHOW)


def test_measurements_are_not_registers() -> None:
    policy = RegisterPolicy(register=False, per_period=True)
    assert policy.judge(6.0, 0.0, now=T0) == (0.0, Verdict.SHOW)
    assert not policy.per_period  # only registers wait for their period
    assert not policy.hold_for_period(1.0, 2.0, 10, False)


def test_one_write_per_statistics_period() -> None:
    policy = RegisterPolicy(register=True, per_period=True)
    policy.wrote(10, False)
    assert policy.hold_for_period(1.0, 2.0, 10, False)  # grown inside the written period: wait
    assert not policy.hold_for_period(1.0, 2.0, 10, True)  # the period's last window: write
    policy.wrote(10, True)  # written in the last window: it stands for period 11's start too
    assert policy.hold_for_period(2.0, 3.0, 11, False)
    assert not policy.hold_for_period(2.0, 3.0, 12, False)  # a new period: write
    # Anything but growth is written at once: a decrease, the same, a first or text value.
    assert not policy.hold_for_period(2.0, 1.0, 11, False)
    assert not policy.hold_for_period(2.0, 2.0, 11, False)
    assert not policy.hold_for_period(None, 2.0, 11, False)
    assert not policy.hold_for_period("low", "normal", 11, False)


def test_every_write_when_every_telegram_is_published() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    policy.wrote(10, False)
    assert not policy.hold_for_period(1.0, 2.0, 10, False)


def test_a_value_never_sent_is_disabled_once() -> None:
    policy = RegisterPolicy(register=False, per_period=False)
    decisions = [policy.absent() for _ in range(ABSENT_TELEGRAMS_BEFORE_DISABLE + 3)]
    assert decisions.index(True) == ABSENT_TELEGRAMS_BEFORE_DISABLE - 1
    assert decisions.count(True) == 1


def test_a_value_seen_once_is_never_disabled() -> None:
    policy = RegisterPolicy(register=False, per_period=False)
    policy.present()  # e.g. restored from the last run
    assert not any(policy.absent() for _ in range(ABSENT_TELEGRAMS_BEFORE_DISABLE + 3))


def test_decide_judges_a_register_against_the_state_it_shows() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.decide(6.0, 6.5, now=T0) == Judgement(6.5, Verdict.SHOW, 6.0, 6.5)
    # The hold is told once, when it starts; the held value is what was shown.
    assert policy.decide(6.5, 0.0, now=T0) == Judgement(6.5, Verdict.HOLD, 6.5, 0.0, True)
    assert policy.decide(6.5, 0.0, now=T0) == Judgement(6.5, Verdict.HOLD, 6.5, 0.0, False)
    later = T0 + NEW_CYCLE_AFTER
    assert policy.decide(6.5, 0.1, now=later) == Judgement(0.1, Verdict.NEW_CYCLE, 6.5, 0.1)
    assert policy.decide(6.5, 0.1, replaced=True) == Judgement(0.1, Verdict.SHOW, 6.5, 0.1)


def test_decide_takes_only_a_number_as_what_is_shown() -> None:
    """A restored text, an unknown (None) or an integer state is nothing to compare with."""
    for state in (None, "unknown", 7, True):
        policy = RegisterPolicy(register=True, per_period=False)
        assert policy.decide(state, 0.0, now=T0) == Judgement(0.0, Verdict.SHOW, None, 0.0)


def test_decide_compares_with_the_state_at_the_users_precision() -> None:
    """A state shown with more decimals than the user now asks for is no decrease."""
    policy = RegisterPolicy(register=True, per_period=False, precision=2)
    assert policy.decide(1.23456, 1.23, now=T0) == Judgement(1.23, Verdict.SHOW, 1.23, 1.23)
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.decide(1.23456, 1.23, now=T0).verdict is Verdict.HOLD


def test_decide_passes_everything_else_as_it_is() -> None:
    register = RegisterPolicy(register=True, per_period=False)
    measurement = RegisterPolicy(register=False, per_period=False)
    assert measurement.decide(6.0, 0.0) == Judgement(0.0, reading=0.0)
    assert register.decide(6.0, "low") == Judgement("low", reading="low")
    assert register.decide(6.0, None) == Judgement(None)
    assert not register.holding


def test_write_now_notes_the_period_of_what_it_lets_through() -> None:
    """`hold_for_period` and `wrote` for a published snapshot; before one, nothing waits."""
    policy = RegisterPolicy(register=True, per_period=True)

    class Telegram:
        pass

    published = publish(SnapshotBuilder(()), [Telegram()], None, 3_000.0)
    in_period_10 = dataclasses.replace(published, period=10, closes_period=False)
    assert policy.write_now(1.0, 2.0, in_period_10)  # first write of period 10
    assert policy.written_period == 10
    assert not policy.write_now(2.0, 3.0, in_period_10)  # grown inside it: waits
    assert policy.write_now(2.0, 1.0, in_period_10)  # a decrease: at once
    last_window = dataclasses.replace(in_period_10, closes_period=True)
    assert policy.write_now(2.0, 3.0, last_window)
    assert policy.written_period == 11  # stands for period 11's start too
    assert policy.write_now(3.0, 4.0, None)  # no telegram yet
    assert policy.written_period == 11
