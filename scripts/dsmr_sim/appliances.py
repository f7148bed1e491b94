"""Appliances that switch: the step-shaped load of a real household, for demand and flow tests.

The house's smooth background (lights, electronics: an Ornstein-Uhlenbeck walk per phase) is
not what makes a quarter-hour peak: kettles, hobs, ovens, washing machines, dishwashers, dryers
and an electric car do, each switching between a few fixed power levels (heating elements,
thermostats cycling, program stages). This model starts each appliance at random moments of
its usual hours (a Poisson process per appliance), runs its program, and reports the power per
phase. It also drives the M-Bus sub-meters the same way: a boiler burner that cycles while the
house needs heat (and heats shower water), and water taps, showers and toilet flushes, so that
gas and water readings stand still for hours at night and move in steps by day.

Everything is seeded: the same seed and the same sequence of :meth:`Appliances.advance` calls
give the same loads. Nothing reads the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
import random

__all__ = ["KINDS", "Appliances", "Hours", "Kind", "Stage"]

#: A phase connection's limit (40 A at 230 V): no house draws more on one phase.
PHASE_LIMIT_KW = 9.2


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of a program: ``seconds`` long at ``kw``, cycling ``on_s``/``off_s`` if set."""

    seconds: float
    kw: float
    on_s: float = 0.0
    off_s: float = 0.0

    def power(self, into: float) -> float:
        """Power ``into`` seconds after the stage began (a thermostat cycles on, then off)."""
        if not self.on_s:
            return self.kw
        return self.kw if into % (self.on_s + self.off_s) < self.on_s else 0.0


@dataclass(frozen=True, slots=True)
class Hours:
    """When something starts: ``per_day`` times a day, at random within local hour ``ranges``."""

    per_day: float
    ranges: tuple[tuple[float, float], ...]
    per_second: float = field(init=False)

    def __post_init__(self) -> None:
        """Spread the starts over the seconds of the ranges."""
        seconds = sum(end - begin for begin, end in self.ranges) * 3600
        object.__setattr__(self, "per_second", self.per_day / seconds)

    def chance(self, hour: float, dt: float) -> float:
        """Probability of a start in the ``dt`` seconds from ``hour`` (local, fractional)."""
        for begin, end in self.ranges:
            if begin <= hour < end:
                return self.per_second * dt
        return 0.0


@dataclass(frozen=True, slots=True)
class Kind:
    """An appliance: its program, its phase (None: spread over three), when it starts."""

    name: str
    program: tuple[Stage, ...]
    phase: int | None
    when: Hours


KINDS: tuple[Kind, ...] = (
    Kind("kettle", (Stage(180, 2.2),), 0, Hours(4.0, ((6.5, 9), (12, 14), (15.5, 23)))),
    Kind("microwave", (Stage(150, 1.25),), 2, Hours(1.5, ((7, 9), (12, 13.5), (17, 21)))),
    Kind(  # induction hob: boiling on two zones, then simmering with the element pulsing
        "hob",
        (Stage(360, 3.0), Stage(1500, 1.6, 22, 26)),
        1,
        Hours(0.9, ((11.5, 12.5), (17, 19.5))),
    ),
    Kind("oven", (Stage(600, 2.4), Stage(2400, 2.4, 70, 110)), 2, Hours(0.35, ((17, 19.5),))),
    Kind(
        "washing_machine",
        (Stage(150, 0.1), Stage(1000, 2.05), Stage(2700, 0.25, 40, 20), Stage(600, 0.45)),
        0,
        Hours(0.55, ((8, 21),)),
    ),
    Kind(
        "dishwasher",
        (Stage(600, 0.08), Stage(1100, 1.95), Stage(1500, 0.1), Stage(800, 1.95), Stage(900, 0)),
        2,
        Hours(0.8, ((13, 14), (19, 23))),
    ),
    Kind("dryer", (Stage(4200, 2.45, 420, 90),), 1, Hours(0.3, ((9, 21),))),
)
#: The fridge's compressor runs all day, on about a third of the time.
FRIDGE = Stage(float("inf"), 0.13, 1100, 1900)


def ev_kind(kw: float) -> Kind:
    """An electric car charging at ``kw`` over three phases, in the evening, about two hours."""
    return Kind("ev", (Stage(7200, kw),), None, Hours(0.35, ((17.5, 23),)))


@dataclass(slots=True)
class _Run:
    kind: Kind
    scale: float  # stage lengths are stretched by this (programs differ run to run)
    elapsed: float = 0.0

    def power(self) -> float | None:
        """Power now, or None once the program is over."""
        into = self.elapsed
        for stage in self.kind.program:
            length = stage.seconds * self.scale
            if into < length:
                return stage.power(into)
            into -= length
        return None


@dataclass(slots=True)
class _Draw:
    """A water draw: ``m3h`` for ``seconds``; ``hot`` ones also fire the boiler."""

    m3h: float
    seconds: float
    hot: bool


@dataclass(frozen=True, slots=True)
class _DrawKind:
    m3h: tuple[float, float]
    seconds: tuple[float, float]
    hot: bool
    when: Hours


_DRAWS = (
    _DrawKind((0.42, 0.54), (300, 720), True, Hours(1.3, ((6, 9), (19, 23)))),  # shower
    _DrawKind((0.33, 0.39), (50, 70), False, Hours(7.0, ((6, 24),))),  # toilet flush
    _DrawKind((0.3, 0.4), (20, 90), False, Hours(10.0, ((6.5, 23),))),  # tap
)
_BOILER_DHW_M3H = 1.9  # a combination boiler heating shower water (about 19 kW)


class Appliances:
    """The switching loads of one household, advanced in steps of simulated time."""

    def __init__(self, rng: random.Random, *, ev_kw: float = 0.0) -> None:
        """Start with no appliance running but the fridge (at a random point of its cycle)."""
        self.rng = rng
        self.kinds = (*KINDS, ev_kind(ev_kw)) if ev_kw > 0 else KINDS
        self.runs: dict[str, _Run] = {}
        self.fridge_into = rng.uniform(0, FRIDGE.on_s + FRIDGE.off_s)
        self.phase_kw = [0.0, 0.0, 0.0]
        self.draws: list[_Draw] = []
        self.burner_on = False
        self.burner_left = 0.0
        self.burner_m3h = 0.0
        self.gas_m3h = 0.0
        self.water_m3h = 0.0
        self.hot_water_m3h = 0.0

    def advance(self, local: datetime, dt: float, heat_need: float) -> None:
        """Switch appliances for the next ``dt`` seconds (<= 10) at local time ``local``.

        ``heat_need`` (0 = none, about 1 on a cold day) sets how often the boiler fires.
        """
        hour = local.hour + local.minute / 60 + local.second / 3600
        rng = self.rng
        for kind in self.kinds:
            run = self.runs.get(kind.name)
            if run is not None:
                run.elapsed += dt
                if run.power() is None:
                    del self.runs[kind.name]
            elif rng.random() < kind.when.chance(hour, dt):
                self.runs[kind.name] = _Run(kind, rng.uniform(0.75, 1.3))
        self.fridge_into += dt
        phase_kw = [0.0, FRIDGE.power(self.fridge_into), 0.0]
        for run in self.runs.values():
            kw = run.power() or 0.0
            if run.kind.phase is None:
                phase_kw = [p + kw / 3 for p in phase_kw]
            else:
                phase_kw[run.kind.phase] += kw
        self.phase_kw = phase_kw
        self._advance_water(hour, dt)
        self._advance_boiler(dt, heat_need)

    def _advance_water(self, hour: float, dt: float) -> None:
        rng = self.rng
        for draw in self.draws:
            draw.seconds -= dt
        self.draws = [d for d in self.draws if d.seconds > 0]
        for kind in _DRAWS:
            if rng.random() < kind.when.chance(hour, dt):
                self.draws.append(
                    _Draw(rng.uniform(*kind.m3h), rng.uniform(*kind.seconds), kind.hot)
                )
        self.water_m3h = sum(d.m3h for d in self.draws)
        self.hot_water_m3h = sum(d.m3h for d in self.draws if d.hot)

    def _advance_boiler(self, dt: float, heat_need: float) -> None:
        """Space heating: burner cycles whose duty follows the need; showers fire it too."""
        self.burner_left -= dt
        if self.burner_left <= 0:
            duty = min(0.5 * heat_need, 0.85)
            if self.burner_on or duty < 0.05:
                self.burner_on = False
                on_s = self.rng.uniform(600, 1200)
                self.burner_left = on_s * (1 - duty) / duty if duty >= 0.05 else 900.0
            else:
                self.burner_on = True
                self.burner_m3h = (0.25 + 0.6 * min(heat_need, 1.0)) * self.rng.uniform(0.8, 1.2)
                self.burner_left = self.rng.uniform(600, 1200)
        heating = self.burner_m3h if self.burner_on else 0.0
        self.gas_m3h = max(heating, _BOILER_DHW_M3H if self.hot_water_m3h else 0.0)
