"""The house behind the meter: a small deterministic model that evolves in simulated time.

Nothing here reads the wall clock. Given the same seed, start time and sequence of
:meth:`House.step` calls, every value is the same. Time advances in sub-steps of at most
10 s, and sub-steps always stop on quarter-hour boundaries and M-Bus capture times, so that
quarter-hour demand (Belgium), M-Bus captures and month roll-overs happen exactly on time.

The load is a smooth random walk per phase by default; ``appliances=True`` adds appliances that
switch (kettle, hob, oven, washing machine, dishwasher, dryer, optionally an electric car; a
boiler and water draws for the M-Bus meters), the step-shaped load of a real household.

Belgian demand (``1-0:1.4.0``) is what a DLMS demand register's *current average value* is:
the energy imported since the quarter began divided by the whole quarter (15 minutes), so it
starts at 0 on every quarter boundary and rises to the quarter's average demand at its end.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
import math
import random
from zoneinfo import ZoneInfo

from .appliances import PHASE_LIMIT_KW, Appliances
from .records import MBUS_KINDS, MbusChannel, Peak, PowerFailure, tariff_for

__all__ = ["MBUS_KINDS", "House", "MbusChannel", "Peak", "PowerFailure"]

_QUARTER_MS = 900_000
_MAX_SUBSTEP_MS = 10_000
_PHASES = 3


class House:
    """A household with a three-phase connection, solar panels and M-Bus sub-meters."""

    _quarter_kwh: float
    #: The demand of the last quarter that ended (kW): what ``1-0:1.4.0`` reached at its end.
    last_quarter_kw: float | None = None
    month_peak_kw: float
    month_peak_at: datetime
    peak_history: list[Peak]

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        tz: ZoneInfo,
        tariff_scheme: str = "nl",
        mbus: tuple[tuple[str, str], ...] = (),
        solar_kwp: float = 4.0,
        appliances: bool = False,
        ev_kw: float = 0.0,
        mbus_interval: int = 3600,
        mbus_offset: int = 0,
        demand_lag: float = 0.0,
    ) -> None:
        """Create the house at ``start`` (aware); ``mbus`` is ``(kind, identifier)`` per channel.

        ``appliances`` adds switching appliances (``ev_kw`` > 0: an electric car too);
        M-Bus readings are captured every ``mbus_interval`` seconds, ``mbus_offset`` seconds
        past the interval's start (3600 and 0: on the hour, as DSMR 4; DSMR 5 meters capture
        gas every 300 s); ``demand_lag`` delays ``1-0:1.4.0`` by that many seconds, as a meter
        that samples its demand register before it stamps the telegram.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < mbus_interval <= 86400 or not 0 <= mbus_offset < mbus_interval:
            raise ValueError("mbus_interval must be 1..86400 s and mbus_offset below it")
        self.rng = random.Random(seed)
        self.tz = tz
        self.tariff_scheme = tariff_scheme
        self.solar_kwp = solar_kwp
        rng = self.rng
        self._ms = round(start.timestamp() * 1000)
        self.import_kwh = [rng.uniform(2000, 6000), rng.uniform(2000, 6000)]
        self.import_kwh += [rng.uniform(0, 50), rng.uniform(0, 50)]
        self.export_kwh = [rng.uniform(300, 2000), rng.uniform(300, 2000)]
        self.export_kwh += [rng.uniform(0, 20), rng.uniform(0, 20)]
        self.reactive_import_kvarh = [rng.uniform(50, 400) for _ in range(4)]
        self.reactive_export_kvarh = [rng.uniform(50, 400) for _ in range(4)]
        self.quadrant_kvarh = [rng.uniform(10, 300) for _ in range(4)]
        self.load_kw = [rng.uniform(0.1, 0.6) for _ in range(_PHASES)]
        self.voltage_base = [rng.uniform(226.0, 234.0) for _ in range(_PHASES)]
        self.voltage = list(self.voltage_base)
        self.phase_net_kw = list(self.load_kw)
        self.solar_kw = 0.0
        self.cloud = rng.uniform(0.4, 1.0)
        self.power_factor = [rng.uniform(0.9, 0.99) for _ in range(_PHASES)]
        self.frequency = 50.0
        self.short_failures = rng.randint(2, 40)
        self.long_failures = rng.randint(1, 6)
        self.sags = [rng.randint(0, 5) for _ in range(_PHASES)]
        self.swells = [rng.randint(0, 2) for _ in range(_PHASES)]
        now = self.now
        self.failure_log = [
            PowerFailure(
                now - timedelta(days=90 + rng.randint(0, 30), hours=3), rng.randint(200, 9000)
            ),
            PowerFailure(now - timedelta(days=rng.randint(5, 40), hours=7), rng.randint(200, 9000)),
        ]
        self._capture_ms = (mbus_interval * 1000, mbus_offset * 1000)
        capture = self._last_capture(self._ms)
        self.mbus: list[MbusChannel] = []
        for channel, (kind, identifier) in enumerate(mbus, start=1):
            device_type, unit = MBUS_KINDS[kind]
            value = {"gas": rng.uniform(800, 4000), "water": rng.uniform(100, 900)}.get(
                kind, rng.uniform(5, 80)
            )
            self.mbus.append(
                MbusChannel(channel, kind, device_type, unit, identifier, value, value, capture)
            )
        self.appliances = (
            Appliances(random.Random(seed ^ 0x5EED), ev_kw=ev_kw) if appliances else None
        )
        self.demand_lag_ms = round(demand_lag * 1000)
        self._demand_trail: deque[tuple[int, float]] = deque()
        self._init_demand(now)
        self.last_month_at = self._month_start(now)
        self.last_month_import = [v * 0.97 for v in self.import_kwh]
        self.last_month_export = [v * 0.97 for v in self.export_kwh]
        self._update_instant(0.0)

    # --- time -----------------------------------------------------------------------------

    @property
    def utc(self) -> datetime:
        """Simulated time in UTC."""
        return datetime.fromtimestamp(self._ms / 1000, UTC)

    @property
    def now(self) -> datetime:
        """Simulated local time (aware, in the meter's time zone)."""
        return self.utc.astimezone(self.tz)

    def _last_capture(self, ms: int) -> datetime:
        interval, offset = self._capture_ms
        at = ms - (ms - offset) % interval
        return datetime.fromtimestamp(at / 1000, UTC).astimezone(self.tz)

    def _floor_local(self, local: datetime, unit_ms: int) -> datetime:
        ms = round(local.timestamp() * 1000)
        return datetime.fromtimestamp((ms - ms % unit_ms) / 1000, UTC).astimezone(self.tz)

    def _month_start(self, local: datetime) -> datetime:
        naive = datetime(local.year, local.month, 1)
        return naive.replace(tzinfo=self.tz)

    def _prev_month(self, month_start: datetime) -> datetime:
        return self._month_start(month_start.replace(tzinfo=None) - timedelta(days=1))

    # --- registers ------------------------------------------------------------------------

    @property
    def tariff(self) -> int:
        """Active tariff, 1-based (meaning depends on the region, see ``tariff_for``)."""
        return tariff_for(self.tariff_scheme, self.now)

    @property
    def import_kw(self) -> float:
        """Total power drawn from the grid (kW, >= 0)."""
        return max(sum(self.phase_net_kw), 0.0)

    @property
    def export_kw(self) -> float:
        """Total power fed into the grid (kW, >= 0)."""
        return max(-sum(self.phase_net_kw), 0.0)

    @property
    def phase_import_kw(self) -> list[float]:
        """Per-phase power drawn (kW)."""
        return [max(p, 0.0) for p in self.phase_net_kw]

    @property
    def phase_export_kw(self) -> list[float]:
        """Per-phase power fed in (kW)."""
        return [max(-p, 0.0) for p in self.phase_net_kw]

    @property
    def current(self) -> list[float]:
        """Per-phase current (A) = |P| / V."""
        return [abs(p) * 1000 / v for p, v in zip(self.phase_net_kw, self.voltage, strict=True)]

    @property
    def phase_reactive_kvar(self) -> list[float]:
        """Per-phase reactive power (kvar, signed: + inductive import, - export)."""
        return [
            p * math.tan(math.acos(pf))
            for p, pf in zip(self.phase_net_kw, self.power_factor, strict=True)
        ]

    @property
    def total_power_factor(self) -> float:
        """Power factor over all phases."""
        p = sum(abs(x) for x in self.phase_net_kw)
        q = sum(abs(x) for x in self.phase_reactive_kvar)
        return 1.0 if p == 0 else p / math.hypot(p, q)

    # --- evolution ------------------------------------------------------------------------

    def step(self, seconds: float) -> None:
        """Advance simulated time by ``seconds`` (>= 0), integrating energy on the way."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        remaining = round(seconds * 1000)
        interval, offset = self._capture_ms
        while remaining > 0:
            to_capture = interval - (self._ms - offset) % interval
            dt = min(remaining, _MAX_SUBSTEP_MS, _QUARTER_MS - self._ms % _QUARTER_MS, to_capture)
            self._advance(dt / 1000)
            self._ms += dt
            remaining -= dt
            if self._ms % _QUARTER_MS == 0:
                self._on_quarter()
            if dt == to_capture:
                self._on_capture()
            if self.demand_lag_ms:
                self._keep_demand()

    def _ou(self, x: float, mu: float, theta: float, sigma: float, dt: float) -> float:
        """One Ornstein-Uhlenbeck step: mean-reverting bounded random walk."""
        return x + theta * (mu - x) * dt + sigma * math.sqrt(dt) * self.rng.gauss(0.0, 1.0)

    def _load_mean(self, local: datetime) -> float:
        hour = local.hour + local.minute / 60
        if 7 <= hour < 9:
            mean = 0.45
        elif 17 <= hour < 22:
            mean = 0.75
        else:
            mean = 0.3 if 9 <= hour < 17 else 0.12
        # With appliances, the walk is only the background (lights, electronics, standby).
        return mean * 0.4 if self.appliances else mean

    def _season(self, local: datetime) -> float:
        """+1 at the summer solstice, -1 at the winter solstice."""
        return math.cos(2 * math.pi * (local.timetuple().tm_yday - 172) / 365.25)

    def _irradiance(self, local: datetime) -> float:
        season = self._season(local)
        daylight = 12 + 4 * season
        noon = 12.5 + (1 if local.dst() else 0)
        hour = local.hour + local.minute / 60 + local.second / 3600
        x = (hour - (noon - daylight / 2)) / daylight
        if not 0 < x < 1:
            return 0.0
        return math.sin(math.pi * x) * (0.55 + 0.45 * season)

    def _advance(self, dt: float) -> None:
        local = self.now
        mean = self._load_mean(local)
        for p in range(_PHASES):
            load = self._ou(self.load_kw[p], mean * (1.3 if p == 0 else 1.0), 1 / 600, 0.01, dt)
            self.load_kw[p] = min(max(load, 0.02), 5.0)
            volt = self._ou(self.voltage_base[p], 230.0, 1 / 300, 0.08, dt)
            self.voltage_base[p] = min(max(volt, 221.0), 239.0)
            pf = self._ou(self.power_factor[p], 0.95, 1 / 900, 0.002, dt)
            self.power_factor[p] = min(max(pf, 0.8), 0.999)
        self.cloud = min(max(self._ou(self.cloud, 0.7, 1 / 1800, 0.004, dt), 0.1), 1.0)
        freq = self._ou(self.frequency, 50.0, 1 / 60, 0.003, dt)
        self.frequency = min(max(freq, 49.9), 50.1)
        self.solar_kw = self.solar_kwp * 0.85 * self._irradiance(local) * self.cloud
        if self.appliances is not None:
            self.appliances.advance(local, dt, self._heat_need(local))
        self._update_instant(dt)
        if self.rng.random() < dt / 86400:
            self.sags[self.rng.randrange(_PHASES)] += 1
        self._advance_mbus(local, dt)

    def _update_instant(self, dt: float) -> None:
        """Recompute phase powers and voltages and integrate the registers over ``dt``."""
        load = self.load_kw
        if self.appliances is not None:
            extra = self.appliances.phase_kw
            load = [min(load[p] + extra[p], PHASE_LIMIT_KW) for p in range(_PHASES)]
        self.phase_net_kw = [load[p] - (self.solar_kw if p == 0 else 0.0) for p in range(_PHASES)]
        for p in range(_PHASES):
            net = self.phase_net_kw[p]
            rise = 1.5 * max(-net, 0.0) - 0.8 * max(net, 0.0)
            self.voltage[p] = min(max(self.voltage_base[p] + rise, 207.0), 253.0)
        if dt == 0:
            return
        hours = dt / 3600
        t = self.tariff - 1
        self.import_kwh[t] += self.import_kw * hours
        self.export_kwh[t] += self.export_kw * hours
        self._quarter_kwh += self.import_kw * hours
        for net, q in zip(self.phase_net_kw, self.phase_reactive_kvar, strict=True):
            q_main, q_cap = abs(q) * 0.9 * hours, abs(q) * 0.1 * hours
            if net >= 0:  # importing: mostly Q1 (Q+), a little Q4 (Q-)
                self.quadrant_kvarh[0] += q_main
                self.quadrant_kvarh[3] += q_cap
                self.reactive_import_kvarh[t] += q_main
                self.reactive_export_kvarh[t] += q_cap
            else:  # exporting: mostly Q3 (Q-), a little Q2 (Q+)
                self.quadrant_kvarh[2] += q_main
                self.quadrant_kvarh[1] += q_cap
                self.reactive_export_kvarh[t] += q_main
                self.reactive_import_kvarh[t] += q_cap

    def _heat_need(self, local: datetime) -> float:
        """How much the house needs heating: 0 in summer, about 1 on a winter day."""
        awake = 6 <= local.hour < 23
        return max(0.0, 0.6 - 0.6 * self._season(local)) * (1.0 if awake else 0.4)

    def _advance_mbus(self, local: datetime, dt: float) -> None:
        season = self._season(local)
        awake = 6 <= local.hour < 23
        heat_need = self._heat_need(local)
        appliances = self.appliances
        for ch in self.mbus:
            if appliances is not None and ch.kind in {"gas", "water", "warm_water"}:
                ch.rate = {
                    "gas": appliances.gas_m3h,
                    "water": appliances.water_m3h,
                    "warm_water": appliances.hot_water_m3h,
                }[ch.kind]
                ch.value += ch.rate * dt / 3600
                continue
            if ch.kind == "gas":
                mean, sigma, top = 0.05 + 0.9 * heat_need, 0.01, 3.0
            elif ch.kind in {"water", "warm_water"}:
                mean, sigma, top = (0.03 if awake else 0.003), 0.004, 1.2
            elif ch.kind in {"cooling", "cooling_inlet"}:
                mean, sigma, top = max(0.0, season) * 0.004 * awake, 0.0002, 0.02
            else:  # heat, heat_inlet: district heating in GJ
                mean, sigma, top = 0.002 + 0.02 * heat_need, 0.0004, 0.1
            rate = self._ou(ch.rate, mean, 1 / 900, sigma, dt)
            ch.rate = min(max(rate, 0.0), top)
            ch.value += ch.rate * dt / 3600

    def _on_capture(self) -> None:
        local = self.now
        for ch in self.mbus:
            ch.reading = ch.value
            ch.reading_at = local

    def _keep_demand(self) -> None:
        """Remember the demand register's recent values, for a meter that reports it late."""
        trail = self._demand_trail
        trail.append((self._ms, self._quarter_kwh * 4))
        while len(trail) > 1 and trail[1][0] <= self._ms - self.demand_lag_ms:
            trail.popleft()

    def _on_quarter(self) -> None:
        local = self.now
        quarter_kw = self._quarter_kwh * 4
        self.last_quarter_kw = quarter_kw
        if self.demand_lag_ms:
            self._keep_demand()  # the quarter's end value, before the register restarts
        if quarter_kw > self.month_peak_kw:
            self.month_peak_kw = quarter_kw
            self.month_peak_at = local
        self._quarter_kwh = 0.0
        if local.day == 1 and local.hour == 0 and local.minute == 0:
            self.peak_history.append(Peak(local, self.month_peak_at, self.month_peak_kw))
            del self.peak_history[:-13]
            self.month_peak_kw = 0.0
            self.month_peak_at = local
            self.last_month_at = local
            self.last_month_import = list(self.import_kwh)
            self.last_month_export = list(self.export_kwh)

    # --- Belgian capacity tariff ------------------------------------------------------------

    def _init_demand(self, now: datetime) -> None:
        rng = self.rng
        self._quarter_kwh = 0.0
        month = self._month_start(now)
        half = self._floor_local(month + (now - month) / 2, _QUARTER_MS)
        self.month_peak_kw = rng.uniform(2.5, 5.0)
        self.month_peak_at = max(half, month)
        history: list[Peak] = []
        end = month
        for index in range(13):
            begin = self._prev_month(end)
            if index == 12:  # the oldest slot is unused, as on a meter installed a year ago
                history.append(Peak(end, None, 0.0))
            else:
                offset = timedelta(days=rng.randint(0, 26), minutes=15 * rng.randint(28, 88))
                history.append(Peak(end, begin + offset, rng.uniform(2.5, 7.5)))
            end = begin
        self.peak_history = history[::-1]

    @property
    def avg_demand_kw(self) -> float:
        """Current average demand (``1-0:1.4.0``): this quarter's energy so far per quarter.

        A DLMS demand register's *current average value* divides the energy of the running
        period by the period's full length, so it rises from 0 to the quarter's average.
        With ``demand_lag``, the value the register had that many seconds ago.
        """
        trail = self._demand_trail
        if self.demand_lag_ms and trail and trail[0][0] <= self._ms - self.demand_lag_ms:
            return trail[0][1]
        return self._quarter_kwh * 4
