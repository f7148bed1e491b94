"""10,000 mutated and random byte streams through the real protocol: nothing escapes.

Each example interleaves good DSMR 5 telegrams with random bytes and with telegrams that have
one byte changed, cuts the stream into random chunks and feeds them to P1Protocol exactly as
serialx would. No exception may escape, and exactly the good telegrams must come out, intact
and in order (a changed byte always breaks the CRC, or the framing, of its own telegram only).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dsmr_parser.clients.protocol import _create_dsmr_protocol
from dsmr_parser.objects import Telegram
from hypothesis import HealthCheck, given, settings, strategies as st

from custom_components.dsmr.reader import P1Protocol
from custom_components.dsmr.stats import ReaderStats
from dsmr_sim.meter import Meter

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
    i: _fingerprint(_create_dsmr_protocol("5", None, object)[0].args[1].parse(t.decode()))
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
        factory, _ = _create_dsmr_protocol(
            "5", received.append, P1Protocol, loop, stats=ReaderStats(), watchdog_timeout=60
        )
        protocol = factory()
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
