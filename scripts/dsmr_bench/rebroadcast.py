"""Section: CPU to re-broadcast one telegram to 0, 1 and 5 TCP clients (issue 18).

`RebroadcastServer.publish` runs on the reader's path, once per telegram. Its cost is the
event loop thread's CPU time (user + system: `time.thread_time_ns`) inside `publish` only,
less the cost of reading that clock, per telegram. The clients are real sockets on loopback,
read every 5 ms by a subprocess (`python -m dsmr_bench.rebroadcast clients PORT N`), so their
reading is not counted; on loopback the kernel's send also delivers into the client's socket,
which a send to another machine does not. Telegrams go out `pace` seconds apart, each on its own; servers
with 0, 1 and 5 clients take turns, window by window. At the end every client must have
received every byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import sys
import time
from typing import Any

from custom_components.dsmr.rebroadcast import RebroadcastServer
from dsmr_sim.meter import Meter

from .driver import PYTHONPATH, TOP

LOOPBACK = "127.0.0.1"
WARM_UP = 100  # telegrams per server before measuring


def telegrams(count: int = 60) -> list[bytes]:
    """DSMR 5 telegrams of the benchmark's meter, one second apart, as on the line."""
    meter = Meter("5", seed=1)
    out = []
    for _ in range(count):
        meter.step(1.0)
        out.append(meter.payload())
    return out


def clock_cost(samples: int = 20000) -> float:
    """Nanoseconds that one `thread_time_ns()` pair costs with nothing between."""
    clock = time.thread_time_ns
    total = 0
    for _ in range(samples):
        started = clock()
        total += clock() - started
    return total / samples


class Clients:
    """A subprocess holding `count` connections to a server, reading and discarding."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        """Wrap a started process; use `Clients.start`."""
        self.proc = proc

    @classmethod
    async def start(cls, server: RebroadcastServer, count: int) -> Clients:
        """Connect `count` clients and wait until the server counts them."""
        changed = asyncio.Event()
        remove = server.add_listener(changed.set)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dsmr_bench.rebroadcast",
            "clients",
            str(server.port),
            str(count),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": PYTHONPATH},
            cwd=TOP,
        )
        try:
            async with asyncio.timeout(30):
                while server.clients < count:
                    changed.clear()
                    await changed.wait()
        finally:
            remove()
        return cls(proc)

    async def received(self) -> list[int]:
        """Bytes each client received, once the server has closed them."""
        stdout, _ = await asyncio.wait_for(self.proc.communicate(), 30)
        return [int(n) for n in stdout.split()]


async def window(
    server: RebroadcastServer, frames: list[bytes], count: int, pace: float
) -> tuple[int, int]:
    """Nanoseconds of CPU in `publish`, summed over `count` telegrams sent `pace` s apart, and
    how many of those telegrams the kernel did not take at once for some client (the rest is
    then sent later, outside `publish`, and the figure would be too low)."""
    clock = time.thread_time_ns
    transports = list(server._serving.values())
    spent = deferred = 0
    for index in range(count):
        frame = frames[index % len(frames)]
        started = clock()
        server.publish(frame)
        spent += clock() - started
        deferred += any(transport.get_write_buffer_size() for transport in transports)
        await asyncio.sleep(pace)
    return spent, deferred


async def publish_cost(
    counts: tuple[int, ...] = (0, 1, 5), telegrams_per_window: int = 500, rounds: int = 5
) -> dict[str, Any]:
    """Median CPU per published telegram, in microseconds, for each number of clients."""
    frames = telegrams()
    pace = 0.001
    servers: dict[int, RebroadcastServer] = {}
    clients: dict[int, Clients] = {}
    deferred = 0
    samples: dict[int, list[float]] = {count: [] for count in counts}
    try:
        for count in counts:
            servers[count] = server = RebroadcastServer(LOOPBACK, 0, max_clients=max(count, 1))
            await server.start()
            clients[count] = await Clients.start(server, count)
        overhead = clock_cost()
        for count in counts:  # warm up
            await window(servers[count], frames, WARM_UP, pace)
        for round_ in range(rounds):
            for count in counts if round_ % 2 == 0 else counts[::-1]:
                spent, late = await window(servers[count], frames, telegrams_per_window, pace)
                deferred += late
                samples[count].append((spent / telegrams_per_window - overhead) / 1e3)
    finally:
        for server in servers.values():
            await server.stop()

    def wire(count: int) -> int:
        return sum(len(frames[index % len(frames)]) for index in range(count))

    each = wire(WARM_UP) + rounds * wire(telegrams_per_window)
    for count, proc in clients.items():
        if (got := await proc.received()) != [each] * count:
            raise RuntimeError(f"{count} clients received {got} bytes, not {each} each")
    return {
        "telegram_bytes": round(statistics.mean(map(len, frames))),
        "telegrams_per_window": telegrams_per_window,
        "telegrams": rounds * telegrams_per_window * len(counts),
        "clock_overhead_ns": overhead,
        "us": {str(count): statistics.median(values) for count, values in samples.items()},
        "samples_us": {str(count): values for count, values in samples.items()},
        "deferred": deferred,
        "dropped": sum(server.stats.dropped for server in servers.values()),
    }


def run_clients(port: int, count: int) -> None:
    """Connect `count` sockets and read them every 5 ms until the server closes them.

    Reading by the clock rather than waiting on the sockets keeps the server's sends from waking
    this process each time: on loopback such a wake-up costs the sender more than the send
    itself, and a client on another machine costs the sender none.
    """
    socks = [socket.create_connection((LOOPBACK, port)) for _ in range(count)]
    received = [0] * count
    open_ = set(range(count))
    for sock in socks:
        sock.setblocking(False)
    while open_:
        time.sleep(0.005)
        for index in list(open_):
            with contextlib.suppress(BlockingIOError):
                while data := socks[index].recv(1 << 16):
                    received[index] += len(data)
                socks[index].close()  # b"": the server closed it
                open_.discard(index)
    print(" ".join(map(str, received)), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["clients"]:
        run_clients(int(sys.argv[2]), int(sys.argv[3]))
