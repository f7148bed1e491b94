"""Replay a day of DSMR 5 telegrams (86,400) through the pipeline; report RSS growth and CPU.

The telegrams come from the project's simulator (values evolve like a real house: registers
rise, power moves, gas hourly) and are generated before measuring. They are fed in chunks of
random size to the integration's own P1Protocol, whose parsed telegrams go through the queue,
the coordinator (time_between_update 0: every telegram published) and every enabled entity
of an in-process Home Assistant (pytest-homeassistant-custom-component's test instance), with
the recorder off. Process CPU time and RSS are read around the replay only.

    scripts/soak [--telegrams 86400] [--version 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import time
from typing import Any

from dsmr_parser.clients.protocol import _create_dsmr_protocol
from homeassistant import loader
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.dsmr import reader as reader_module
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.protocol import P1Protocol
from dsmr_sim.meter import Meter


def rss_mb() -> float:
    """Resident set size now (from /proc, not the peak)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def _idle_reader(self: Any) -> None:
    """The reader task of the entry: bytes are fed to its protocol by the soak instead."""
    await asyncio.Event().wait()


async def soak(count: int, version: str) -> dict[str, float]:
    meter = Meter(version, seed=7, mbus=("gas", "water"))
    telegrams = []
    for _ in range(count):
        meter.step(1)
        telegrams.append(meter.payload())
    reader_module.DsmrReader.async_run = _idle_reader  # type: ignore[method-assign]
    async with async_test_home_assistant() as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
        entry = MockConfigEntry(
            domain=DOMAIN,
            data={
                "port": "/dev/null",
                "dsmr_version": version,
                "serial_id": "soak",
                "serial_id_gas": None,
            },
            options={"time_between_update": 0},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data
        queue = coordinator.reader.queue
        protocol_factory, _ = _create_dsmr_protocol(
            version, queue.put_nowait, P1Protocol, hass.loop, stats=coordinator.reader.stats
        )
        protocol: P1Protocol = protocol_factory()
        rng = random.Random(1)
        writes = _count_writes(hass)
        # Warm up (caches, first states), then measure from a settled heap.
        warm = min(600, count // 10)
        await _feed(protocol, telegrams[:warm], rng, queue)
        gc.collect()
        rss_before = rss_mb()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await _feed(protocol, telegrams[warm:], rng, queue)
        await hass.async_block_till_done()
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        gc.collect()
        rss_after = rss_mb()
        measured = count - warm
        result = {
            "telegrams": measured,
            "parsed": coordinator.reader.stats.telegrams - warm,
            "cpu_us_per_telegram": cpu / measured * 1e6,
            "wall_s": wall,
            "rss_before_mb": rss_before,
            "rss_after_mb": rss_after,
            "rss_growth_mb": rss_after - rss_before,
            "state_writes": writes[0],
        }
        await hass.config_entries.async_unload(entry.entry_id)
        return result


def _count_writes(hass: HomeAssistant) -> list[int]:
    writes = [0]

    @callback  # a plain function would run in the executor for every event
    def count(_event: Any) -> None:
        writes[0] += 1

    hass.bus.async_listen("state_changed", count)
    return writes


async def _feed(
    protocol: P1Protocol, telegrams: list[bytes], rng: random.Random, queue: asyncio.Queue[Any]
) -> None:
    for telegram in telegrams:
        position = 0
        while position < len(telegram):
            size = rng.randint(32, 1024)  # serial reads arrive in pieces
            protocol.data_received(telegram[position : position + size])
            position += size
        while not queue.empty():  # noqa: ASYNC110 - yield until the coordinator has taken it
            await asyncio.sleep(0)
        await asyncio.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--telegrams", type=int, default=86_400)
    parser.add_argument("--version", default="5")
    args = parser.parse_args()
    result = asyncio.run(soak(args.telegrams, args.version))
    telegrams, parsed, cpu = result["telegrams"], result["parsed"], result["cpu_us_per_telegram"]
    print(f"soak: {telegrams} DSMR {args.version} telegrams through the pipeline ({parsed} parsed)")
    print(f"  CPU per telegram : {cpu:8.1f} µs (process CPU, whole pipeline)")
    print(f"  wall time        : {result['wall_s']:8.1f} s")
    print(
        f"  RSS              : {result['rss_before_mb']:.1f} MB -> {result['rss_after_mb']:.1f} MB "
        f"(growth {result['rss_growth_mb']:+.1f} MB; target < 5 MB)"
    )
    print(f"  state writes     : {result['state_writes']}")
    if result["parsed"] != result["telegrams"]:
        raise SystemExit("soak: not every telegram was parsed")
    if result["rss_growth_mb"] >= 5:
        raise SystemExit("soak: RSS grew by 5 MB or more")


if __name__ == "__main__":
    main()
