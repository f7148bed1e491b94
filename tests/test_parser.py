"""The caching parser gives exactly what dsmr_parser's full parse gives.

Property tests over many telegrams: every version the simulator speaks, values evolving over
many steps (seconds to an hour, and unchanged telegrams), and mutated lines (changed, deleted,
duplicated, swapped, inserted, stray line feeds, lines that are nothing but an OBIS code),
with and without a recomputed CRC, with and without CRC validation. For every telegram the
caching parser (which lives across the whole sequence, so its cache is in play) and a full
`TelegramParser.parse` must return the same Telegram, down to every internal attribute, or
raise the same exception with the same message, and log the same records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
import logging
import re
from typing import Any

from dsmr_parser import telegram_specifications
from dsmr_parser.clients.protocol import _create_dsmr_protocol
from dsmr_parser.objects import DSMRObject, MbusDevice, Telegram
from dsmr_parser.parsers import CosemParser, ProfileGenericParser, TelegramParser
from dsmr_parser.value_types import timestamp
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.dsmr.counters import ReaderStats
from custom_components.dsmr.dsmr_library import caching_parser
from custom_components.dsmr.parser import (
    MAX_KEYS,
    PARSER_ATTRIBUTES,
    CachingTelegramParser,
    unknown_lines,
)
from custom_components.dsmr.protocol import P1Protocol
from custom_components.dsmr.values import parse_cosem, parse_timestamp
from dsmr_sim.crc import with_crc
from dsmr_sim.meter import Meter
from dsmr_sim.versions import VERSIONS

KEY = "00112233445566778899AABBCCDDEEFF"
ENCRYPTED = {token for token, info in VERSIONS.items() if info.encrypted}

# Lines that are hard to map: OBIS codes with nothing after them (their expression runs on into
# the next line), empty and odd values, extra M-Bus channels, power failure logs, a DSMR 2.2
# gas value line, stray text.
TRICKY_LINES = [
    "1-0:1.7.0",
    "1-0:1.8.1",
    "0-1:24.3.0",
    "1-0:1.8.1()",
    "1-0:1.8.1(",
    "1-0:1.8.10(000001.000*kWh)",
    "1-0:1.7.0(xx.x*kW)",
    "0-0:96.14.0(0001)",
    "0-0:1.0.0(991332250000W)",
    "0-2:24.1.0(007)",
    "0-2:96.1.0(4730303339303031363532303530323136)",
    "0-2:24.2.1(240101000000W)(00001.000*m3)",
    "0-1:24.2.1(240101000000W)(00012.345*m3)",
    "0-1:24.3.0(240115120000)(00)(60)(1)(0-1:24.2.1)(m3)",
    "(01186.848)",
    "1-0:99.97.0()",
    "1-0:99.97.0(1)(0-0:96.7.19)(240101000000W)(0000000010*s)",
    "1-0:99.97.0(2)(0-0:96.7.19)",
    "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(230101000000W)(632525252525W)(00.000*kW)",
    "0-0:96.13.0(48656C6C6F)",
    "1-3:0.2.8(50)",
    "1-0:3.8.0(000123.456*kvarh)",  # no specification names these two
    "0-0:96.50.1(Xemex)",
    "garbage (1) here",
    "",
    "!",
    "/XMX5LGBBFG1009",
]
MUTATION_CHARS = "0123456789()*.:-!/ AWS\r\n"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance here: these are plain parser tests."""


@pytest.fixture(autouse=True, scope="module")
def keep_profile_parsers() -> Iterator[None]:
    """Restore dsmr_parser's shared power-failure-log parsers after these tests.

    `ProfileGenericParser._parse_values` appends to its (module-global) `value_formats` on
    every parse; mutated telegrams must not leave other tests with odd parsers.
    """
    saved = {
        id(obj["value_parser"]): (obj["value_parser"], list(obj["value_parser"].value_formats))
        for name in dir(telegram_specifications)
        if isinstance(spec := getattr(telegram_specifications, name), dict) and "objects" in spec
        for obj in spec["objects"]
        if isinstance(obj["value_parser"], ProfileGenericParser)
    }
    yield
    for value_parser, formats in saved.values():
        value_parser.value_formats[:] = formats


def snapshot(value: Any) -> Any:
    """Everything about a parse result, as plain comparable data (types included)."""
    if isinstance(value, Telegram):
        return (
            "Telegram",
            [(key, snapshot(item)) for key, item in dict.items(value)],
            {
                name: snapshot(item)
                for name, item in vars(value).items()
                if name not in PARSER_ATTRIBUTES  # ours only: see test_unknown_lines
            },
        )
    if isinstance(value, MbusDevice | DSMRObject):
        return (type(value).__name__, {name: snapshot(item) for name, item in vars(value).items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [snapshot(item) for item in value])
    if isinstance(value, dict):
        return ("dict", {key: snapshot(item) for key, item in value.items()})
    return (type(value).__name__, value)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


@contextmanager
def records() -> Iterator[list[tuple[int, str]]]:
    """What dsmr_parser's parser module logs meanwhile (level and message).

    Kept here, not passed on to the session's log: they are this test's data (lines the
    library quotes, identifiers included), not something the integration logs.
    """
    handler = _Records()
    logger = logging.getLogger("dsmr_parser.parsers")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.propagate = True
        logger.removeHandler(handler)


def outcome(parser: Any, data: str, keys: dict[str, Any]) -> tuple[Any, Any]:
    """The snapshot of a parse (or of its exception) and the records it logged."""
    with records() as logged:
        try:
            result = snapshot(parser.parse(data, **keys))
        except Exception as err:  # the exception is the outcome
            result = ("raised", type(err).__name__, str(err))
    return result, logged


def specification(version: str) -> dict[str, Any]:
    factory, _ = _create_dsmr_protocol(version, None, object)
    spec: dict[str, Any] = factory.args[1].telegram_specification
    return spec


def mutate(text: str, op: str, a: int, b: int, char: str, line: str) -> str:
    """Apply one mutation to the lines of a plain telegram (its first and last lines kept)."""
    lines = text.split("\r\n")
    body = lines[1:-2]  # between the header and the "!CRC" line
    if not body:
        return text
    i, j = a % len(body), b % len(body)
    target = body[i]
    if op == "char" and target:
        k = b % len(target)
        body[i] = target[:k] + char + target[k + 1 :]
    elif op == "delete_char" and target:
        k = b % len(target)
        body[i] = target[:k] + target[k + 1 :]
    elif op == "drop":
        del body[i]
    elif op == "duplicate":
        body.insert(j, target)
    elif op == "swap":
        body[i], body[j] = body[j], body[i]
    elif op == "insert":
        body.insert(i, line)
    elif op == "lone_lf":
        body[i] = target[: b % (len(target) + 1)] + "\n" + target[b % (len(target) + 1) :]
    return "\r\n".join([lines[0], *body, *lines[-2:]])


def recrc(text: str) -> str:
    """The same telegram with a CRC that fits its (mutated) content."""
    start, end = text.find("/"), text.rfind("!")
    if start < 0 or end < start:
        return text
    fixed: str = with_crc(text[start : end + 1])
    return fixed


MUTATION = st.tuples(
    st.sampled_from(["char", "delete_char", "drop", "duplicate", "swap", "insert", "lone_lf"]),
    st.integers(0, 200),
    st.integers(0, 200),
    st.sampled_from(MUTATION_CHARS),
    st.sampled_from(TRICKY_LINES),
)
STEP = st.sampled_from([0.0, 1.0, 1.0, 1.0, 1.0, 10.0, 300.0, 3600.0])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[float], dict[int, list[Any]], bool]:
    steps = draw(st.lists(STEP, min_size=2, max_size=14))
    mutated = draw(
        st.dictionaries(
            st.integers(0, len(steps) - 1), st.lists(MUTATION, min_size=1, max_size=3), max_size=5
        )
    )
    return steps, mutated, draw(st.booleans())


def run_scenario(
    version: str, seed: int, scenario: tuple[list[float], dict[int, list[Any]], bool], check: bool
) -> CachingTelegramParser:
    """Parse a sequence of telegrams with both parsers; assert identical outcomes."""
    steps, mutated, fix_crc = scenario
    meter = Meter(version, seed=seed, key=KEY if version in ENCRYPTED else None)
    spec = specification(version)
    reference = TelegramParser(spec, apply_checksum_validation=check)
    caching = caching_parser(spec, apply_checksum_validation=check)
    keys: dict[str, Any] = {}
    if meter.encrypted:
        keys = {"encryption_key": meter.key_hex, "authentication_key": meter.auth_key_hex}
    for number, seconds in enumerate(steps):
        meter.step(seconds)
        text = meter.telegram()
        for mutation in mutated.get(number, []):
            text = mutate(text, *mutation)
        if fix_crc and number in mutated and meter.info.crc:
            text = recrc(text)
        data = meter.wrap(text).hex() if meter.encrypted else text
        expected = outcome(reference, data, keys)
        recording = _Recording(caching)
        assert outcome(recording, data, keys) == expected, (version, number, text)
        if recording.result is not None and text.count("\n") == text.count("\r\n"):
            assert dict(unknown_lines(recording.result)) == expected_unknown(spec, text)
    return caching


class _Recording:
    """A parser that keeps what the parser it wraps returned."""

    def __init__(self, parser: CachingTelegramParser) -> None:
        self.parser = parser
        self.result: Telegram | None = None

    def parse(self, *args: Any, **kwargs: Any) -> Telegram:
        self.result = self.parser.parse(*args, **kwargs)
        return self.result


OBIS_CODE = re.compile(r"\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}")


def expected_unknown(spec: dict[str, Any], text: str) -> dict[str, str]:
    """Lines with an OBIS code that no object's expression takes: code -> rest of the line."""
    taken = [
        match
        for obj in spec["objects"]
        for match in re.findall(obj["obis_reference"], text, re.DOTALL | re.MULTILINE)
    ]
    unknown: dict[str, str] = {}
    for line in text.split("\r\n")[:-1]:
        paren = line.find("(")
        if (
            paren > 0
            and OBIS_CODE.fullmatch(line[:paren])
            and not any(match.startswith(line) for match in taken)
        ):
            unknown[line[:paren]] = line[paren:]
    return unknown


@pytest.mark.parametrize("version", list(VERSIONS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), scenario=scenarios())
def test_same_as_full_parse(
    version: str, seed: int, scenario: tuple[list[float], dict[int, list[Any]], bool]
) -> None:
    """Evolving and mutated telegrams of every version: identical results, errors and logs."""
    run_scenario(version, seed, scenario, check=True)


@pytest.mark.parametrize("version", [v for v, info in VERSIONS.items() if info.crc])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), scenario=scenarios())
def test_same_without_checksum_validation(
    version: str, seed: int, scenario: tuple[list[float], dict[int, list[Any]], bool]
) -> None:
    """With CRC validation off, mutated lines reach the line mapping even with a stale CRC."""
    run_scenario(version, seed, (*scenario[:2], False), check=False)


@pytest.mark.parametrize("line", ["1-0:1.8.1(1)(2)", "1-0:1.7.0(xx.x*kW)", "0-0:96.14.0(0001)"])
def test_same_with_throw_ex(line: str) -> None:
    """`throw_ex=True` raises on the first bad line, as dsmr_parser does."""
    meter = Meter("5", seed=2)
    spec = specification("5")
    caching = caching_parser(spec)
    for _ in range(3):
        meter.step(1.0)
        text = recrc(mutate(meter.telegram(), "insert", 5, 0, "", line))
        keys = {"throw_ex": True}
        assert outcome(caching, text, keys) == outcome(TelegramParser(spec), text, keys)


def test_long_run_reuses_objects_and_stays_bounded() -> None:
    """Ten minutes of 1 Hz telegrams: unchanged lines are reused, the cache stays small."""
    meter = Meter("5", seed=7)
    caching = caching_parser(specification("5"))
    previous = None
    for _ in range(600):
        meter.step(1.0)
        telegram = caching.parse(meter.telegram())
        if previous is not None:  # the identifier and the power failure log did not change
            assert telegram.EQUIPMENT_IDENTIFIER is previous.EQUIPMENT_IDENTIFIER
            assert telegram.POWER_EVENT_FAILURE_LOG is previous.POWER_EVENT_FAILURE_LOG
        previous = telegram
    assert caching.cache_hits > 3 * caching.cache_misses  # ~7 of 35 lines change a second
    assert caching._layout is not None  # the next one is built from the last one
    assert len(caching._last) <= meter.telegram().count("\r\n")
    assert len(caching._keys) <= MAX_KEYS


def test_power_failure_log_parsed_once_while_unchanged() -> None:
    """dsmr_parser's log parser grows its shared list per parse; unchanged, ours parses once."""
    spec = specification("5")
    log_parser = next(
        o["value_parser"] for o in spec["objects"] if o["value_name"] == "POWER_EVENT_FAILURE_LOG"
    )
    meter = Meter("5", seed=3)
    caching = caching_parser(spec)
    meter.step(1.0)
    caching.parse(meter.telegram())
    before = len(log_parser.value_formats)
    for _ in range(50):
        meter.step(1.0)
        caching.parse(meter.telegram())
    assert len(log_parser.value_formats) == before


def test_key_cache_is_bounded() -> None:
    """Garbage lines with ever new codes do not grow the line-key memo without bound."""
    caching = caching_parser(specification("2.2"))
    for number in range(MAX_KEYS * 2):
        caching.parse(f"/X\r\n\r\n1-0:{number}.8.1(1)\r\n1-0:1.8.1(000001.000*kWh)\r\n!\r\n")
    assert len(caching._keys) <= MAX_KEYS


def test_reader_protocol_uses_caching_parser() -> None:
    factory, _ = _create_dsmr_protocol("5", None, P1Protocol, stats=ReaderStats())
    protocol = factory()
    assert isinstance(protocol.telegram_parser, CachingTelegramParser)
    assert protocol.telegram_parser.telegram_specification is telegram_specifications.V5


COSEM_PARSERS = [
    obj["value_parser"]
    for obj in telegram_specifications.V5["objects"] + telegram_specifications.SWEDEN["objects"]
    if type(obj["value_parser"]) is CosemParser
]


@settings(max_examples=400, deadline=None)
@given(
    value_parser=st.sampled_from(COSEM_PARSERS),
    line=st.one_of(
        st.text(alphabet="0123456789-:.()*kWhAVmsSWx\r\n", max_size=40),
        st.from_regex(r"\A[0-9]-[0-9]:[0-9.]{3,7}(\([0-9a-zA-Z.*:-]{0,14}\)){1,3}\r\n\Z"),
    ),
)
def test_cosem_lines_parse_as_dsmr_parser_parses_them(value_parser: CosemParser, line: str) -> None:
    """Our shorter path for one COSEM line: the same object, or the same exception."""

    def run(parse: Any) -> Any:
        try:
            return snapshot(parse(line))
        except Exception as err:  # the exception is the outcome
            return ("raised", type(err).__name__, str(err))

    assert run(lambda text: parse_cosem(value_parser, text)) == run(value_parser.parse)


TIMESTAMPS = st.one_of(
    st.text(alphabet="0123456789SWX ", min_size=11, max_size=14),
    st.builds(
        lambda moment, flag: moment.strftime("%y%m%d%H%M%S") + flag,
        st.datetimes(min_value=datetime(1969, 1, 1), max_value=datetime(2068, 12, 31)),
        st.sampled_from(["S", "W", "", "X"]),
    ),
    # The hours that occur twice or never, around every DST change of a few years.
    st.builds(
        lambda day, hour, flag: f"{day}{hour:02d}3000{flag}",
        st.sampled_from(["240331", "241027", "250330", "251026", "681028"]),
        st.integers(0, 4),
        st.sampled_from(["S", "W"]),
    ),
)


@settings(max_examples=1000, deadline=None)
@given(value=TIMESTAMPS)
def test_timestamps_read_as_dsmr_parser_reads_them(value: str) -> None:
    """Our strptime-free timestamp: the same aware datetime (or None) for any text."""
    assert repr(parse_timestamp(value)) == repr(timestamp(value))
