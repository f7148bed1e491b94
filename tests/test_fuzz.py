"""10,000 mutated and random byte streams through the real protocol: nothing escapes.

Each example interleaves good DSMR 5 telegrams with random bytes and with telegrams that have
one byte changed, cuts the stream into random chunks and feeds them to P1Protocol exactly as
serialx would. No exception may escape, and exactly the good telegrams must come out, intact
and in order (a changed byte always breaks the CRC, or the framing, of its own telegram only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.connection import Counters, P1Protocol
from custom_components.dsmr.const import DOMAIN
from custom_components.dsmr.p1.telegram import version_setup
from dsmr_sim.meter import Meter

from .helpers import RawBridge, wait_for
from .telegrams import MUTATION, mutate, recrc

METER = Meter("5", seed=21, mbus=("gas", "water"))
GOOD: list[bytes] = []
for _ in range(8):
    METER.step(1)
    GOOD.append(METER.telegram().encode())

segment = st.one_of(
    st.tuples(st.just("good"), st.integers(0, len(GOOD) - 1)),
    st.tuples(st.just("noise"), st.binary(min_size=1, max_size=300)),
    st.tuples(
        st.just("mutated"),
        st.integers(0, len(GOOD) - 1),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ),
)


def _fingerprint(telegram: Telegram) -> tuple[Any, ...]:
    return (
        telegram.P1_MESSAGE_TIMESTAMP.value,
        telegram.ELECTRICITY_USED_TARIFF_1.value,
        telegram.CURRENT_ELECTRICITY_USAGE.value,
        tuple(d.MBUS_METER_READING.value for d in telegram.MBUS_DEVICES),
    )


EXPECTED = {
    i: _fingerprint(TelegramParser(version_setup("5")[0]).parse(t.decode()))
    for i, t in enumerate(GOOD)
}


def _mutate(data: bytes, position: int, value: int) -> bytes:
    position %= len(data)
    if data[position] == value:
        value = (value + 1) % 256
    return data[:position] + bytes([value]) + data[position + 1 :]


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    segments=st.lists(segment, min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 400), max_size=12),
)
def test_streams(segments: list[tuple[Any, ...]], cuts: list[int]) -> None:
    loop = asyncio.new_event_loop()
    try:
        received: list[Telegram] = []

        async def opened() -> P1Protocol:  # (a protocol belongs to a running loop)
            return P1Protocol(
                "5", lambda telegram, _: received.append(telegram), Counters(), watchdog_timeout=60
            )

        protocol = loop.run_until_complete(opened())
        stream = b""
        wanted = []
        for kind, *args in segments:
            if kind == "good":
                stream += GOOD[args[0]]
                wanted.append(EXPECTED[args[0]])
            elif kind == "noise":
                stream += args[0]
            else:
                stream += _mutate(GOOD[args[0]], args[1], args[2])
        position = 0
        for cut in [*cuts, len(stream)]:
            protocol.data_received(stream[position : position + cut])
            position += cut
            if position >= len(stream):
                break
        assert [_fingerprint(t) for t in received] == wanted
    finally:
        loop.close()


# --- through the coordinator and the entities ---------------------------------------------
#
# Line-level mutations of real-shaped telegrams (changed characters, lines dropped, doubled,
# swapped, tricky lines inserted; with a CRC that fits, so they reach the entities, or not),
# noise between them, then a fresh good telegram: over a real TCP connection into a loaded
# entry. Whatever came before, the good telegram's values arrive, nothing is logged as an
# error and no exception escapes.

PIPELINE_EXAMPLES = 600
POWER = "sensor.electricity_meter_power_consumption"
VOLTAGE = "sensor.electricity_meter_voltage_phase_l1"
GAS = "sensor.gas_meter_gas_consumption"
LIVE = Meter("5", seed=21, mbus=("gas", "water"))  # METER, later: fresh telegrams
LIVE.step(3600)
TEXTS = [t.decode() for t in GOOD]

# Values real meters (and broken ones) put between the brackets of a line.
ODD_VALUES = ["", "*kW", "NaN", "sNaN", "Infinity", "-Infinity", "-0", "1e5", "1E+999999*kWh"]
ODD_VALUES += ["0x10", "000000.000*kWh", "999999.999*kWh", "-12.5*kW", "1.5*m3", "12*Wh"]


def odd_value(text: str, line: int, value: str) -> str:
    """Replace what one body line carries in its last brackets."""
    lines = text.split("\r\n")
    body = lines[1:-2]
    target = body[line % len(body)]
    if (start := target.rfind("(")) >= 0:
        body[line % len(body)] = f"{target[:start]}({value})"
    return "\r\n".join([lines[0], *body, *lines[-2:]])


LINE_MUTATION = st.one_of(
    MUTATION.map(lambda m: ("mutate", m)),
    st.tuples(st.just("odd"), st.tuples(st.integers(0, 200), st.sampled_from(ODD_VALUES))),
)

pipeline_segment = st.one_of(
    st.tuples(st.just("good"), st.integers(0, len(GOOD) - 1)),
    st.tuples(st.just("noise"), st.binary(min_size=1, max_size=200)),
    st.tuples(
        st.just("mutated"),
        st.integers(0, len(GOOD) - 1),
        st.lists(LINE_MUTATION, min_size=1, max_size=4),
        st.booleans(),
    ),
)


@pytest.fixture
async def pipeline(hass: HomeAssistant, servers: list[Any]) -> tuple[RawBridge, MockConfigEntry]:
    """A loaded entry reading a raw bridge; every entity enabled."""
    bridge = await RawBridge().start()
    servers.append(bridge)
    serial_id = LIVE.render().values["EQUIPMENT_IDENTIFIER"]
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={
            "host": "127.0.0.1",
            "port": bridge.port,
            "dsmr_version": "5",
            "protocol": "dsmr_protocol",
            "serial_id": serial_id,
            "serial_id_gas": None,
        },
        unique_id=serial_id,
        options={"time_between_update": 0},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: bridge.client_count == 1)
    await bridge.send(LIVE.telegram().encode())  # its M-Bus devices get their entities
    await wait_for(lambda: entry.runtime_data.coordinator.data is not None)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    for reg in er.async_entries_for_config_entry(registry, entry.entry_id):
        registry.async_update_entity(reg.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    return bridge, entry


@settings(max_examples=PIPELINE_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(segments=st.lists(pipeline_segment, min_size=1, max_size=5))
async def test_pipeline(
    hass: HomeAssistant,
    pipeline: tuple[RawBridge, MockConfigEntry],
    caplog: pytest.LogCaptureFixture,
    segments: list[tuple[Any, ...]],
) -> None:
    bridge, entry = pipeline
    coordinator = entry.runtime_data.coordinator
    stream = b""
    for kind, *args in segments:
        if kind == "good":
            stream += GOOD[args[0]]
        elif kind == "noise":
            stream += args[0]
        else:
            text = TEXTS[args[0]]
            for kind_of_change, change in args[1]:
                text = (
                    mutate(text, *change)
                    if kind_of_change == "mutate"
                    else odd_value(text, *change)
                )
            stream += (recrc(text) if args[2] else text).encode("latin-1", "replace")
    LIVE.step(1)
    sentinel = LIVE.render()
    stream += sentinel.text.encode()
    stamp = sentinel.values["P1_MESSAGE_TIMESTAMP"]
    await bridge.send(stream)
    # 5 s is a long time for one stream, but not on a machine running two test suites at once.
    await wait_for(
        lambda: coordinator.data is not None and coordinator.data.timestamp == stamp, timeout=30
    )
    await hass.async_block_till_done()
    assert float(hass.states.get(POWER).state) == float(
        sentinel.values["CURRENT_ELECTRICITY_USAGE"]
    )
    assert float(hass.states.get(VOLTAGE).state) == float(
        sentinel.values["INSTANTANEOUS_VOLTAGE_L1"]
    )
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage()[:300] for r in bad]
