"""Command line: serve a simulated meter over TCP and/or a pty until SIGINT or SIGTERM.

Every endpoint is announced on stdout, one line each, flushed, so scripts can parse them:
``TCP 127.0.0.1:2001``, ``PTY /dev/pts/5`` and ``LINK /path/to/symlink`` (a new ``PTY`` line
follows each replug). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
import logging
import os
from pathlib import Path
import signal
import sys
import zlib

from .faults import FAULT_NAMES, Faults
from .house import MBUS_KINDS
from .meter import Meter
from .replay import Replay
from .serial_pty import PtyServer
from .server import BaseServer
from .state import MeterState, StateError
from .tcp import TcpServer
from .versions import VERSIONS

__all__ = ["build_parser", "main", "make_meter", "parse_hostport", "serve"]

_LOGGER = logging.getLogger("dsmr_sim")
DEFAULT_TCP = ("127.0.0.1", 2001)


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0 = any free port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its ``--help`` is the CLI's documentation)."""
    versions = "\n".join(f"  {k:<18} {v.description}" for k, v in VERSIONS.items())
    parser = argparse.ArgumentParser(
        prog="python -m dsmr_sim",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Simulate a DSMR / P1 smart meter over TCP (like ser2net) and/or a pty.",
        epilog=f"versions:\n{versions}\n\nfaults: {', '.join(FAULT_NAMES)}\n"
        "stdout: one line per endpoint: 'TCP host:port', 'PTY /dev/pts/N', 'LINK path'.",
    )
    parser.add_argument(
        "--dsmr-version",
        default="5",
        choices=list(VERSIONS),
        metavar="VERSION",
        help="meter version, as Home Assistant names it (default: 5)",
    )
    parser.add_argument(
        "--tcp",
        type=parse_hostport,
        metavar="HOST:PORT",
        help="serve TCP on HOST:PORT (port 0: any free port); the default "
        "endpoint when neither --tcp nor --pty is given is 127.0.0.1:2001",
    )
    parser.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    parser.add_argument(
        "--link", metavar="PATH", help="keep a symlink at PATH pointing at the pty (implies --pty)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="seconds between telegrams (default: the version's, 1 or 10)",
    )
    parser.add_argument(
        "--step",
        type=float,
        metavar="SECONDS",
        help="simulated seconds per telegram (default: the interval; without --start and "
        "--step the meter's clock follows the wall clock)",
    )
    parser.add_argument(
        "--mbus",
        metavar="KINDS",
        help=f"comma-separated M-Bus devices on channels 1..4, of: "
        f"{', '.join(MBUS_KINDS)} (default: gas where the version has M-Bus; "
        "'' for none)",
    )
    parser.add_argument(
        "--replay",
        metavar="FILE",
        help="send the telegrams recorded in FILE (as captured from a real meter: plain text, "
        "raw DLMS frames, or those as hex in a .hex file) in turn, round and round, instead of "
        "a simulated house; --dsmr-version says how to read them, --key decrypts encrypted ones",
    )
    parser.add_argument(
        "--key", metavar="HEX", help="encryption key (32 hex digits) for MSn and SAGEMCOM_T210_D_R"
    )
    parser.add_argument(
        "--auth-key", metavar="HEX", help="authentication key (default: the public Luxmetering key)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="random seed of the house and of its identifiers (default: the TCP port, else a "
        "number made from --link, else 0; so instances on different ports are different meters)",
    )
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        metavar="ISO",
        help="simulated start time, local to the meter; the meter then keeps its own time "
        "(default: now, and the meter's clock follows the wall clock)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep the registers in FILE: read at start (the meter resumes where it stopped and "
        "catches up to now, at most a day), written after every telegram",
    )
    parser.add_argument("--timezone", metavar="TZ", help="meter time zone (default per version)")
    parser.add_argument("--equipment-id", metavar="TEXT", help="meter identifier (plain ASCII)")
    parser.add_argument(
        "--extra-line",
        action="append",
        default=[],
        metavar="LINE",
        help="send LINE (an OBIS code and its (value) groups, no specification names it) in "
        "every telegram, last before the '!' (repeatable), e.g. '1-0:3.8.0(000123.456*kvarh)'",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=FAULT_NAMES,
        metavar="NAME",
        help=f"switch a fault on (repeatable): {', '.join(FAULT_NAMES)}",
    )
    parser.add_argument(
        "--drop-every",
        type=int,
        default=5,
        metavar="N",
        help="with --fault drop: drop/replug after every N telegrams (default 5)",
    )
    parser.add_argument(
        "--drip-delay",
        type=float,
        default=0.001,
        metavar="SECONDS",
        help="with --fault drip: pause between bytes (default 0.001)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every telegram to stderr")
    return parser


def _announce(line: str) -> None:
    print(line, flush=True)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _seed(args: argparse.Namespace) -> int:
    """The seed: given, or made from the endpoint so that each instance is its own meter."""
    if args.seed is not None:
        return int(args.seed)
    if args.tcp is not None:
        return int(args.tcp[1])  # 0 (any free port) gives seed 0
    if args.link is not None:
        return zlib.crc32(os.path.abspath(args.link).encode())
    return 0 if args.pty else DEFAULT_TCP[1]


def _meter_factory(args: argparse.Namespace, now: datetime) -> Callable[[], Meter]:
    """What makes the meter: from the arguments, and from --state's file when there is one."""
    if args.state is not None and args.start is not None:
        raise ValueError("--state continues a meter where it stopped; it cannot take --start")
    if args.replay:
        path = args.replay
        return lambda: Replay.from_file(
            path, args.dsmr_version, key=args.key, auth_key=args.auth_key
        )
    mbus = None if args.mbus is None else tuple(k for k in args.mbus.split(",") if k)
    state = MeterState.load(args.state) if args.state is not None else None
    start = args.start
    if state is not None:
        start = MeterState.resume_at(state.saved_at, now) if args.step is None else state.saved_at
        _LOGGER.info("registers continue from %s (saved at %s)", args.state, state.saved_at)
    else:
        start = start or now

    def new_meter() -> Meter:
        meter = Meter(
            args.dsmr_version,
            seed=_seed(args),
            start=start,
            timezone=args.timezone,
            mbus=mbus,
            equipment_id=args.equipment_id,
            key=args.key,
            auth_key=args.auth_key,
            extra_lines=args.extra_line,
        )
        if state is not None:
            state.apply(meter.house)
        return meter

    return new_meter


def make_meter(args: argparse.Namespace) -> Meter:
    """The meter the arguments describe: a simulated house, or a recording (``--replay``)."""
    return _meter_factory(args, _wall_clock())()


async def serve(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set, for embedding and tests)."""
    live = args.start is None and args.step is None  # the meter's clock is the wall clock
    now = _wall_clock()
    new_meter = _meter_factory(args, now)
    # One meter per endpoint (same seed and steps, so both serve the same telegrams), unless
    # it follows the wall clock: then both endpoints share it.
    meter = new_meter()
    if args.state is not None:
        path: Path = args.state
        meter.on_step = lambda m: MeterState.of(m.house).save(path)
    if live:
        meter.step_to(now)  # after a restart: what the house used while the meter was off

    def new_faults() -> Faults:
        faults = Faults(drop_every_default=args.drop_every, drip_delay=args.drip_delay)
        for name in args.fault:
            faults.set(name)
        return faults

    interval = args.interval or meter.info.nominal_interval
    clock = _wall_clock if live else None
    servers: list[BaseServer] = []
    if args.tcp or not (args.pty or args.link):
        host, port = args.tcp or DEFAULT_TCP
        servers.append(
            TcpServer(
                meter,
                host,
                port,
                interval=interval,
                step_seconds=args.step,
                clock=clock,
                faults=new_faults(),
            )
        )
    if args.pty or args.link:
        servers.append(
            _AnnouncingPty(
                new_meter() if servers and not live else meter,
                link=args.link,
                interval=interval,
                step_seconds=args.step,
                clock=clock,
                faults=new_faults(),
            )
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for server in servers:
            await server.start()
            if isinstance(server, TcpServer):
                _announce(f"TCP {server.host}:{server.port}")
            elif isinstance(server, PtyServer):
                _announce(f"PTY {server.path}")
                if server.link:
                    _announce(f"LINK {server.link}")
        _LOGGER.info("serving DSMR %s (%s); Ctrl-C stops", meter.version, meter.info.description)
        await stop.wait()
    finally:
        for server in servers:
            await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


class _AnnouncingPty(PtyServer):
    """A pty server that prints the new slave path after every replug."""

    def _plug(self) -> None:
        super()._plug()
        if self.running:
            _announce(f"PTY {self.path}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:
        logging.getLogger("dsmr_sim").setLevel(logging.DEBUG)
    try:
        return asyncio.run(serve(args))
    except (ValueError, OSError, StateError) as err:
        print(f"dsmr_sim: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
