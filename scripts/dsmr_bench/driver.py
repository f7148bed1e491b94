"""The parent's side: worker processes, simulated meters that feed them, CPU accounting."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
import json
import os
from pathlib import Path
import sys
import time
from typing import Any, Self

from dsmr_parser.parsers import TelegramParser

from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.server import BaseServer
from dsmr_sim.tcp import TcpServer

TOP = Path(__file__).resolve().parents[2]
PYTHONPATH = os.pathsep.join([str(TOP), str(TOP / "scripts")])


class WorkerError(RuntimeError):
    """A worker failed a command or died."""


class Worker:
    """A `python -m dsmr_bench.worker` subprocess with one Home Assistant (ours or core)."""

    def __init__(self, impl: str, proc: asyncio.subprocess.Process) -> None:
        """Wrap a started process; use `Worker.start`."""
        self.impl = impl
        self.proc = proc

    @property
    def ours(self) -> bool:
        """Whether this worker runs our integration."""
        return self.impl == "ours"

    @classmethod
    async def start(cls, impl: str, *options: str) -> Self:
        """Start a worker (`options`: its command-line flags) and wait until it is up."""
        env = {**os.environ, "PYTHONPATH": PYTHONPATH}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dsmr_bench.worker",
            impl,
            *options,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=TOP,
            limit=64 * 1024 * 1024,
        )
        worker = cls(impl, proc)
        await worker._read(within=120)
        return worker

    async def _read(self, within: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        except TimeoutError:
            raise WorkerError(f"{self.impl} worker did not answer in {within:.0f} s") from None
        if not line:
            raise WorkerError(f"{self.impl} worker exited ({await self.proc.wait()})")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise WorkerError(f"{self.impl} worker: {message['error']}")
        return message

    async def call(self, cmd: str, within: float = 120.0, **args: Any) -> dict[str, Any]:
        """Run one command in the worker and return its reply (within `within` seconds)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._read(within)

    async def cpu(self) -> Cpu:
        """The worker's process CPU time now."""
        reply = await self.call("cpu")
        return Cpu(reply["cpu"], reply["t"], reply["handled"], reply["max_queue"])

    async def stop(self) -> None:
        """Ask the worker to quit; kill it if it does not."""
        if self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError, ConnectionError:
            self.proc.kill()
            await self.proc.wait()


@dataclass(frozen=True)
class Cpu:
    """A reading of a worker's CPU clock."""

    cpu: float  # process CPU seconds
    t: float  # time.monotonic() (system-wide, so comparable with the parent's)
    handled: int  # telegrams handled by the integration's protocol so far
    max_queue: int  # deepest coordinator queue seen since the previous reading

    def __sub__(self, other: Cpu) -> Cpu:
        """CPU seconds, elapsed seconds and telegrams between two readings."""
        return Cpu(
            self.cpu - other.cpu, self.t - other.t, self.handled - other.handled, self.max_queue
        )


@dataclass
class Meters:
    """Simulated meters serving one worker: TCP servers or ptys, all started and stopped here."""

    servers: list[BaseServer] = field(default_factory=list)

    async def tcp(
        self, version: str, seed: int = 1, start: datetime | None = None, **kwargs: Any
    ) -> TcpServer:
        """A started TCP meter (manual mode unless `interval` is given; its clock at `start`)."""
        server = TcpServer(Meter(version, seed=seed, start=start), **kwargs)
        await server.start()
        self.servers.append(server)
        return server

    async def pty(self, version: str, seed: int = 1, **kwargs: Any) -> PtyServer:
        """A started pty meter."""
        server = PtyServer(Meter(version, seed=seed), **kwargs)
        await server.start()
        self.servers.append(server)
        return server

    async def close(self) -> None:
        """Stop every meter."""
        for server in self.servers:
            await server.stop()
        self.servers.clear()


def entry_data(server: BaseServer) -> dict[str, Any]:
    """Entry data for a simulated meter, with the identifiers its config flow would store.

    Both integrations read the same keys (network meters as `host` + `port`, serial ones as
    `port`), so the same data sets up ours and core's.
    """
    version = server.meter.version
    data: dict[str, Any] = {"dsmr_version": version, "protocol": "dsmr_protocol"}
    if isinstance(server, TcpServer):
        data |= {"host": server.host, "port": server.port}
    else:
        data |= {"port": server.endpoint}
    from custom_components.dsmr.p1.telegram import gas_identifier, identifier, version_setup

    telegram = TelegramParser(version_setup(version)[0]).parse(server.meter.telegram())
    return data | {
        "serial_id": identifier(telegram, version),
        "serial_id_gas": gas_identifier(telegram, version),
    }


async def send_paced(servers: list[BaseServer], count: int, pace: float) -> None:
    """Send `count` telegrams from each server, one every `pace` seconds (round robin)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time()
    for _ in range(count):
        for server in servers:
            await server.send_telegram()
        deadline += pace
        await asyncio.sleep(max(0.0, deadline - loop.time()))


def now() -> float:
    """The monotonic clock the workers report in too."""
    return time.monotonic()
