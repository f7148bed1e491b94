"""The way of a telegram: the integration's modules a DSMR 5 telegram passes through.

At default options (a 30 s window), from its bytes arriving to its entities' states: traced
with `sys.setprofile` over real TCP, once the meter is settled (its sub-meters made, the first
publishes done). Timers that are no telegram's (the connection sensor's look) do not run.
"""

from __future__ import annotations

from pathlib import Path
import sys
from types import FrameType
from typing import Any

from homeassistant.core import HomeAssistant

from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter

PACKAGE = Path(__file__).resolve().parents[1] / "custom_components" / "dsmr"
THE_WAY = {
    "connection",  # bytes off the port, faults counted
    "p1/framing",  # frames out of the stream
    "p1/telegram",  # a frame read into dsmr_parser's Telegram
    "coordinator",  # the window, a publish per window
    "p1/snapshot",  # running figures; the snapshot
    "p1/flow_rate",  # the gas meter's flow, telegram by telegram
    "entity",  # value_fn(snapshot), written when it changed
    "policy",  # a register's rules
}


async def test_a_dsmr5_telegram_passes_through_eight_modules(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=3, mbus=("gas",)))
    await server.start()
    entry = await setup_meter(hass, server, {"time_between_update": 30})
    coordinator = entry.runtime_data.coordinator
    for _ in range(3):  # settled: sub-meters made, the first publishes done
        await send(entry, server, 2)
        coordinator._publish()  # what the update window's debouncer calls at its end
    seen: dict[str, set[str]] = {}

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(str(PACKAGE)):
            module = Path(name).relative_to(PACKAGE).with_suffix("").as_posix()
            seen.setdefault(module, set()).add(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        await send(entry, server, 3)  # inside the window
        coordinator._publish()  # the window's end: one publish
        await hass.async_block_till_done()
    finally:
        sys.setprofile(None)
    assert set(seen) == THE_WAY, seen
    assert "DsmrSensor._update" in seen["entity"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()
