"""Sections 2-5: real-rate CPU over a pty, writes, scale, setup latency.

Ours and core always run at the same time here, each in its own worker with its own meters,
so that whatever else the machine does hits both alike.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
import random
import statistics
from typing import Any

from dsmr_sim.faults import Faults
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

from .cpu import IMPLS, prime
from .driver import Cpu, Meters, Worker, entry_data, now, send_paced
from .rebroadcast import Clients, free_port

POWER = "CURRENT_ELECTRICITY_USAGE"


async def _workers() -> dict[str, Worker]:
    started = await asyncio.gather(*(Worker.start(impl) for impl in IMPLS))
    return dict(zip(IMPLS, started, strict=True))


async def _stop(workers: dict[str, Worker], meters: Meters) -> None:
    await asyncio.gather(*(worker.stop() for worker in workers.values()))
    await meters.close()


# The pty section's settings: (entry options, how the meter's bytes reach the pty). Every
# telegram published or Home Assistant's defaults (no options: a 30 s update window for both
# integrations); each telegram written at once, or at the line's real speed in the pieces a USB
# serial adapter hands over (an FTDI cable: 62 bytes per USB packet, 115200 baud 8N1).
LINE_CHUNK = 62
LINE_RATE = 115200 / 10  # bytes per second
# And every telegram published with the meter shared (issue 18) to one client, a subprocess
# reading it every 5 ms: what sharing adds (core has no sharing; its row repeats its first).
SHARED = "every telegram, shared to 1 client"
REAL_RATE_SETTINGS: dict[str, tuple[dict[str, Any], bool]] = {
    "every telegram": ({"time_between_update": 0}, False),
    SHARED: ({"time_between_update": 0, "rebroadcast": True}, False),
    "defaults": ({}, False),
    "defaults, line rate": ({}, True),
}


async def real_rate(seconds: float, baseline: float, replicas: int) -> dict[str, Any]:
    """Section 2: CPU per second with a DSMR 5 meter sending 1 telegram/s over a real pty.

    At one telegram a second every telegram meets cold caches, and one Home Assistant process
    differs from the next by up to ±15 % here (memory layout, hash seeds, which CPU it wakes
    on). So `replicas` processes per integration and setting run at the same time, each with
    its own pty meter, and their mean is compared; the spread is reported alongside. Before the
    entries are added, each process's own idle CPU is measured for `baseline` seconds. Default
    entities; the first telegrams are left out.
    """
    meters = Meters()
    keys = [
        (setting, impl, replica)
        for setting in REAL_RATE_SETTINGS
        for impl in IMPLS
        for replica in range(replicas)
    ]
    started = await asyncio.gather(*(Worker.start(impl) for _, impl, _ in keys))
    workers = dict(zip(keys, started, strict=True))
    clients: list[Clients] = []
    try:
        before = {key: await worker.cpu() for key, worker in workers.items()}
        await asyncio.sleep(baseline)
        idle = {key: await worker.cpu() - before[key] for key, worker in workers.items()}
        for (setting, _, _), worker in workers.items():
            options, line_speed = REAL_RATE_SETTINGS[setting]
            faults = (
                Faults(drip=True, drip_size=LINE_CHUNK, drip_delay=LINE_CHUNK / LINE_RATE)
                if line_speed
                else None
            )
            server = await meters.pty("5", seed=11, interval=1.0, faults=faults)
            if setting == SHARED and worker.ours:
                options = {**options, "rebroadcast_port": free_port()}
                clients.append(await Clients.spawn(options["rebroadcast_port"], 1))
            await worker.call("add_entry", data=entry_data(server), options=options)
        await asyncio.sleep(3.0)
        before = {key: await worker.cpu() for key, worker in workers.items()}
        await asyncio.sleep(seconds)
        spent = {key: await worker.cpu() - before[key] for key, worker in workers.items()}
    finally:
        await asyncio.gather(*(worker.stop() for worker in workers.values()))
        await meters.close()
    # Each client got the telegrams (its server closed it when its Home Assistant stopped).
    served = [sum(await client.received()) for client in clients]
    if not all(served):
        raise RuntimeError(f"a re-broadcast client received nothing: {served}")
    result: dict[str, Any] = {}
    for setting in REAL_RATE_SETTINGS:
        result[setting] = {}
        for impl in IMPLS:
            runs = [(spent[key], idle[key]) for key in keys if key[:2] == (setting, impl)]
            per_process = [cpu.cpu / cpu.t * 1e3 for cpu, _ in runs]
            result[setting][impl] = {
                "ms_per_s": statistics.fmean(per_process),
                "per_process": per_process,
                "baseline_ms_per_s": statistics.fmean(i.cpu / i.t * 1e3 for _, i in runs),
                "telegrams": sum(cpu.handled for cpu, _ in runs),
                "seconds": statistics.fmean(cpu.t for cpu, _ in runs),
                "processes": len(runs),
            }
    return result


async def writes(meter_seconds: int, speedup: float) -> dict[str, Any]:
    """Section 3: state changes per hour and the published mean power, default settings.

    Meter time runs `speedup` times faster than the clock: a telegram every 1/speedup s, each
    one second of meter time later than the one before, and the update window (30 s by
    default) shrunk by the same factor, so both integrations see exactly what they would see
    in real time, only sooner. Published power is sampled just before each next telegram
    (what a dashboard shows during that meter second) and compared with the telegrams' own
    power.
    """
    meters, workers = Meters(), await _workers()
    pace = 1.0 / speedup
    options = {"time_between_update": 30.0 / speedup}
    try:
        servers: dict[str, TcpServer] = {}
        for impl, worker in workers.items():
            servers[impl] = await meters.tcp("5", seed=21, step_seconds=1.0)
            await worker.call("add_entry", data=entry_data(servers[impl]), options=options)
            await prime(worker, servers[impl], 3)
        # Two windows of meter time before counting: core creates its entities on the first
        # telegram its throttle lets through, and the first state of each is not a change.
        await send_paced(list(servers.values()), 2 * 30, pace)
        await asyncio.sleep(1.0)
        for worker in workers.values():
            await worker.call("watch")
        sent: list[tuple[float, float]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for _ in range(meter_seconds):
            for server in servers.values():
                await server.send_telegram()
            sent.append((now(), _power(servers["ours"])))
            deadline += pace
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        await asyncio.sleep(1.0)
        result: dict[str, Any] = {}
        true_mean = statistics.fmean(value for _, value in sent)
        for impl, worker in workers.items():
            watched = await worker.call("watch_result")
            published = _published_mean(sent, watched["power"], pace)
            result[impl] = {
                "changes_per_hour": watched["changes"] * 3600 / meter_seconds,
                "power_changes_per_hour": len(watched["power"]) * 3600 / meter_seconds,
                "published_mean_kw": published,
                "true_mean_kw": true_mean,
                "mean_error_pct": (published - true_mean) / true_mean * 100,
                "by_entity": watched["by_entity"],
            }
        return result
    finally:
        await _stop(workers, meters)


def _power(server: BaseServer) -> float:
    rendered = server.last_rendered
    assert rendered is not None
    value = rendered.values[POWER]
    assert isinstance(value, Decimal | float | int)
    return float(value)


def _published_mean(
    sent: list[tuple[float, float]], changes: list[tuple[float, float | None]], pace: float
) -> float:
    """Mean of the published power, sampled just before each next telegram."""
    samples: list[float] = []
    index, current = 0, None
    for sent_at, _ in sent:
        sample_at = sent_at + 0.95 * pace
        while index < len(changes) and changes[index][0] <= sample_at:
            current = changes[index][1]
            index += 1
        if current is not None:
            samples.append(current)
    return statistics.fmean(samples) if samples else float("nan")


async def scale(counts: list[int], seconds: float) -> dict[str, Any]:
    """Section 4: N meters at 1 telegram/s each in one Home Assistant (tbu 0, default entities).

    Meters are added to the running instance step by step (1, then up to 10, then up to 50),
    each with its own seed and a phase of its own. A backlog shows as fewer telegrams handled
    than sent over the window (`lag`; +-N at the window's edges is phase, not backlog), and
    (ours) as telegrams waiting in a coordinator's queue.
    """
    meters, workers = Meters(), await _workers()
    servers: dict[str, list[TcpServer]] = {impl: [] for impl in IMPLS}
    result: dict[str, Any] = {impl: {} for impl in IMPLS}
    try:
        for worker in workers.values():
            await worker.call("sample_queue", interval=0.1)
        for count in counts:
            await _grow(workers, meters, servers, count)
            await asyncio.sleep(3.0)
            before = {impl: await worker.cpu() for impl, worker in workers.items()}
            sent_before = {impl: _sent(servers[impl]) for impl in IMPLS}
            await asyncio.sleep(seconds)
            for impl, worker in workers.items():
                after = await worker.cpu()
                spent: Cpu = after - before[impl]
                sent = _sent(servers[impl]) - sent_before[impl]
                result[impl][count] = {
                    "core_pct": spent.cpu / spent.t * 100,
                    "sent": sent,
                    "handled": spent.handled,
                    "lag": sent - spent.handled,
                    "max_queue": spent.max_queue,
                }
        return result
    finally:
        await _stop(workers, meters)


async def _grow(
    workers: dict[str, Worker], meters: Meters, servers: dict[str, list[TcpServer]], count: int
) -> None:
    rng = random.Random(count)
    for impl, worker in workers.items():
        while len(servers[impl]) < count:
            seed = 100 + len(servers[impl])
            server = await meters.tcp("5", seed=seed, interval=1.0)
            servers[impl].append(server)
            await worker.call(
                "add_entry", data=entry_data(server), options={"time_between_update": 0}
            )
            await asyncio.sleep(rng.random() / count)  # spread the meters' phases


def _sent(servers: list[TcpServer]) -> int:
    return sum(server.telegrams_sent for server in servers if server.client_count)


async def setup_latency(runs: int) -> dict[str, Any]:
    """Section 5: config-flow form submitted -> entry created (and -> first state, once).

    A DSMR 5 meter on TCP sends a telegram every second, as a real one does; the flow has to
    wait for one telegram to read the meter's identifiers. Entries get default options.
    """
    meters, workers = Meters(), await _workers()
    try:
        server = await meters.tcp("5", seed=31, interval=1.0)
        samples: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        first: dict[str, float] = {}
        rng = random.Random(5)
        for run in range(runs):
            order = IMPLS if run % 2 == 0 else IMPLS[::-1]
            for impl in order:
                timings = await workers[impl].call(
                    "flow",
                    host=server.host,
                    port=server.port,
                    version="5",
                    first_state=run == 0,
                    within=90,
                )
                samples[impl].append(timings["submit_to_entry"])
                if run == 0:
                    first[impl] = timings["entry_to_first_state"]
                await asyncio.sleep(rng.random())  # submit anywhere in the meter's second
        return {
            impl: {
                "submit_to_entry": {"median": statistics.median(s), "max": max(s)},
                "entry_to_first_state": first[impl],
                "runs": len(s),
            }
            for impl, s in samples.items()
        }
    finally:
        await _stop(workers, meters)
