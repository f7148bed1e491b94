"""A benchmark worker: one Home Assistant with our `dsmr` or core's, driven over stdin/stdout.

    python -m dsmr_bench.worker ours|core [--meter-clock WALL]

The parent (`dsmr_bench.driver.Worker`) writes one JSON command per line and reads one JSON
reply per line. The worker never measures wall time for CPU: it reports its own process CPU
time (`time.process_time`, all threads) and the parent takes differences. With `--meter-clock`
Home Assistant's clocks start at WALL (Unix seconds) and move on with the parent's meters (the
recorder section; see `dsmr_bench.meterclock`).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
from pathlib import Path
import sys
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import recorder as recorder_helper

from .database import grouped, hourly_statistics, setup_recorder, span_share, table_sizes
from .hassrun import (
    StateWatch,
    TelegramCounter,
    add_entry,
    config_flow,
    enable_all,
    entity_count,
    home_assistant,
    queue_depth,
    reader_stats,
    stop,
)
from .meterclock import MeterClock, MeterClockLoop, advance_to, install, settle


class Worker:
    """Executes the parent's commands against one Home Assistant instance."""

    def __init__(
        self,
        hass: HomeAssistant,
        ours: bool,
        counter: TelegramCounter,
        clock: MeterClock | None = None,
    ) -> None:
        """Bind to a running instance (whose clocks `clock` drives, if given)."""
        self.hass = hass
        self.ours = ours
        self.counter = counter
        self.clock = clock
        self.database: Path | None = None
        self.watch: StateWatch | None = None
        self.profile: cProfile.Profile | None = None
        self.max_queue = 0
        self._sampler: asyncio.Task[None] | None = None

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        """Execute one command and return its reply."""
        handler = getattr(self, f"cmd_{command.pop('cmd')}")
        reply: dict[str, Any] = await handler(**command)
        return reply

    async def cmd_add_entry(self, data: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        entry = await add_entry(self.hass, data, options)
        return {"entry_id": entry.entry_id}

    async def cmd_enable_all(self, entry_id: str) -> dict[str, Any]:
        return {"enabled": await enable_all(self.hass, entry_id)}

    async def cmd_entities(self, entry_id: str) -> dict[str, Any]:
        return entity_count(self.hass, entry_id)

    async def cmd_wait(self, count: int, limit: float = 30.0) -> dict[str, Any]:
        """Wait until `count` telegrams were handled in total, then let the writes finish."""
        try:
            async with asyncio.timeout(limit):
                while self.counter.count < count:  # noqa: ASYNC110 - a plain counter, cheap to poll
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise RuntimeError(
                f"{self.counter.count} of {count} telegrams handled in {limit} s; "
                f"reader stats: {reader_stats(self.hass)}"
            ) from None
        await self.hass.async_block_till_done()
        return {"handled": self.counter.count}

    async def cmd_cpu(self) -> dict[str, Any]:
        depth, self.max_queue = self.max_queue, 0
        return {
            "cpu": time.process_time(),
            "t": time.monotonic(),
            "handled": self.counter.count,
            "max_queue": max(depth, queue_depth(self.hass)),
        }

    async def cmd_sample_queue(self, interval: float) -> dict[str, Any]:
        """Sample the coordinators' queue depth every `interval` seconds (scale runs)."""

        async def sample() -> None:
            while True:
                self.max_queue = max(self.max_queue, queue_depth(self.hass))
                await asyncio.sleep(interval)

        self._sampler = asyncio.create_task(sample())
        return {}

    async def cmd_watch(self) -> dict[str, Any]:
        self.watch = StateWatch(self.hass)
        return {}

    async def cmd_watch_result(self) -> dict[str, Any]:
        assert self.watch is not None
        self.watch.stop()
        return {
            "changes": sum(self.watch.changes.values()),
            "by_entity": dict(self.watch.changes),
            "power": self.watch.power,
        }

    async def cmd_flow(
        self, host: str, port: int, version: str, first_state: bool
    ) -> dict[str, Any]:
        return await config_flow(
            self.hass, ours=self.ours, host=host, port=port, version=version, first=first_state
        )

    async def cmd_recorder(self) -> dict[str, Any]:
        """Set up Home Assistant's recorder on a SQLite file in the configuration folder."""
        self.database = Path(self.hass.config.config_dir) / "home-assistant_v2.db"
        await setup_recorder(self.hass, self.database)
        return {"database": str(self.database)}

    async def cmd_step(self, wall: float, handled: int, limit: float = 30.0) -> dict[str, Any]:
        """Once `handled` telegrams were handled, move the clocks on to `wall` (meter time).

        Returns how far Home Assistant's wall clock already was past `wall`: more than a
        fraction of a second means the worker could not keep up with the parent.
        """
        if self.clock is None:
            raise RuntimeError("started without --meter-clock")
        try:
            await self.counter.reached(handled, limit)
        except TimeoutError:
            raise RuntimeError(
                f"{self.counter.count} of {handled} telegrams handled in {limit} s"
            ) from None
        await settle()
        return {"ahead": await advance_to(self.clock, wall)}

    async def cmd_db_size(self, start: float, end: float, compiled: float) -> dict[str, Any]:
        """The database's tables and what the span [start, end) added to them.

        Measured once the recorder has written everything it was given and compiled the
        statistics of the period that begins at `compiled`.
        """
        assert self.database is not None
        while True:
            await recorder_helper.get_instance(self.hass).async_block_till_done()
            tables = await self.hass.async_add_executor_job(table_sizes, self.database, start, end)
            if tables.compiled is not None and tables.compiled >= compiled:
                break
            await asyncio.sleep(1.0)
        return {
            "tables": tables.sizes,
            "span_bytes": grouped(span_share(tables.sizes)),
            "span_pages": grouped(span_share(tables.sizes, "pages")),
            "states_by_entity": tables.states_by_entity,
            "handled": self.counter.count,
        }

    async def cmd_hourly(self, entry_id: str, start: float, end: float) -> dict[str, Any]:
        """The entry's hourly long-term statistics, by unique id."""
        return {"statistics": await hourly_statistics(self.hass, entry_id, start, end)}

    async def cmd_profile(self, path: str | None = None) -> dict[str, Any]:
        """Start a cProfile run, or stop it and write its stats to `path`."""
        if path is None:
            self.profile = cProfile.Profile()
            self.profile.enable()
        elif self.profile is not None:
            self.profile.disable()
            self.profile.dump_stats(path)
            self.profile = None
        return {}


async def serve(ours: bool, clock: MeterClock | None = None) -> None:
    """Read commands from stdin until `quit` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    counter = TelegramCounter(ours)
    async with home_assistant(ours) as hass:
        worker = Worker(hass, ours, counter, clock)
        reply({"ready": True, "ours": ours})
        while line := await reader.readline():
            command = json.loads(line)
            if command.get("cmd") == "quit":
                break
            try:
                reply(await worker.run(command))
            except Exception as err:  # reported to the parent, which raises
                reply({"error": f"{type(err).__name__}: {err}"})
        await stop(hass)


def reply(message: dict[str, Any]) -> None:
    """Write one reply line."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Entry point: `python -m dsmr_bench.worker ours|core [--meter-clock WALL]`."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ours = sys.argv[1] == "ours"
    if sys.argv[2:3] != ["--meter-clock"]:
        asyncio.run(serve(ours))
        return
    clock = MeterClock(float(sys.argv[3]))
    install(clock)
    # Entities time their state writes on the wall clock: a jump of the clocks between two
    # readings would look like a slow update.
    logging.getLogger("homeassistant.helpers.entity").setLevel(logging.ERROR)
    asyncio.run(serve(ours, clock), loop_factory=lambda: MeterClockLoop(clock))


if __name__ == "__main__":
    main()
