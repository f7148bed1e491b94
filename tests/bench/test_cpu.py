"""The benchmark's fingerprint of the simulated meters' telegrams."""

from __future__ import annotations

import pytest

from dsmr_bench import cpu, report
from dsmr_bench.driver import Cpu
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


def test_the_idle_subtracted_is_reported_with_its_spread() -> None:
    """The e2e rows subtract the median idle; the table says which, and how far it strayed."""
    slot = {"us": 300.0, "entities": {"enabled": 9}}
    e2e = {
        "slots": {
            f"5/{mode}/{impl}": slot for mode in ("default", "all") for impl in ("ours", "core")
        },
        "idle_ms_per_s": {"ours": 4.2, "core": 1.5},
        "idle_samples_ms_per_s": {"ours": [3.9, 4.2, 7.6], "core": [1.4, 1.5, 1.9]},
    }
    rows = report.cpu_rows({"5": {"ours": 50.0, "dsmr_parser": 500.0}}, e2e)
    label, ours, core, _, _ = rows[-1]
    assert label == "end to end: idle subtracted, ms/s (median of 3; range 3.9-7.6/1.4-1.9)"
    assert (ours, core) == ("4.20", "1.50")


def test_a_window_less_idle_per_telegram() -> None:
    """10 ms of CPU over 2 s with 2 ms/s idle, 4 telegrams: 1.5 ms each."""
    assert cpu.per_telegram(Cpu(cpu=0.010, t=2.0, handled=4, max_queue=0), 4, 0.002) == (
        pytest.approx(0.0015)
    )
