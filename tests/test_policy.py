"""The register rules of one value (policy.py), without Home Assistant: the decrease hold, the
new cycle, one write per statistics period. (Through the entities: tests/test_registers.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from custom_components.dsmr.policy import NEW_CYCLE_AFTER, Judgement, RegisterPolicy, Verdict

T0 = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def judge(policy: RegisterPolicy, shown: Any, reading: Any, **kwargs: Any) -> tuple[Any, Verdict]:
    """What the value shows for `reading` while it shows `shown`, and why."""
    judgement = policy.decide(shown, reading, **kwargs)
    return judgement.value, judgement.verdict


def test_a_lower_reading_is_held_then_a_new_cycle() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert judge(policy, None, 5.0, now=T0) == (5.0, Verdict.SHOW)  # first value
    assert judge(policy, 5.0, 6.0, now=T0) == (6.0, Verdict.SHOW)
    assert judge(policy, 6.0, 0.0, now=T0) == (6.0, Verdict.HOLD)  # a glitch: keep showing 6
    assert policy.holding
    later = T0 + NEW_CYCLE_AFTER - timedelta(seconds=1)
    assert judge(policy, 6.0, 0.5, now=later) == (6.0, Verdict.HOLD)
    assert judge(policy, 6.0, 0.5, now=T0 + NEW_CYCLE_AFTER) == (0.5, Verdict.NEW_CYCLE)
    assert not policy.holding


def test_a_recovered_reading_ends_the_hold() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert judge(policy, 6.0, 0.0, now=T0) == (6.0, Verdict.HOLD)
    assert judge(policy, 6.0, 6.0, now=T0) == (6.0, Verdict.SHOW)
    assert not policy.holding


def test_a_lower_reading_that_came_back_is_held_afresh() -> None:
    """The hour of a hold counts from the lower reading that follows the last good one."""
    policy = RegisterPolicy(register=True, per_period=False)
    assert judge(policy, 10.0, 9.0, now=T0) == (10.0, Verdict.HOLD)
    assert judge(policy, 10.0, 10.0, now=T0 + timedelta(minutes=30)) == (10.0, Verdict.SHOW)
    assert judge(policy, 10.0, 9.0, now=T0 + NEW_CYCLE_AFTER) == (10.0, Verdict.HOLD)
    assert judge(policy, 10.0, 10.5, now=T0 + NEW_CYCLE_AFTER) == (10.5, Verdict.SHOW)


def test_a_replaced_meter_shows_its_lower_reading_at_once() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert judge(policy, 6.0, 0.1, replaced=True, now=T0) == (0.1, Verdict.SHOW)


def test_zeros_are_values() -> None:
    """A first value is shown, zero or not; so is a register that only ever read 0."""
    policy = RegisterPolicy(register=True, per_period=False)
    assert judge(policy, None, 0.0, now=T0) == (0.0, Verdict.SHOW)
    assert judge(policy, 0.0, 0.0, now=T0) == (0.0, Verdict.SHOW)


def test_measurements_are_not_registers() -> None:
    policy = RegisterPolicy(register=False, per_period=True)
    assert judge(policy, 6.0, 0.0, now=T0) == (0.0, Verdict.SHOW)
    assert not policy.per_period  # only registers wait for their period
    assert not policy.hold_for_period(1.0, 2.0, 10, False)


def test_one_write_per_statistics_period() -> None:
    policy = RegisterPolicy(register=True, per_period=True)
    assert policy.write_now(None, 1.0, 10, False)  # a first value: at once
    assert policy.hold_for_period(1.0, 2.0, 10, False)  # grown inside the written period: wait
    assert not policy.hold_for_period(1.0, 2.0, 10, True)  # the period's last window: write
    assert policy.write_now(1.0, 2.0, 10, True)  # written in the last window: it stands for
    assert policy.hold_for_period(2.0, 3.0, 11, False)  # period 11's start too
    assert not policy.hold_for_period(2.0, 3.0, 12, False)  # a new period: write
    # Anything but growth is written at once: a decrease, the same, a first or text value.
    assert not policy.hold_for_period(2.0, 1.0, 11, False)
    assert not policy.hold_for_period(2.0, 2.0, 11, False)
    assert not policy.hold_for_period(None, 2.0, 11, False)
    assert not policy.hold_for_period("low", "normal", 11, False)


def test_every_write_when_every_telegram_is_published() -> None:
    policy = RegisterPolicy(register=True, per_period=False)
    assert policy.write_now(None, 1.0, 10, False)
    assert not policy.hold_for_period(1.0, 2.0, 10, False)
    assert policy.write_now(1.0, 2.0, 10, False)


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
    """`write_now` for a publish in `period`, `closes_period` if it is the period's last."""
    policy = RegisterPolicy(register=True, per_period=True)
    assert policy.write_now(1.0, 2.0, 10, False)  # first write of period 10
    assert policy.written_period == 10
    assert not policy.write_now(2.0, 3.0, 10, False)  # grown inside it: waits
    assert policy.written_period == 10
    assert policy.write_now(2.0, 1.0, 10, False)  # a decrease: at once
    assert policy.write_now(2.0, 3.0, 10, True)  # the period's last window
    assert policy.written_period == 11  # stands for period 11's start too
