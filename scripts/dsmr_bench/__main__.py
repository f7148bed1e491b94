"""`python -m dsmr_bench [--quick] [--only SECTION ...] [--json FILE]`: run and print the table."""

from __future__ import annotations

import argparse
import asyncio
from importlib.metadata import version as package_version
import json
import logging
import os
from pathlib import Path
import platform
import sys
import time
from typing import Any

from . import cpu, dbgrowth, live, rebroadcast, report

SECTIONS = ("cpu", "soak", "pty", "writes", "scale", "setup", "recorder", "rebroadcast")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark this dsmr integration against Home Assistant core's, side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (about three minutes)")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run"
    )
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of the end-to-end runs to this folder"
    )
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    only = set(args.only)
    results: dict[str, Any] = {}
    versions = ["5", "5B"]
    if "cpu" in only:
        _say("CPU per telegram: parser alone")
        results["parse"] = cpu.parse_alone(versions, 300 if quick else 1000, 3 if quick else 5)
        _say("CPU per telegram: end to end, ours and core interleaved")
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        results["e2e"] = await cpu.end_to_end(
            versions,
            count=200 if quick else 400,
            pace=0.005,
            rounds=3 if quick else 5,
            profile_dir=str(args.profile) if args.profile else None,
        )
    if "soak" in only:
        _say("soak: dsmr_parser's power-failure-log leak")
        results["soak"] = cpu.soak(2000 if quick else 10000)
    if "pty" in only:
        # Alone: the writes section's 60 telegrams a second would heat the caches it measures.
        seconds = 20.0 if quick else 60.0
        replicas = 2 if quick else 3
        _say(f"real rate over a pty: {seconds:.0f} s, {replicas} Home Assistants per side")
        baseline = 5.0 if quick else 15.0
        results["pty"] = await live.real_rate(seconds, baseline, replicas)
    if "writes" in only:
        meter_seconds = 900 if quick else 3600
        _say(f"writes: {meter_seconds} s of meter time at 60x")
        results["writes"] = await live.writes(meter_seconds, 60.0)
    if "scale" in only:
        _say("scale: 1, 10, 50 meters at 1 Hz")
        results["scale"] = await live.scale([1, 10, 50], 8.0 if quick else 20.0)
    if "setup" in only:
        _say("setup latency: config flow")
        results["setup"] = await live.setup_latency(3 if quick else 6)
    if "recorder" in only:
        hours = 1 if quick else 3
        _say(f"recorder: database growth over {hours} h of meter time, four Home Assistants")
        results["recorder"] = await dbgrowth.growth(hours)
    if "rebroadcast" in only:
        _say("re-broadcast: CPU to publish a telegram to 0, 1 and 5 clients")
        results["rebroadcast"] = await rebroadcast.publish_cost(
            rounds=3 if quick else 5, bursts_per_window=60 if quick else 150
        )
    return results


def _header() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    # Runs compare only when their meters sent the same telegrams (see `cpu.fingerprint`).
    fingerprints = ", ".join(f"{v} {cpu.fingerprint(v)}" for v in ("5", "5B"))
    return (
        f"dsmr bench, {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs "
        f"({platform.machine()}), load {load}; Python {platform.python_version()}, "
        f"homeassistant {package_version('homeassistant')}, "
        f"dsmr-parser {package_version('dsmr-parser')}\n"
        f"Simulated meters: {fingerprints}\n"
        "CPU is process CPU time (all threads) of the Home Assistant process under test, idle "
        "CPU subtracted for per-telegram figures; 'core' = homeassistant.components.dsmr."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = _args(argv)
    started = time.monotonic()
    results = asyncio.run(_run(args))
    rows: list[report.Row] = []
    if "e2e" in results:
        rows += report.cpu_rows(results["parse"], results["e2e"])
    if "soak" in results:
        rows += report.soak_rows(results["soak"])
    rows += report.live_rows(
        results.get("pty"), results.get("writes"), results.get("scale"), results.get("setup")
    )
    if "recorder" in results:
        rows += report.recorder_rows(results["recorder"])
    if "rebroadcast" in results:
        rows += report.rebroadcast_rows(results["rebroadcast"])
    print(_header())
    print()
    print(report.table(rows))
    print(f"\n({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
