"""Section: CPU to re-broadcast one telegram to 0, 1 and 5 TCP clients (issue 18).

`RebroadcastServer.publish` runs on the reader's path, once per telegram. Its cost is the
event loop thread's CPU time (user + system: `time.thread_time_ns`) inside `publish` only,
less the cost of reading that clock. Telegrams go out in bursts of `BURST`, one burst every
`pace` seconds: the first of a burst comes after a pause, as every telegram of a real meter
does (other work has run meanwhile: its code and the kernel's are out of the CPU caches), the
others right after it (warm). Both are reported. Servers with 0, 1 and 5 clients take turns,
window by window.

The clients are real sockets on loopback, read every 5 ms by a subprocess (`python -m
dsmr_bench.rebroadcast clients PORT N`), so their reading is not counted and a send does not
wake them. On loopback the kernel's send also delivers into the client's socket, which a send
to another machine does not: an upper bound for remote clients. At the end every client must
have received every byte.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import os
import socket
import statistics
import sys
import time
from typing import Any

from custom_components.dsmr.p1.rebroadcast import RebroadcastServer
from dsmr_sim.meter import Meter

from .driver import PYTHONPATH, TOP

LOOPBACK = "127.0.0.1"
BURST = 4  # telegrams published back to back
WARM_UP = 25  # bursts per server before measuring


def telegrams(count: int = 60) -> list[bytes]:
    """DSMR 5 telegrams of the benchmark's meter, one second apart, as on the line."""
    meter = Meter("5", seed=1)
    out = []
    for _ in range(count):
        meter.step(1.0)
        out.append(meter.payload())
    return out


def free_port() -> int:
    """A loopback TCP port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


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
    async def spawn(cls, port: int, count: int) -> Clients:
        """Start the process: it connects `count` clients (retrying until the port listens)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dsmr_bench.rebroadcast",
            "clients",
            str(port),
            str(count),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": PYTHONPATH},
            cwd=TOP,
        )
        return cls(proc)

    @classmethod
    async def start(cls, server: RebroadcastServer, count: int) -> Clients:
        """Connect `count` clients and wait until the server counts them."""
        changed = asyncio.Event()
        remove = server.add_listener(changed.set)
        clients = await cls.spawn(server.port, count)
        try:
            async with asyncio.timeout(30):
                while server.clients < count:
                    changed.clear()
                    await changed.wait()
        finally:
            remove()
        return clients

    async def received(self) -> list[int]:
        """Bytes each client received, once the server has closed them."""
        stdout, _ = await asyncio.wait_for(self.proc.communicate(), 30)
        return [int(n) for n in stdout.split()]


@dataclass
class Window:
    """CPU nanoseconds in `publish`, for first-of-burst (cold) and other (warm) telegrams."""

    cold: int = 0
    cold_count: int = 0
    warm: int = 0
    warm_count: int = 0
    deferred: int = 0  # telegrams some client's socket did not take at once


async def window(
    server: RebroadcastServer, frames: list[bytes], bursts: int, pace: float
) -> Window:
    """Publish `bursts` bursts of `BURST` telegrams, `pace` seconds apart; time each publish.

    A telegram the kernel does not take at once for some client is sent later, outside
    `publish`, which would make the figure too low: those are counted.
    """
    clock = time.thread_time_ns
    transports = list(server._serving.values())
    result = Window()
    index = 0
    for _ in range(bursts):
        for position in range(BURST):
            frame = frames[index % len(frames)]
            index += 1
            started = clock()
            server.publish(frame)
            spent = clock() - started
            if position:
                result.warm += spent
                result.warm_count += 1
            else:
                result.cold += spent
                result.cold_count += 1
            result.deferred += any(transport.get_write_buffer_size() for transport in transports)
        await asyncio.sleep(pace)
    return result


async def publish_cost(
    counts: tuple[int, ...] = (0, 1, 5), bursts_per_window: int = 150, rounds: int = 5
) -> dict[str, Any]:
    """Median CPU per published telegram, in microseconds, for each number of clients."""
    frames = telegrams()
    pace = 0.01  # 400 telegrams/s: a client process descheduled for a while is not dropped
    servers: dict[int, RebroadcastServer] = {}
    clients: dict[int, Clients] = {}
    deferred = 0
    cold: dict[int, list[float]] = {count: [] for count in counts}
    warm: dict[int, list[float]] = {count: [] for count in counts}
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
                result = await window(servers[count], frames, bursts_per_window, pace)
                deferred += result.deferred
                cold[count].append((result.cold / result.cold_count - overhead) / 1e3)
                warm[count].append((result.warm / result.warm_count - overhead) / 1e3)
    finally:
        for server in servers.values():
            await server.stop()

    def wire(bursts: int) -> int:
        return sum(len(frames[index % len(frames)]) for index in range(bursts * BURST))

    each = wire(WARM_UP) + rounds * wire(bursts_per_window)
    for count, proc in clients.items():
        if (got := await proc.received()) != [each] * count:
            dropped = servers[count].stats.dropped
            raise RuntimeError(
                f"{count} clients received {got} bytes, not {each} each ({dropped} dropped)"
            )
    return {
        "telegram_bytes": round(statistics.mean(map(len, frames))),
        "telegrams": rounds * bursts_per_window * BURST * len(counts),
        "clock_overhead_ns": overhead,
        "cold_us": {str(count): statistics.median(values) for count, values in cold.items()},
        "warm_us": {str(count): statistics.median(values) for count, values in warm.items()},
        "cold_samples_us": {str(count): values for count, values in cold.items()},
        "warm_samples_us": {str(count): values for count, values in warm.items()},
        "deferred": deferred,
        "dropped": sum(server.stats.dropped for server in servers.values()),
    }


def _connect(port: int, within: float = 60.0) -> socket.socket:
    """A connection to `port`, once something listens on it (a server may still be starting)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection((LOOPBACK, port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_clients(port: int, count: int) -> None:
    """Connect `count` sockets and read them every 5 ms until the server closes them.

    Reading by the clock rather than waiting on the sockets keeps the server's sends from waking
    this process each time: on loopback such a wake-up costs the sender more than the send
    itself, and a client on another machine costs the sender none.
    """
    socks = [_connect(port) for _ in range(count)]
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
