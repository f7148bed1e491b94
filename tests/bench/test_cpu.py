"""The benchmark's fingerprint of the simulated meters' telegrams."""

from __future__ import annotations

import pytest

from dsmr_bench import cpu
from dsmr_sim.meter import Meter


def test_the_fingerprint_names_the_telegrams_a_run_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same simulator gives the same fingerprint; another version or a changed line not."""
    five = cpu.fingerprint("5", 20)
    assert five == cpu.fingerprint("5", 20)
    assert len(five) == 12
    assert five != cpu.fingerprint("5B", 20)
    assert five != cpu.fingerprint("5", 21)
    original = Meter.telegram
    # A simulator that renders its telegrams a little differently.
    monkeypatch.setattr(Meter, "telegram", lambda self: original(self).replace("!", "! "))
    assert cpu.fingerprint("5", 20) != five
