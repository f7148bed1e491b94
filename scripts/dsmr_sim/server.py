"""What the TCP and pty servers share: the telegram clock, fault handling and counters."""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Callable
import contextlib
from datetime import datetime
import logging
import random

from .faults import Faults, corrupt_crc, garbage_bytes
from .meter import Meter
from .templates import Rendered

__all__ = ["BaseServer"]

_LOGGER = logging.getLogger(__name__)


class BaseServer(ABC):
    """Sends the meter's telegrams to whoever listens, on a timer or on demand.

    With ``interval`` (seconds, float) the server sends a telegram every interval once
    started; with ``interval=None`` it is in manual mode and sends only when
    :meth:`send_telegram` is awaited. Each telegram first advances the meter by
    ``step_seconds`` of simulated time (default: the interval, or the version's nominal
    interval in manual mode); with ``clock`` (a function returning the time as an aware
    datetime, e.g. the wall clock) it advances the meter to that time instead, so the meter's
    clock stays on it however late each telegram is.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        interval: float | None = None,
        step_seconds: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Bind the server to ``meter``; nothing is opened before :meth:`start`."""
        if interval is not None and interval <= 0:
            raise ValueError("interval must be > 0 (or None for manual mode)")
        self.meter = meter
        self.interval = interval
        self.step_seconds = step_seconds or interval or meter.info.nominal_interval
        self.clock = clock
        self.faults = faults or Faults()
        #: Telegrams written to the line (stalled or unplugged ones are not counted).
        self.telegrams_sent = 0
        #: Telegrams generated, whether or not anything was written.
        self.telegrams_generated = 0
        #: The last telegram generated and the values it carries.
        self.last_rendered: Rendered | None = None
        #: The bytes last written for a telegram (faults included); b"" when nothing was.
        self.last_payload = b""
        self._rng = random.Random(meter.seed ^ 0x5EED)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._started = False
        self._sent_event = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._started

    async def start(self) -> None:
        """Open the endpoint and, in automatic mode, start the telegram clock (idempotent)."""
        if self._started:
            return
        await self._open()
        self._started = True
        if self.interval is not None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"dsmr_sim {type(self).__name__}"
            )

    async def stop(self) -> None:
        """Stop the clock and close everything (idempotent); leaves no task, timer or fd."""
        if not self._started:
            return
        self._started = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            await self._close()

    async def __aenter__(self) -> BaseServer:
        """Start on entering ``async with``."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop on leaving ``async with``."""
        await self.stop()

    async def _run(self) -> None:
        assert self.interval is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += self.interval
            await asyncio.sleep(max(deadline - loop.time(), 0))
            try:
                await self.send_telegram()
            except OSError:
                _LOGGER.exception("sending a telegram failed")

    # --- sending --------------------------------------------------------------------------

    async def send_telegram(self) -> bytes:
        """Advance the meter one step and send one telegram now; return the bytes written."""
        async with self._lock:
            if self.clock is not None:
                self.meter.step_to(self.clock())
            else:
                self.meter.step(self.step_seconds)
            rendered = self.meter.render()
            self.last_rendered = rendered
            self.telegrams_generated += 1
            written = await self._send(self._apply_faults(rendered.text))
            _LOGGER.debug(
                "telegram %d (%d bytes written)\n%s",
                self.telegrams_generated,
                len(written),
                rendered.text,
            )
            drop = self.faults.drop_every
            if drop and self.telegrams_generated % drop == 0:
                await self._drop()
            return written

    async def repeat_telegram(self) -> bytes:
        """Send the last telegram's bytes again; the meter does not advance.

        For a test that keeps a line busy until a reader listens (as a config flow's
        validation does): however many times it takes, the meter's state is the same.
        Sends a new telegram when none was sent yet.
        """
        if not self.last_payload:
            return await self.send_telegram()
        async with self._lock:
            return await self._send(self.last_payload)

    async def _send(self, payload: bytes) -> bytes:
        written = b""
        if payload and self._can_write():
            await self._emit(payload)
            written = payload
            self.telegrams_sent += 1
            self._sent_event.set()
        self.last_payload = written
        return written

    def _apply_faults(self, text: str) -> bytes:
        faults = self.faults
        if faults.stall:
            return b""
        hit = faults.applies_to(self.telegrams_generated)
        if hit and faults.bad_crc:
            text = corrupt_crc(text)
        data = self.meter.wrap(text)
        if hit and faults.truncate:
            data = data[: max(len(data) * 2 // 3, 1)]
        if hit and faults.duplicate:
            data += data
        if hit and faults.garbage:
            data = garbage_bytes(self._rng, self._rng.randint(8, 40)) + data
        return data

    async def _emit(self, data: bytes) -> None:
        faults = self.faults
        if not faults.drip:
            self._write(data, first=True)
            return
        size = max(faults.drip_size, 1)
        loop = asyncio.get_running_loop()
        due = loop.time()
        offset = 0
        while offset < len(data):
            if offset:
                await asyncio.sleep(max(due - loop.time(), 0))
            if not self._can_write():
                return
            # By the clock, not sleep after sleep: the pace is exactly the one asked for (e.g. a
            # line's byte rate). A line goes on delivering while this process waits for a CPU:
            # a late wake-up sends every piece whose time has come, at once.
            end = offset + size
            due += faults.drip_delay
            while end < len(data) and due <= loop.time():
                end += size
                due += faults.drip_delay
            self._write(data[offset:end], first=offset == 0)
            offset = end

    async def wait_sent(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until at least ``count`` telegrams have been sent in total."""
        async with asyncio.timeout(timeout):
            while self.telegrams_sent < count:
                self._sent_event.clear()
                await self._sent_event.wait()

    # --- transport hooks ------------------------------------------------------------------

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """What a client opens: ``socket://host:port`` (TCP) or the device path (pty)."""

    @abstractmethod
    async def _open(self) -> None:
        """Open the endpoint."""

    @abstractmethod
    async def _close(self) -> None:
        """Close the endpoint and every connection."""

    @abstractmethod
    def _can_write(self) -> bool:
        """Whether there is a line to write to (an unplugged pty has none)."""

    @abstractmethod
    def _write(self, data: bytes, *, first: bool) -> None:
        """Write bytes to every listener; ``first`` marks the start of a telegram."""

    @abstractmethod
    async def _drop(self) -> None:
        """The ``drop`` fault: drop connections (TCP) or unplug and replug (pty)."""
