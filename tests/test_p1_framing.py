"""Frames out of a byte stream (p1/framing.py), against dsmr_parser's own buffers.

`Framer` cuts the plain telegrams dsmr_parser's `TelegramBuffer` finds in the whole stream,
`EncryptedFramer` the frames of its `EncryptedTelegramBuffer`, and `RfxtrxUnwrapper` hands on
the P1 bytes its RFXtrx protocol unwraps, whatever the reads. Unlike them, a frame longer than
MAX_FRAME is dropped as it comes (never held), and each byte costs a bounded number of steps.
"""

from __future__ import annotations

import random
import time
import tracemalloc

from dsmr_parser.clients.protocol import DSMRProtocol
from dsmr_parser.clients.rfxtrx_protocol import RFXtrxDSMRProtocol
from dsmr_parser.clients.telegram_buffer import EncryptedTelegramBuffer, TelegramBuffer
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.dsmr.p1.framing import (
    DLMS_TAG,
    MAX_FRAME,
    EncryptedFramer,
    Framer,
    RfxtrxUnwrapper,
)
from custom_components.dsmr.p1.telegram import crc16
from dsmr_sim.meter import Meter

from .field_corpus import CORPUS

KEY = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
BIG = 250_000  # bytes of a frame no meter sends


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance here: these are plain framing tests."""


def padded(meter: Meter, size: int) -> str:
    """The meter's next telegram, with text message lines added to `size` bytes (a good CRC)."""
    meter.step(1)
    text = meter.telegram()
    line = "0-0:96.13.0(" + "41" * 12 + ")\r\n"
    body = text[: text.rindex("!")] + line * ((size - len(text)) // len(line) + 1) + "!"
    return f"{body}{crc16(body.encode()):04X}\r\n"


def in_reads(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` in reads of the sizes `cuts` (the rest in one)."""
    reads, at = [], 0
    for cut in [*cuts, len(data)]:
        reads.append(data[at : at + cut])
        at += cut
    return [read for read in reads if read]


# --- the frames dsmr_parser finds ----------------------------------------------------------

GOOD = Meter("5", seed=79).telegram().encode()
PIECE = st.one_of(
    st.just(GOOD),
    st.just(GOOD[:-9] + b"!\x00\r\n"),  # a frame without CRC, NUL before the line end
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"/", b"!", b"A", b"0", b"\x00", b"\r", b"\n", b"x", b"\r\n"])).map(
        b"".join
    ),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(pieces=st.lists(PIECE, max_size=8), cuts=st.lists(st.integers(1, 300), max_size=10))
def test_frames_are_cut_as_telegram_buffer_cuts_them(pieces: list[bytes], cuts: list[int]) -> None:
    """Whatever the reads: the telegrams TelegramBuffer finds, in order; the rest is dropped."""
    stream = b"".join(pieces)
    framer, buffer = Framer(), TelegramBuffer()
    ours: list[bytes] = []
    theirs: list[bytes] = []
    for read in in_reads(stream, cuts):
        ours += framer.feed(read)
        buffer.append(read.decode("latin-1"))  # as dsmr_parser's protocol decodes
        theirs += [telegram.encode("latin-1") for telegram in buffer.get_all()]
    assert ours == theirs
    dropped, oversized = framer.take_dropped()
    assert oversized == 0
    assert dropped + sum(map(len, ours)) + len(framer.buffer) == len(stream)


def encrypted_stream(rng: random.Random, meter: Meter) -> tuple[bytes, list[bytes]]:
    """Frames of `meter` with noise between them (a stray tag among it), and the frames."""
    frames, parts = [], []
    for _ in range(rng.randint(1, 5)):
        meter.step(1)
        frame = meter.payload()
        frames.append(frame)
        noise = rng.randbytes(rng.randint(0, 30)).replace(bytes([DLMS_TAG]), b"")
        if rng.random() < 0.3:
            noise += bytes([DLMS_TAG, 0x08]) + rng.randbytes(8) + b"\x30"  # a tag, no frame
        parts += [noise, frame]
    return b"".join(parts), frames


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("version", ["MSn", "SAGEMCOM_T210_D_R"])
def test_encrypted_frames_are_cut_as_dsmr_parser_cuts_them(version: str, seed: int) -> None:
    rng = random.Random(seed)
    meter = Meter(version, seed=seed, key=KEY)
    stream, _ = encrypted_stream(rng, meter)
    framer, buffer = EncryptedFramer(), EncryptedTelegramBuffer()
    ours: list[bytes] = []
    theirs: list[bytes] = []
    for read in in_reads(stream, [rng.randint(1, 300) for _ in range(40)]):
        ours += framer.feed(read)
        buffer.append(read)
        theirs += [bytes.fromhex(frame) for frame in buffer.get_all()]
    assert ours == theirs
    assert ours  # (the noise may swallow a frame, as it does for dsmr_parser)


def test_the_recorded_encrypted_frame_is_cut_whole() -> None:
    (recording,) = (r for r in CORPUS if r.name.endswith("encrypted.hex"))
    frame = recording.frame
    framer = EncryptedFramer()
    stream = b"noise\x00" + frame + frame[:20]
    found: list[bytes] = []
    for start in range(0, len(stream), 7):
        found += framer.feed(stream[start : start + 7])
    assert found == [frame]
    assert framer.feed(frame[20:]) == [frame]


def rfxtrx_packets(data: bytes, rng: random.Random) -> bytes:
    """P1 bytes in RFXtrx packets of random sizes, with other packets between them."""
    packets = []
    at = 0
    while at < len(data):
        chunk = data[at : at + rng.randint(1, 200)]
        packets.append(bytes([len(chunk) + 3, 0x62, 0x01, rng.randrange(256)]) + chunk)
        if rng.random() < 0.3:
            other = rng.randbytes(rng.randint(0, 20))
            packets.append(bytes([len(other) + 3, 0x20, 0x01, 0]) + other)
        at += len(chunk)
    return b"".join(packets)


@pytest.mark.parametrize("seed", range(20))
def test_rfxtrx_unwraps_as_dsmr_parser_does(seed: int) -> None:
    """The P1 bytes handed on are dsmr_parser's, whatever the reads."""
    rng = random.Random(seed)
    stream = rfxtrx_packets(GOOD * 3, rng)
    unwrapper = RfxtrxUnwrapper()
    handed: list[bytes] = []
    theirs: list[bytes] = []

    class Library(RFXtrxDSMRProtocol):  # type: ignore[misc]
        def __init__(self) -> None:
            self.remaining_data = b""

    library = Library()
    at = 0
    with pytest.MonkeyPatch.context() as patch:  # what dsmr_parser's unwrapping hands on
        patch.setattr(DSMRProtocol, "data_received", lambda _, data: theirs.append(data))
        while at < len(stream):
            cut = rng.randint(1, 700)
            handed.append(unwrapper.feed(stream[at : at + cut]))
            library.data_received(stream[at : at + cut])
            at += cut
    assert b"".join(handed) == b"".join(theirs) == GOOD * 3
    assert unwrapper.scraps == 0


# --- a frame over the bound is dropped, however it arrives -----------------------------------


@pytest.mark.parametrize("read", [None, 4096, 16])
def test_an_oversized_frame_in_any_reads(read: int | None) -> None:
    """A valid-looking 250 KB telegram (good CRC) between two good ones: dropped, counted.

    All at once (one read), 4 KiB, 16 bytes: the same.
    """
    meter = Meter("5", seed=72)
    first, big, last = meter.telegram(), padded(meter, BIG), padded(meter, 0)
    data = (first + big + last).encode()
    framer = Framer()
    step = read or len(data)
    frames: list[bytes] = []
    for at in range(0, len(data), step):
        frames += framer.feed(data[at : at + step])
    assert frames == [first.encode(), last.encode()]
    assert framer.take_dropped() == (len(big), 1)
    assert len(framer.buffer) == 0


def test_an_oversized_encrypted_frame_is_not_buffered() -> None:
    """Its announced length is enough: the bytes that follow are dropped as they come.

    (dsmr_parser's buffer held all of it: 34.5 KB held after 30 KB fed; here under 4 KB.)
    """
    meter = Meter("MSn", seed=74, key=KEY)
    big = meter.wrap(padded(meter, 60_000))
    assert MAX_FRAME < len(big) < 65_536
    meter.step(1)
    frame = meter.payload()
    framer = EncryptedFramer()
    assert framer.feed(big + frame) == [frame]  # at once: as any other
    assert framer.take_dropped() == (len(big), 1)
    chunks = [big[at : at + 1024] for at in range(0, 30 * 1024, 1024)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in chunks:
            assert framer.feed(chunk) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 4 * 1024, held
    assert framer.feed(big[30 * 1024 :]) == []  # the rest of it
    meter.step(1)
    frame = meter.payload()
    assert framer.feed(frame) == [frame]
    assert framer.take_dropped() == (len(big), 1)


# --- each byte a bounded number of steps ------------------------------------------------------

# One '/', then "a!" to 8 KiB: a telegram seems to begin, and every other byte may end it.
BANGS = b"/" + b"a!" * 4095 + b"a"


@pytest.mark.parametrize("pattern", [BANGS, b"/" + b"a!" * 12_000])
def test_framing_cost_does_not_depend_on_end_markers(pattern: bytes) -> None:
    """512 KiB in 16-byte reads: '!' costs little (0.03 s against 0.02 s; once 2.6-3.7 s)."""
    stream = pattern * (512 * 1024 // len(pattern) + 1)

    def cost(data: bytes) -> float:
        framer = Framer()
        reads = [data[at : at + 16] for at in range(0, len(data), 16)]
        started = time.thread_time()
        for read in reads:
            assert not framer.feed(read)
        took = time.thread_time() - started
        assert framer.take_dropped()[0] + len(framer.buffer) == len(data)
        return took

    plain = min(cost(stream.replace(b"!", b"?")) for _ in range(2))
    bangs = min(cost(stream) for _ in range(2))
    print(f"512 KiB in 16-byte reads: with '!' {bangs:.3f} s, without {plain:.3f} s")
    assert bangs < 2 * plain + 0.02


def test_rfxtrx_unwrapping_is_linear() -> None:
    """256 KiB of zeros (a quarter million empty packets) in one read: 0.02 s (once 0.68 s)."""
    unwrapper = RfxtrxUnwrapper()
    zeros = bytes(256 * 1024)
    started = time.thread_time()
    assert unwrapper.feed(zeros) == b""
    took = time.thread_time() - started
    print(f"RFXtrx, 256 KiB of zeros: {took:.3f} s")
    assert took < 0.1
    assert unwrapper.scraps == len(zeros)
