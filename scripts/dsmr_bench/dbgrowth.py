"""Section 6: database growth per hour of meter time with Home Assistant's real recorder.

Four Home Assistants run at once, ours and core at default settings and with a 0 s window,
each with the recorder on a SQLite file of its own and a DSMR 5 meter (the same seed and clock
for all four: the same telegrams). Nothing but the meter is simulated: each side is set up
through its config entry and fed over TCP; the recorder writes states and compiles its 5-minute
and hourly statistics by itself, at its default settings.

Time: each Home Assistant lives in meter time (`dsmr_bench.meterclock`). Its wall clock starts
at the meter's clock; for each telegram the parent waits until every worker has handled the
one before, moves the workers' clocks on to the telegram's second (each timer due on the way
firing at its own time), then sends the telegram. So states are stamped with their telegram's
time, update windows (ours on the loop clock, core's `Throttle` on the wall clock) last 30 s of
meter time, the recorder commits every 5 s and compiles each 5-minute period at ten seconds
past, the hour's long-term statistics with the period that ends it — as in a real installation,
as fast as the machine allows (a busy machine makes it slower, not different). The meter's
clock is fixed (a January weekday, 12:50 in Amsterdam), so every run sees the same telegrams.

Measured, once everything is recorded and compiled: each table's share of bytes for the rows
stamped in the measured hours (see `dsmr_bench.database`), per hour. Then both sides' hourly
long-term statistics are compared: the same meter stream has to give the same energy
statistics and the same mean power, with fewer bytes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
import math
import statistics
from typing import Any, Self
from zoneinfo import ZoneInfo

from dsmr_sim.tcp import TcpServer

from .cpu import IMPLS
from .driver import Meters, Worker, entry_data

SETTINGS: dict[str, dict[str, Any]] = {"defaults": {}, "0 s window": {"time_between_update": 0}}
DEFAULT_WINDOW = 30.0  # seconds: both integrations' default `time_between_update`
# The meter's first telegram; the first measured hour starts at 13:00, after ten minutes that
# create the entities and their statistics (ours at setup, core at its first telegram).
START = datetime(2024, 1, 15, 12, 50, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()
WARMUP = 600
SETUP = 30  # seconds the workers' clocks start before the meter's: setup and connection
SETTLE = 40  # meter seconds after the last hour until the statistics are compiled (+10 s)
HOUR = 3600
SEED = 41
POWER = "current_electricity_usage"  # unique-id suffix of the power sensor
POWER_VALUES = ("CURRENT_ELECTRICITY_USAGE", "CURRENT_ELECTRICITY_DELIVERY")
# Mean power: ours publishes each window's mean of every telegram, core one telegram per
# window, so the two hourly means differ by core's sampling; allowed: this share of the
# telegrams' own mean.
MEAN_TOLERANCE = 0.02

type Key = tuple[str, str]  # (setting, "ours" | "core")


def window(setting: str) -> float:
    """The update window of a setting, in seconds of meter time."""
    return float(SETTINGS[setting].get("time_between_update", DEFAULT_WINDOW))


async def growth(hours: int) -> dict[str, Any]:
    """Run the section; see the module docstring."""
    span = (START + WARMUP, START + WARMUP + hours * HOUR)
    keys = [(setting, impl) for setting in SETTINGS for impl in IMPLS]
    async with Recorded(keys, START) as run:
        await run.stream(until=span[1] + SETTLE, measured_from=span[0])
        sizes = await run.sizes(*span)
        hourly = await run.hourly(span[0] - HOUR, span[1])  # with the warm-up's hour
    result: dict[str, Any] = {"hours": hours, "ahead_s": run.ahead, "real_s": run.real_seconds}
    for setting in SETTINGS:
        sides: dict[str, Any] = {
            impl: per_hour(sizes[setting, impl], hours)
            | {"statistic_ids": len(hourly[setting, impl])}
            for impl in IMPLS
        }
        sides["statistics"] = compare(
            hourly[setting, "ours"],
            hourly[setting, "core"],
            run.telegrams,
            [span[0] + n * HOUR for n in range(hours)],
            window(setting),
        )
        sides["hourly"] = {impl: hourly[setting, impl] for impl in IMPLS}
        result[setting] = sides
    return result


class Recorded:
    """Home Assistants with the recorder, one per key, each read by a meter of its own.

    All meters have the same seed and clock (`start`, Unix seconds): the same telegrams.
    """

    def __init__(self, keys: list[Key], start: float) -> None:
        """Describe the run; `async with` starts and stops it."""
        self.keys = keys
        self.start = start
        self.meters = Meters()
        self.workers: dict[Key, Worker] = {}
        self.servers: dict[Key, TcpServer] = {}
        self.entries: dict[Key, str] = {}
        # (meter time, power drawn, power returned in kW) of every telegram
        self.telegrams: list[tuple[float, float, float]] = []
        self.ahead = 0.0  # the most a worker's clock was past a telegram's time (measured part)
        self.real_seconds = 0.0  # how long sending the telegrams took

    async def __aenter__(self) -> Self:
        """Start the workers with their recorders; add the entries, connected to the meters."""
        clock = str(self.start - SETUP)
        try:
            started = await asyncio.gather(
                *(Worker.start(impl, "--meter-clock", clock) for _, impl in self.keys)
            )
            self.workers = dict(zip(self.keys, started, strict=True))
            await asyncio.gather(*(worker.call("recorder") for worker in self.workers.values()))
            for key, worker in self.workers.items():
                self.servers[key] = server = await self.meters.tcp(
                    "5", seed=SEED, start=datetime.fromtimestamp(self.start, UTC), step_seconds=1.0
                )
                options = SETTINGS[key[0]]
                reply = await worker.call("add_entry", data=entry_data(server), options=options)
                self.entries[key] = reply["entry_id"]
            for server in self.servers.values():
                await server.wait_for_clients(1, timeout=30)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the workers, then the meters."""
        await asyncio.gather(*(worker.stop() for worker in self.workers.values()))
        await self.meters.close()

    async def stream(self, until: float, measured_from: float) -> None:
        """Send a telegram for every second of meter time up to `until`, each worker's meter in
        step with that worker's clocks (see the module docstring)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.gather(*(self._chain(key, until, measured_from) for key in self.workers))
        self.real_seconds = loop.time() - began

    async def _chain(self, key: Key, until: float, measured_from: float) -> None:
        worker, server = self.workers[key], self.servers[key]
        record = key == self.keys[0]  # every meter sends the same telegrams
        count = 0
        while (at := self.start + count + 1) <= until:
            reply = await worker.call("step", wall=at, handled=count)
            if at >= measured_from:
                self.ahead = max(self.ahead, reply["ahead"])
            await server.send_telegram()
            count += 1
            if record:
                drawn, returned = (_power(server, name) for name in POWER_VALUES)
                self.telegrams.append((at, drawn, returned))
        await worker.call("step", wall=until, handled=count)

    async def sizes(self, start: float, end: float) -> dict[Key, dict[str, Any]]:
        """Every database's tables and what the span [start, end) added to them.

        Each is measured once its recorder has caught up and compiled the span's last period.
        """
        replies = await asyncio.gather(
            *(
                worker.call("db_size", start=start, end=end, compiled=end - 300, within=300)
                for worker in self.workers.values()
            )
        )
        return dict(zip(self.workers, replies, strict=True))

    async def hourly(self, start: float, end: float) -> dict[Key, dict[str, Any]]:
        """Every entry's hourly long-term statistics between `start` and `end`."""
        return {
            key: (await worker.call("hourly", entry_id=self.entries[key], start=start, end=end))[
                "statistics"
            ]
            for key, worker in self.workers.items()
        }


def _power(server: TcpServer, name: str) -> float:
    """The power drawn or returned (kW) in the server's last telegram."""
    assert server.last_rendered is not None
    value = server.last_rendered.values[name]
    assert isinstance(value, Decimal)
    return float(value)


def per_hour(sizes: dict[str, Any], hours: int) -> dict[str, Any]:
    """One side's growth per hour of meter time, from its database's tables."""
    return {
        "bytes_per_hour": {group: value / hours for group, value in sizes["span_bytes"].items()},
        "page_bytes_per_hour": {
            group: value / hours for group, value in sizes["span_pages"].items()
        },
        "rows_per_hour": {
            table: entry["in_span"] / hours
            for table, entry in sizes["tables"].items()
            if entry["in_span"]
        },
        "states_per_hour": {
            entity: count / hours for entity, count in sizes["states_by_entity"].items()
        },
    }


def compare(
    ours: dict[str, list[dict[str, float]]],
    core: dict[str, list[dict[str, float]]],
    telegrams: list[tuple[float, float, float]],
    hours: list[float],
    window_s: float,
) -> dict[str, Any]:
    """Compare both sides' hourly statistics for the hours starting at `hours`.

    Energy (every statistic with a sum): the register's last state in each hour and the
    hour's change of the sum must be equal within `tolerance`: each side's last write in an
    hour may be up to one update window (plus a telegram, for latency) before the hour's end,
    and a register grows by at most the peak power over that time. Mean power: within
    `MEAN_TOLERANCE` of the mean of the telegrams' own power in that hour.
    """
    peak = max(max(usage, delivery) for _, usage, delivery in telegrams)
    tolerance = 0.001 + peak * (window_s + 2) / HOUR
    rows = {
        side: {uid: {row["start"]: row for row in rows} for uid, rows in stats.items()}
        for side, stats in (("ours", ours), ("core", core))
    }
    common = sorted(set(ours) & set(core))
    energy: dict[str, dict[str, float]] = {}  # unique id: largest differences
    missing = 0
    for uid in common:
        o, c = rows["ours"][uid], rows["core"][uid]
        if not any("sum" in row for row in (*o.values(), *c.values())):
            continue
        diff = energy.setdefault(uid, {"state": 0.0, "sum": 0.0})
        for start in hours:
            prev = start - HOUR
            if not all(at in side and "sum" in side[at] for side in (o, c) for at in (start, prev)):
                missing += 1
                continue
            diff["state"] = max(diff["state"], abs(o[start]["state"] - c[start]["state"]))
            change = (o[start]["sum"] - o[prev]["sum"]) - (c[start]["sum"] - c[prev]["sum"])
            diff["sum"] = max(diff["sum"], abs(change))
    state_diff = max((diff["state"] for diff in energy.values()), default=0.0)
    sum_diff = max((diff["sum"] for diff in energy.values()), default=0.0)
    power: list[dict[str, float]] = []
    power_uid = next((uid for uid in common if uid.endswith(f"_{POWER}")), None)
    for start in hours:
        drawn = [usage for t, usage, _ in telegrams if start <= t < start + HOUR]
        row = {"true": statistics.fmean(drawn) if drawn else math.nan}
        for side in ("ours", "core"):
            found = rows[side].get(power_uid or "", {}).get(start, {}).get("mean")
            row[side] = math.nan if found is None else found
        power.append(row)
    errors = [abs(row[side] - row["true"]) / row["true"] for row in power for side in IMPLS]
    mean_error = math.nan if not errors or any(map(math.isnan, errors)) else max(errors)
    return {
        "common": len(common),
        "energy": energy,
        "missing": missing,
        "tolerance": tolerance,
        "max_state_diff": state_diff,
        "max_sum_diff": sum_diff,
        "energy_equal": bool(energy) and not missing and max(state_diff, sum_diff) <= tolerance,
        "power": power,
        "max_mean_error": mean_error,
        "power_equal": mean_error <= MEAN_TOLERANCE,
    }
