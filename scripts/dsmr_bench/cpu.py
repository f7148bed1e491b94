"""Section 1: CPU per telegram, parser alone and end to end; and the parser soak.

End to end, each entry gets its own simulated meter on a real TCP socket; telegrams go out one
at a time, `pace` seconds apart (far more than either side needs, so each telegram is handled
on its own), with `time_between_update = 0` so that every telegram is published. A worker's
CPU over a window of telegrams, less its idle CPU over the same time, divided by the number
of telegrams, is the cost of one telegram. Ours and core take turns, window by window.

Idle CPU is a few ms/s, but over a window it weighs as much as tens of us per telegram, and a
single reading of it swings with the machine: it is read before the first round and after
each round (both workers at once), and the median of those readings is subtracted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import gc
import hashlib
import statistics
import time
import tracemalloc
from typing import Any

from dsmr_parser.parsers import ProfileGenericParser, TelegramParser

from custom_components.dsmr.p1.telegram import TelegramReader, version_setup
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .driver import Cpu, Meters, Worker, entry_data, send_paced

IMPLS = ("ours", "core")
IDLE_SETTLE = 0.5  # seconds after a window before idle is read (its last writes, callbacks)
MODES = ("default", "all")


@dataclass
class Slot:
    """One entry under test: a worker, its entry and the meter feeding it."""

    worker: Worker
    server: TcpServer
    entry_id: str
    entities: dict[str, int] = field(default_factory=dict)
    windows: list[Cpu] = field(default_factory=list)  # CPU and time of each measured window


async def prime(worker: Worker, server: TcpServer, count: int) -> None:
    """Send `count` telegrams once the integration is connected, and wait until handled."""
    await asyncio.sleep(0.3)  # a reload closes the old connection before the new one opens
    await server.wait_for_clients(1, timeout=30)
    target = (await worker.cpu()).handled + count
    for _ in range(count):
        await server.send_telegram()
        await asyncio.sleep(0.05)
    await worker.call("wait", count=target, limit=30)


async def add_slot(worker: Worker, meters: Meters, version: str, mode: str, seed: int) -> Slot:
    """An entry for a fresh meter, primed; with `mode == "all"` every entity enabled."""
    server = await meters.tcp(version, seed=seed)
    reply = await worker.call(
        "add_entry", data=entry_data(server), options={"time_between_update": 0}
    )
    slot = Slot(worker, server, reply["entry_id"])
    await prime(worker, server, 3)
    if mode == "all":
        await worker.call("enable_all", entry_id=slot.entry_id)
        await prime(worker, server, 3)
    slot.entities = await worker.call("entities", entry_id=slot.entry_id)
    return slot


async def idle_rate(worker: Worker, seconds: float) -> float:
    """CPU seconds per second of a worker with nothing arriving."""
    before = await worker.cpu()
    await asyncio.sleep(seconds)
    spent = await worker.cpu() - before
    return spent.cpu / spent.t


async def idle_rates(workers: dict[str, Worker], seconds: float) -> dict[str, float]:
    """`idle_rate` of every worker, read at the same time, once the last window's work is done."""
    await asyncio.sleep(IDLE_SETTLE)
    rates = await asyncio.gather(*(idle_rate(worker, seconds) for worker in workers.values()))
    return dict(zip(workers, rates, strict=True))


async def window(slot: Slot, count: int, pace: float) -> Cpu:
    """The worker's CPU and time over `count` telegrams."""
    before = await slot.worker.cpu()
    await send_paced([slot.server], count, pace)
    await slot.worker.call("wait", count=before.handled + count, limit=60)
    spent: Cpu = await slot.worker.cpu() - before
    return spent


def per_telegram(spent: Cpu, count: int, idle: float) -> float:
    """CPU seconds per telegram of a window, less `idle` CPU seconds per second."""
    return (spent.cpu - idle * spent.t) / count


async def end_to_end(
    versions: list[str], count: int, pace: float, rounds: int, profile_dir: str | None
) -> dict[str, Any]:
    """Section 1b/1c: both integrations, default and all entities, interleaved windows."""
    meters = Meters()
    workers = dict(zip(IMPLS, await asyncio.gather(*(Worker.start(i) for i in IMPLS)), strict=True))
    try:
        slots: dict[tuple[str, str, str], Slot] = {}
        for seed, (version, mode) in enumerate(((v, m) for v in versions for m in MODES), start=1):
            for impl in IMPLS:  # the same meter (seed) for both: the same telegrams
                slots[version, mode, impl] = await add_slot(
                    workers[impl], meters, version, mode, seed
                )
        for slot in slots.values():  # warm up: caches, first-time code paths
            await window(slot, 20, pace)
        idles = {impl: [rate] for impl, rate in (await idle_rates(workers, 2.0)).items()}
        if profile_dir:
            for worker in workers.values():
                await worker.call("profile")
        for round_ in range(rounds):
            for version in versions:
                for mode in MODES:
                    order = IMPLS if round_ % 2 == 0 else IMPLS[::-1]
                    for impl in order:
                        slot = slots[version, mode, impl]
                        slot.windows.append(await window(slot, count, pace))
            for impl, rate in (await idle_rates(workers, 1.0)).items():
                idles[impl].append(rate)
        if profile_dir:
            for impl, worker in workers.items():
                await worker.call("profile", path=f"{profile_dir}/e2e-{impl}.prof")
        idle = {impl: statistics.median(rates) for impl, rates in idles.items()}
        result: dict[str, Any] = {
            "idle_ms_per_s": {impl: rate * 1e3 for impl, rate in idle.items()},
            "idle_samples_ms_per_s": {
                impl: [rate * 1e3 for rate in rates] for impl, rates in idles.items()
            },
            "slots": {},
        }
        for key, slot in slots.items():
            samples = [per_telegram(spent, count, idle[slot.worker.impl]) for spent in slot.windows]
            result["slots"]["/".join(key)] = {
                "us": statistics.median(samples) * 1e6,
                "samples_us": [sample * 1e6 for sample in samples],
                "entities": slot.entities,
            }
        return result
    finally:
        for worker in workers.values():
            await worker.stop()
        await meters.close()


def telegrams(version: str, count: int) -> list[str]:
    """The first `count` telegrams of the benchmark's meter, one second apart."""
    meter = Meter(version, seed=1)
    out = []
    for _ in range(count):
        meter.step(1.0)
        out.append(meter.telegram())
    return out


def fingerprint(version: str, count: int = 300) -> str:
    """The simulator's first `count` telegrams of `version` (seed 1), hashed: 12 hex digits.

    Two runs (of two checkouts, say) fed their meters the same telegrams only if their
    fingerprints match: the simulator is part of what a run measures.
    """
    return hashlib.sha256("".join(telegrams(version, count)).encode()).hexdigest()[:12]


def specification(version: str) -> Any:
    """dsmr_parser's telegram specification for a version token."""
    return version_setup(version)[0]


def readers(spec: Any) -> dict[str, Callable[[str], Any]]:
    """Each side's reading of one telegram's text: core's dsmr_parser parse, our reader's."""
    return {"dsmr_parser": TelegramParser(spec).parse, "ours": TelegramReader(spec).read}


def parse_alone(versions: list[str], count: int, rounds: int) -> dict[str, dict[str, float]]:
    """Section 1a: CPU per telegram of dsmr_parser's parse and of our reader's, interleaved."""
    results: dict[str, dict[str, float]] = {}
    for version in versions:
        data = telegrams(version, count + 10)
        parsers = readers(specification(version))
        samples: dict[str, list[float]] = {name: [] for name in parsers}
        for parse in parsers.values():
            for text in data[:10]:
                parse(text)
        for _ in range(rounds):
            for name, parse in parsers.items():
                gc.collect()
                started = time.process_time()
                for text in data[10:]:
                    parse(text)
                samples[name].append((time.process_time() - started) / count)
        results[version] = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
    return results


def soak(count: int) -> dict[str, dict[str, float]]:
    """Parse `count` DSMR 5 telegrams (with a power failure log) with each parser.

    dsmr_parser's `ProfileGenericParser._parse_values` appends to the parser's shared
    `value_formats` list on every parse of a non-empty power failure log; our reader reads that
    line with a parser of its own each time, so its specification's parser never grows.
    """
    data = telegrams("5", count)
    spec = specification("5")
    log_parsers = [
        obj["value_parser"]
        for obj in spec["objects"]
        if isinstance(obj["value_parser"], ProfileGenericParser)
    ]
    results: dict[str, dict[str, float]] = {}
    for name, parse in readers(spec).items():
        gc.collect()
        formats = sum(len(p.value_formats) for p in log_parsers)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for text in data:
            parse(text)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        results[name] = {
            "telegrams": count,
            "value_formats_added": sum(len(p.value_formats) for p in log_parsers) - formats,
            "retained_kib": grown / 1024,
        }
    return results
