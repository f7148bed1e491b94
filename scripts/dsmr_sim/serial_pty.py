"""A real pseudo-terminal that behaves like a P1 cable plugged into the machine.

The slave side (``/dev/pts/N``) gets the version's serial settings (9600 7E1, 115200 7E1 or
115200 8N1, as in ``dsmr_parser.clients.settings``) and can be opened by any serial client,
e.g. ``dsmr_parser.clients.protocol.create_dsmr_reader(path, version, callback)``. An optional
stable symlink (like ``/dev/serial/by-id/...``) always points at the current slave.

The server keeps its own descriptor of the slave open, so clients may come and go without the
pty hanging up. Data nobody reads does not pile up: before each telegram, input that has sat
unread for ``stale_after`` seconds is flushed, as a real line simply loses it.
"""

from __future__ import annotations

import array
import asyncio
from collections.abc import Callable
import contextlib
from datetime import datetime
import fcntl
import logging
import os
from pathlib import Path
import select
import termios
import tty

from .faults import Faults
from .meter import Meter
from .server import BaseServer
from .versions import SerialSettings

__all__ = ["PtyServer", "configure_tty", "read_tty_settings"]

_LOGGER = logging.getLogger(__name__)


def configure_tty(fd: int, serial: SerialSettings) -> None:
    """Put ``fd`` in raw mode with the baud rate and framing of ``serial``."""
    attrs = termios.tcgetattr(fd)
    tty.cfmakeraw(attrs)
    cflag = attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= termios.CREAD | termios.CLOCAL
    cflag |= termios.CS7 if serial.bytesize == 7 else termios.CS8
    if serial.parity == "E":
        cflag |= termios.PARENB
    attrs[2] = cflag
    attrs[4] = attrs[5] = getattr(termios, f"B{serial.baudrate}")
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


_SPEEDS = {
    getattr(termios, f"B{b}"): b
    for b in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
}


def read_tty_settings(fd: int) -> SerialSettings:
    """Read back the baud rate and framing of a tty."""
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2]
    bytesize = {termios.CS7: 7, termios.CS8: 8}.get(cflag & termios.CSIZE, 0)
    parity = ("O" if cflag & termios.PARODD else "E") if cflag & termios.PARENB else "N"
    return SerialSettings(
        _SPEEDS.get(attrs[4], 0), bytesize, parity, 2 if cflag & termios.CSTOPB else 1
    )


class PtyServer(BaseServer):
    """Serves telegrams on a pseudo-terminal; :attr:`port` is what a client should open."""

    def __init__(
        self,
        meter: Meter,
        *,
        link: str | os.PathLike[str] | None = None,
        interval: float | None = None,
        step_seconds: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], datetime] | None = None,
        stale_after: float = 2.0,
        replug_delay: float = 0.2,
    ) -> None:
        """Configure the server; :meth:`start` opens the pty (and creates ``link``)."""
        super().__init__(
            meter, interval=interval, step_seconds=step_seconds, faults=faults, clock=clock
        )
        self.link: str | None = os.fspath(link) if link is not None else None
        self.stale_after = stale_after
        self.replug_delay = replug_delay
        #: The slave path (``/dev/pts/N``) while plugged in, else ``None``.
        self.path: str | None = None
        #: How often the device was replugged, bytes dropped, and stale backlogs flushed.
        self.replugs = 0
        self.bytes_dropped = 0
        self.flushes = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._pending_since = 0.0

    @property
    def port(self) -> str:
        """The device a client should open: the symlink if there is one, else the slave."""
        if self.link is not None:
            return self.link
        if self.path is None:
            raise RuntimeError("the pty is not plugged in")
        return self.path

    @property
    def endpoint(self) -> str:
        """Same as :attr:`port`."""
        return self.port

    @property
    def plugged(self) -> bool:
        """Whether the device exists right now."""
        return self._master is not None

    def serial_settings(self) -> SerialSettings:
        """The slave's current baud rate and framing, read back from the tty."""
        if self._slave is None:
            raise RuntimeError("the pty is not plugged in")
        return read_tty_settings(self._slave)

    # --- plugging -------------------------------------------------------------------------

    async def _open(self) -> None:
        self._plug()

    async def _close(self) -> None:
        self._unplug()

    def _plug(self) -> None:
        master, slave = os.openpty()
        try:
            configure_tty(slave, self.meter.info.serial)
            os.set_blocking(master, False)
            path = os.ttyname(slave)
            if self.link is not None:
                self._point_link(path)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave, self.path = master, slave, path
        self._pending_since = asyncio.get_running_loop().time()
        asyncio.get_running_loop().add_reader(master, self._discard_input)
        _LOGGER.debug("dsmr_sim pty at %s (link %s)", path, self.link)

    def _point_link(self, target: str) -> None:
        assert self.link is not None
        link = Path(self.link)
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)

    def _unplug(self) -> None:
        master, slave, path = self._master, self._slave, self.path
        self._master = self._slave = self.path = None
        if master is not None:
            asyncio.get_running_loop().remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)
        if self.link is not None and path is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == path:
                    os.unlink(self.link)

    async def unplug(self) -> None:
        """Pull the cable: the pty (and the symlink) vanish, readers lose the connection."""
        async with self._lock:
            self._unplug()

    async def replug(self) -> None:
        """Plug the cable back in: a new pty, the symlink re-pointed at it."""
        async with self._lock:
            if self._master is None and self.running:
                self._plug()
                self.replugs += 1

    async def _drop(self) -> None:
        self._unplug()
        await asyncio.sleep(self.replug_delay)
        if self.running and self._master is None:
            self._plug()
            self.replugs += 1

    # --- data -----------------------------------------------------------------------------

    def _discard_input(self) -> None:
        """Whatever a client writes to the meter is read and ignored."""
        if self._master is None:
            return
        with contextlib.suppress(OSError):
            os.read(self._master, 4096)

    def pending(self) -> int:
        """Bytes waiting unread in the slave's input queue."""
        if self._slave is None:
            return 0
        # What is written to the master reaches the slave's queue through a kernel work item,
        # later on a busy machine: TIOCINQ may not count it yet. poll() on the slave finishes
        # that work when the queue looks empty (n_tty_poll), so an empty queue is really empty.
        select.select([self._slave], [], [], 0)
        buf = array.array("i", [0])
        fcntl.ioctl(self._slave, termios.TIOCINQ, buf, True)
        return buf[0]

    def _flush(self) -> None:
        if self._slave is not None:
            termios.tcflush(self._slave, termios.TCIFLUSH)
            self.flushes += 1

    def _can_write(self) -> bool:
        return self._master is not None

    def _write(self, data: bytes, *, first: bool) -> None:
        assert self._master is not None
        now = asyncio.get_running_loop().time()
        if first:
            if self.pending() == 0:
                self._pending_since = now
            elif now - self._pending_since >= self.stale_after:
                self._flush()  # nobody has been reading: the line loses the old data
                self._pending_since = now
        view = memoryview(data)
        flushed = False
        while view:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                if flushed:
                    self.bytes_dropped += len(view)
                    return
                self._flush()
                flushed = True
            except OSError:
                self.bytes_dropped += len(view)
                return
