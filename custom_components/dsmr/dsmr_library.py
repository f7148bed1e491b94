"""dsmr_parser as this integration uses it: the one module that touches its private names.

dsmr_parser (core `dsmr`'s library too) gives no public way to copy a parsed `Telegram` (its
value lists are private) or to learn the zone it reads a meter's local time in, and it logs
every unreadable line with a traceback. Everything of that kind is here:

* `version_setup`: a version token's telegram specification and serial settings, from the
  library's own version table (its public `create_dsmr_protocol`);
* `new_parser`: the parser the reader uses; our `CachingTelegramParser` (parser.py) when the
  self-check below passed, dsmr_parser's own `TelegramParser` otherwise;
* `derive_telegram`: a copy of a `Telegram` whose values can be replaced (the caching
  parser's fast path), the only code that writes the library's private `Telegram` lists;
* `PARSING` and the log filter: dsmr_parser's per-line error records are counted by the
  reader that is parsing (`counters.ReaderStats`), not written to the log every second;
* `EncryptedFrames`: encrypted (DLMS) frames cut from a byte stream as dsmr_parser cuts them.

On import the module checks that the library is still the one our parser was written for: the
private names exist, and two known telegrams (a Dutch DSMR 5 and a Belgian e-MUCS one, with
M-Bus devices, a power failure log, a peak history, winter and summer time, made-up
identifiers) parse to the same `Telegram` with both parsers, also when rebuilt from the
previous telegram. On any mismatch it logs one warning and every telegram is parsed by
dsmr_parser's own parser (slower, same values). manifest.json admits the dsmr_parser releases
this check is tested on.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from datetime import tzinfo
from functools import cache
from importlib.metadata import PackageNotFoundError, version as package_version
import logging
import re
from typing import Any, Final, Protocol

from dsmr_parser import value_types
from dsmr_parser.clients.protocol import create_dsmr_protocol
from dsmr_parser.clients.telegram_buffer import EncryptedTelegramBuffer
from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser

from .checksum import crc16
from .const import LOGGER
from .parser import EXPRESSION_FLAGS, CachingTelegramParser
from .values import ZONE

__all__ = [
    "PARSING",
    "SELF_CHECK_PROBLEM",
    "EncryptedFrames",
    "Parser",
    "caching_parser",
    "check_library",
    "derive_telegram",
    "library_parser",
    "new_parser",
    "self_check",
    "version_setup",
]


class Parser(Protocol):
    """What the reader needs of a telegram parser (ours or dsmr_parser's)."""

    telegram_specification: dict[str, Any]

    def parse(
        self,
        telegram_data: str,
        encryption_key: str = ...,
        authentication_key: str | None = ...,
        throw_ex: bool = ...,
    ) -> Telegram:
        """Parse a telegram (or an encrypted frame in hex)."""


class LineFaults(Protocol):
    """Where dsmr_parser's log records are counted while a reader parses (`ReaderStats`)."""

    bad_lines: int

    def fault(self, kind: str, message: str, *args: object) -> None:
        """Log a fault, rate-limited."""


@cache
def version_setup(dsmr_version: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """A version token's telegram specification and serial settings, as dsmr_parser has them.

    Raises NotImplementedError for a version dsmr_parser does not know.
    """
    factory, settings = create_dsmr_protocol(dsmr_version, None)
    specification: dict[str, Any] = factory.args[1].telegram_specification
    return specification, settings


@cache
def library_parser(dsmr_version: str) -> Parser:
    """dsmr_parser's own parser for a version (for a one-off telegram: it keeps no state)."""
    parser: Parser = TelegramParser(version_setup(dsmr_version)[0])
    return parser


def derive_telegram(previous: Telegram) -> Telegram:
    """A new `Telegram` holding what `previous` holds; replacing its values leaves `previous`.

    Values are set as `Telegram.add` sets them (name attribute, reference entry); the lists it
    keeps of names and M-Bus devices are copied, so the two telegrams never share a list.
    """
    telegram: Telegram = Telegram.__new__(Telegram)
    dict.update(telegram, previous)
    attributes = vars(telegram)
    attributes.update(vars(previous))
    attributes["_item_names"] = previous._item_names.copy()
    devices = attributes["_mbus_devices"] = previous._mbus_devices.copy()
    if "MBUS_DEVICES" in attributes:
        attributes["MBUS_DEVICES"] = devices
    return telegram


def caching_parser(
    telegram_specification: dict[str, Any], apply_checksum_validation: bool = True
) -> CachingTelegramParser:
    """Our parser for a specification (whatever the self-check said)."""
    return CachingTelegramParser(
        telegram_specification, apply_checksum_validation, derive=derive_telegram
    )


def new_parser(telegram_specification: dict[str, Any]) -> Parser:
    """The reader's parser: ours if the self-check passed, dsmr_parser's own otherwise."""
    if SELF_CHECK_PROBLEM is None:
        return caching_parser(telegram_specification)
    parser: Parser = TelegramParser(telegram_specification)
    return parser


class EncryptedFrames:
    """Cuts encrypted (DLMS general-global-cipher) frames out of a stream, as dsmr_parser does.

    Such a frame has no '/...!' framing: it starts with tag 0xDB and carries its own length.
    """

    def __init__(self) -> None:
        """Start with an empty buffer."""
        self._buffer = EncryptedTelegramBuffer()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the frames they completed."""
        self._buffer.append(data)
        return [bytes.fromhex(frame) for frame in self._buffer.get_all()]


# The counters of the telegram being parsed, so dsmr_parser's own log records count there.
PARSING: ContextVar[LineFaults | None] = ContextVar("dsmr_parsing", default=None)


class _CountParserNoise(logging.Filter):
    """Turn dsmr_parser's per-line error records (with tracebacks) into a counter.

    dsmr_parser logs every unreadable line at error level with a traceback, every second on a
    DSMR 5 meter with a flaky line, and a warning about an untested security suite (and the
    like) with every encrypted frame. While one of our readers parses, such records are counted
    in its counters and reported by it once, rate-limited; other users of the library see them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        faults = PARSING.get()
        if faults is None:
            return True
        if record.levelno >= logging.ERROR:
            faults.bad_lines += 1
        else:  # "Untested security suite" and the like, once per telegram: rate-limited
            faults.fault(f"dsmr_parser {record.msg}", "dsmr_parser: %s", record.getMessage())
        return False


logging.getLogger("dsmr_parser.parsers").addFilter(_CountParserNoise())


# The self-check's telegrams: real meters' lines (tests/fixtures/field), made-up identifiers.
_DSMR5: Final = (
    "5",
    (
        "/Ene5\\T211 ESMR 5.0",
        "",
        "1-3:0.2.8(50)",
        "0-0:1.0.0(240220170958W)",
        "0-0:96.1.1(4530303030303030303030303030303030)",
        "1-0:1.8.1(000565.971*kWh)",
        "1-0:1.8.2(000694.269*kWh)",
        "1-0:2.8.1(000006.754*kWh)",
        "1-0:2.8.2(000007.849*kWh)",
        "0-0:96.14.0(0002)",
        "1-0:1.7.0(00.723*kW)",
        "1-0:2.7.0(00.000*kW)",
        "0-0:96.7.21(00010)",
        "0-0:96.7.9(00003)",
        "1-0:99.97.0(1)(0-0:96.7.19)(230101120000W)(0000002345*s)",
        "1-0:32.32.0(00001)",
        "1-0:52.32.0(00001)",
        "1-0:72.32.0(00001)",
        "1-0:32.36.0(00000)",
        "1-0:52.36.0(00000)",
        "1-0:72.36.0(00000)",
        "0-0:96.13.0()",
        "1-0:32.7.0(226.0*V)",
        "1-0:52.7.0(225.0*V)",
        "1-0:72.7.0(226.0*V)",
        "1-0:31.7.0(003*A)",
        "1-0:51.7.0(000*A)",
        "1-0:71.7.0(000*A)",
        "1-0:21.7.0(00.654*kW)",
        "1-0:41.7.0(00.069*kW)",
        "1-0:61.7.0(00.000*kW)",
        "1-0:22.7.0(00.000*kW)",
        "1-0:42.7.0(00.000*kW)",
        "1-0:62.7.0(00.000*kW)",
        "1-0:3.8.0(000123.456*kvarh)",
        "0-1:24.1.0(003)",
        "0-1:96.1.0(4730303030303030303030303030303030)",
        "0-1:24.2.1(240220171000W)(06362.120*m3)",
    ),
)
_DSMR5B: Final = (
    "5B",
    (
        "/FLU5\\253769484_A",
        "",
        "0-0:96.1.4(50217)",
        "0-0:96.1.1(3153414730303030303030303030)",
        "0-0:1.0.0(230421165328S)",
        "1-0:1.8.1(000056.913*kWh)",
        "1-0:1.8.2(000184.024*kWh)",
        "1-0:2.8.1(000083.503*kWh)",
        "1-0:2.8.2(000015.696*kWh)",
        "0-0:96.14.0(0001)",
        "1-0:1.4.0(00.000*kW)",
        "1-0:1.6.0(230411223000S)(04.509*kW)",
        "0-0:98.1.0(2)(1-0:1.6.0)(1-0:1.6.0)(230301000000W)(230215193000W)(03.895*kW)"
        "(230401000000S)(230320071500W)(04.102*kW)",
        "1-0:1.7.0(00.000*kW)",
        "1-0:2.7.0(01.739*kW)",
        "1-0:21.7.0(00.188*kW)",
        "1-0:41.7.0(00.000*kW)",
        "1-0:61.7.0(00.000*kW)",
        "1-0:22.7.0(00.000*kW)",
        "1-0:42.7.0(00.000*kW)",
        "1-0:62.7.0(01.928*kW)",
        "1-0:32.7.0(245.3*V)",
        "1-0:52.7.0(000.0*V)",
        "1-0:72.7.0(246.8*V)",
        "1-0:31.7.0(001.00*A)",
        "1-0:51.7.0(007.74*A)",
        "1-0:71.7.0(007.97*A)",
        "0-0:96.3.10(1)",
        "0-0:17.0.0(999.9*kW)",
        "1-0:31.4.0(999*A)",
        "0-0:96.13.0()",
        "0-1:24.1.0(007)",
        "0-1:96.1.1(3853455430303030303030303030)",
        "0-1:24.2.1(230421165102S)(00003.830*m3)",
        "0-2:24.1.0(003)",
        "0-2:96.1.1(37464C4F30303030303030303030)",
        "0-2:24.4.0(1)",
        "0-2:24.2.3(230421164959S)(00107.812*m3)",
    ),
)
# What moves from one telegram to the next: the clock and the power (the parser's fast path),
# then an M-Bus reading (its long path).
_MOVES: Final = (
    {"0-0:1.0.0(": "0-0:1.0.0(240220170959W)", "1-0:1.7.0(": "1-0:1.7.0(01.234*kW)"},
    {"0-1:24.2.1(": "0-1:24.2.1(240220171500W)(06362.121*m3)"},
    {"0-0:1.0.0(": "0-0:1.0.0(230421165329S)", "1-0:2.7.0(": "1-0:2.7.0(01.740*kW)"},
    {"0-2:24.2.3(": "0-2:24.2.3(230421165959S)(00107.813*m3)"},
)


def _telegram(lines: tuple[str, ...]) -> str:
    body = "\r\n".join(lines) + "\r\n!"
    return f"{body}{crc16(body):04X}\r\n"


def _compile(expression: str) -> re.Pattern[str]:
    return re.compile(expression, EXPRESSION_FLAGS)


def _moved(lines: tuple[str, ...], moves: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(
        next((new for start, new in moves.items() if line.startswith(start)), line)
        for line in lines
    )


def _plain(value: Any) -> Any:
    """A parsed value as plain data, to compare two parsers' results by value."""
    if isinstance(value, Telegram):
        return (
            "Telegram",
            {reference: _plain(item) for reference, item in value.items()},
            [(name, _plain(item)) for name, item in value],
        )
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "__dict__"):
        return (type(value).__name__, _plain(vars(value)))
    return value


def _missing_name() -> str | None:
    """The first private name we rely on that the library no longer has, if any."""
    telegram = Telegram()
    for label, owner, name, kind in (
        ("Telegram", telegram, "_item_names", list),
        ("Telegram", telegram, "_mbus_devices", list),
        ("value_types", value_types, "_SYSTEM_TZ", tzinfo),
    ):
        if not isinstance(getattr(owner, name, None), kind):
            return f"no {label}.{name}"
    return None


def self_check() -> str | None:
    """None when our parser agrees with dsmr_parser's own; otherwise what is wrong (no data)."""
    if problem := _missing_name():
        return problem
    if value_types._SYSTEM_TZ != ZONE:
        return "dsmr_parser reads local time in another zone"
    for (dsmr_version, lines), moves in ((_DSMR5, _MOVES[:2]), (_DSMR5B, _MOVES[2:])):
        specification = version_setup(dsmr_version)[0]
        theirs = TelegramParser(specification)
        ours = caching_parser(specification)
        compiled = theirs.telegram_specification_regexes.values()
        references = {obj["obis_reference"] for obj in specification["objects"]}
        if {(p.pattern, p.flags) for p in compiled} != {
            (p.pattern, p.flags) for p in map(_compile, references)
        }:
            return f"dsmr_parser compiles the {dsmr_version} expressions differently"
        texts: list[tuple[str, ...]] = [
            lines,
            lines,
        ]  # built line by line, then rebuilt with nothing moved
        for move in moves:
            texts.append(_moved(texts[-1], move))
        for number, text in enumerate(map(_telegram, texts)):
            try:
                same = _plain(ours.parse(text)) == _plain(theirs.parse(text))
            except Exception as err:
                return f"{dsmr_version} telegram {number}: {type(err).__name__}"
            if not same:
                return f"{dsmr_version} telegram {number} parses differently"
    return None


def check_library() -> str | None:
    """Run the self-check; log its finding once (a warning; it quotes no telegram data)."""
    try:
        problem = self_check()
    except Exception as err:
        problem = f"the check failed ({type(err).__name__})"
    if problem is not None:
        try:
            found = package_version("dsmr-parser")
        except PackageNotFoundError:
            found = "unknown"
        LOGGER.warning(
            "dsmr_parser %s is not the library this integration was tested with (%s); "
            "every telegram is parsed by dsmr_parser's own parser (same values, more CPU)",
            found,
            problem,
        )
    return problem


# Why the caching parser is not used (None: it is).
SELF_CHECK_PROBLEM: str | None = check_library()
