"""Replay a day of DSMR 5 telegrams (86,400) through the pipeline; report RSS growth and CPU.

The telegrams come from the project's simulator (values evolve like a real house: registers
rise, power moves, gas hourly) and are generated before measuring. They are fed in chunks of
random size to the integration's own P1Protocol, whose telegrams go to the coordinator as they
are read (time_between_update 0: every telegram published) and every enabled entity of an
in-process Home Assistant (pytest-homeassistant-custom-component's test instance), with
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

from homeassistant import loader
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.dsmr.connection import Connection, ConnectionState, P1Protocol
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.p1.telegram import TelegramReader, identifier, version_setup
from dsmr_sim.meter import Meter


def rss_mb() -> float:
    """Resident set size now (from /proc, not the peak)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def _no_port(self: Any) -> None:
    """The entry's port is not opened: bytes are fed to a protocol by the soak instead."""


async def _idle_connection(self: Any) -> None:
    """The connection task of the entry: bytes are fed to a protocol by the soak instead."""
    await asyncio.Event().wait()


async def soak(count: int, version: str) -> dict[str, float]:
    meter = Meter(version, seed=7, mbus=("gas", "water"))
    telegrams = []
    for _ in range(count):
        meter.step(1)
        telegrams.append(meter.payload())
    Connection.async_connect = _no_port  # type: ignore[method-assign]
    Connection.async_run = _idle_connection  # type: ignore[method-assign]
    async with async_test_home_assistant() as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
        entry = MockConfigEntry(
            domain=DOMAIN,
            data={
                "port": "/dev/null",
                "dsmr_version": version,
                "serial_id": _serial_id(telegrams[0], version),  # the meter's: not "replaced"
                "serial_id_gas": None,
            },
            options={"time_between_update": 0},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data.coordinator
        coordinator.connection_changed(ConnectionState(connected=True))
        protocol = P1Protocol(version, coordinator.telegram_received, coordinator.counters)
        rng = random.Random(1)
        writes = _count_writes(hass)
        # Warm up (caches, first states), then measure from a settled heap.
        warm = min(600, count // 10)
        await _feed(protocol, telegrams[:warm], rng)
        gc.collect()
        rss_before = rss_mb()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await _feed(protocol, telegrams[warm:], rng)
        await hass.async_block_till_done()
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        gc.collect()
        rss_after = rss_mb()
        measured = count - warm
        result = {
            "telegrams": measured,
            "parsed": coordinator.counters.telegrams - warm,
            "cpu_us_per_telegram": cpu / measured * 1e6,
            "wall_s": wall,
            "rss_before_mb": rss_before,
            "rss_after_mb": rss_after,
            "rss_growth_mb": rss_after - rss_before,
            "state_writes": writes[0],
        }
        await hass.config_entries.async_unload(entry.entry_id)
        return result


def _serial_id(telegram: bytes, version: str) -> str | None:
    read = TelegramReader(version_setup(version)[0]).read(telegram.decode("ascii"))
    return identifier(read.telegram, version)


def _count_writes(hass: HomeAssistant) -> list[int]:
    writes = [0]

    @callback  # a plain function would run in the executor for every event
    def count(_event: Any) -> None:
        writes[0] += 1

    hass.bus.async_listen("state_changed", count)
    return writes


async def _feed(protocol: P1Protocol, telegrams: list[bytes], rng: random.Random) -> None:
    for telegram in telegrams:
        position = 0
        while position < len(telegram):
            size = rng.randint(32, 1024)  # serial reads arrive in pieces
            protocol.data_received(telegram[position : position + size])
            position += size
        await asyncio.sleep(0)  # the coordinator took it as it was read: its listeners run


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
