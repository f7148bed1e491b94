"""A frame read into dsmr_parser's `Telegram`, by dsmr_parser's specifications, line by line.

dsmr_parser's `TelegramParser` runs every expression over the whole telegram and computes the CRC
a character at a time (~0.4 ms a DSMR 5 telegram). `TelegramReader` gives the same `Telegram` (held
to dsmr_parser's on the field corpus): a line goes to the objects of its OBIS code only, found once;
an unchanged line keeps its value; lines no object takes are kept (`unknown_lines`); a line that
does not parse costs that line only.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
import re
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from dlms_cosem.exceptions import DecryptionError as DlmsDecryptionError
from dlms_cosem.protocol.xdlms import GeneralGlobalCipher
from dsmr_parser import obis_references
from dsmr_parser.clients.protocol import create_dsmr_protocol
from dsmr_parser.exceptions import DecryptionError, InvalidChecksumError, ParseError
from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import ProfileGenericParser
from dsmr_parser.profile_generic_specifications import PG_HEAD_PARSERS

MAX_LINES: Final = 200  # a real telegram has fewer than 60
MAX_LINE: Final = 1024  # longer lines are read, never kept for the next telegram
MAX_KEYS: Final = 512  # OBIS codes remembered (a stream of made-up codes is forgotten)
_OBIS: Final = re.compile(r"\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}")
_CHECKSUM: Final = re.compile(r"!([0-9A-Z]{1,4})\x00?\r\n")  # as framed: NUL before CRLF
_FLAGS: Final = re.DOTALL | re.MULTILINE  # as dsmr_parser compiles them
_UNSEEN: Final[Any] = object()
# Where each version's meter names itself (dsmr_parser's obis_references names).
IDENTIFIER_LINE: Final = {
    "5B": "BELGIUM_EQUIPMENT_IDENTIFIER",
    "5L": "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "MSn": "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "5EONHU": "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "Q3D": "Q3D_EQUIPMENT_IDENTIFIER",
    "ISKRA_IE": "EQUIPMENT_IDENTIFIER_GAS",  # Iskra IE.5/IE.7 names itself on 0-0:96.1.0
}
# Meter units as Home Assistant writes them (a unit not here is shown as sent).
UNITS: Final = {"m3": "m³", "var": "var", "kvar": "kvar", "varh": "varh", "kvarh": "kvarh"}


def _crc_steps(crc: int, bits: int) -> int:
    """CRC-16/ARC over `bits` bits (the data XORed into `crc`)."""
    for _ in range(bits):
        crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_BYTE = [_crc_steps(v, 8) for v in range(256)]  # one byte
_LOW = [_crc_steps(v, 16) for v in range(256)]  # two bytes: the low byte's part
_HIGH = [_crc_steps(v << 8, 16) for v in range(256)]  # and the high byte's
# Both at once (128 KiB): one lookup for two bytes takes the CRC from 44 to 27 us a telegram.
_WORD = array("H", (_LOW[v & 0xFF] ^ _HIGH[v >> 8] for v in range(1 << 16)))


def crc16(data: bytes) -> int:
    """The telegram CRC (CRC-16/ARC), two bytes a step (little-endian words)."""
    crc, even, table = 0, len(data) & ~1, _WORD
    for word in memoryview(data)[:even].cast("H"):
        crc = table[crc ^ word]
    if len(data) & 1:
        crc = (crc >> 8) ^ _BYTE[(crc ^ data[-1]) & 0xFF]
    return crc


def check_crc(text: str) -> None:
    """Raise as dsmr_parser's `validate_checksum` does unless the CRC is right."""
    start, end = text.find("/"), text.rfind("!")
    found = _CHECKSUM.search(text, end) if 0 <= start < end else None
    if found is None:
        raise ParseError("Failed to perform CRC validation: the checksum is missing.")
    if crc16(text[start : end + 1].encode("latin-1")) != int(found.group(1), 16):
        raise InvalidChecksumError("Invalid telegram: the CRC does not match.")


def decrypt(frame: bytes, key: str, authentication_key: str | None) -> str:
    """The plain telegram in a general-global-cipher frame; DecryptionError if it won't."""
    apdu = GeneralGlobalCipher.from_bytes(frame)
    try:
        if authentication_key is not None:
            plain = apdu.to_plain_apdu(bytes.fromhex(key), bytes.fromhex(authentication_key))
        else:  # the GCM tag unchecked (as dsmr_parser): AES-CTR from GCM's counter; the CRC checks
            iv = apdu.system_title + apdu.invocation_counter.to_bytes(4) + (2).to_bytes(4)
            decryptor = Cipher(algorithms.AES(bytes.fromhex(key)), modes.CTR(iv)).decryptor()
            plain = decryptor.update(apdu.ciphered_text[:-12]) + decryptor.finalize()
        text: str = plain.decode("ascii")
    except (DlmsDecryptionError, UnicodeDecodeError) as err:  # a wrong key
        raise DecryptionError("Unable to decrypt telegram; wrong encryption key?") from err
    if not text.startswith("/"):
        raise DecryptionError("Unable to decrypt telegram; wrong encryption key?")
    return text


@cache
def version_setup(version: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """A version's telegram specification and serial settings (NotImplementedError: unknown)."""
    factory, settings = create_dsmr_protocol(version, None)
    # (dsmr_parser's own reader writes a url into this shared dict: not ours to take.)
    serial = {k: v for k, v in settings.items() if k not in ("url", "low_latency")}
    return factory.args[1].telegram_specification, MappingProxyType(serial)


def value_names(version: str) -> frozenset[str]:
    """The value names of a version's specification."""
    return frozenset(obj["value_name"] for obj in version_setup(version)[0]["objects"])


def has_demand(version: str) -> bool:
    """Whether the version sends the quarter-hour demand (1-0:1.4.0): Belgian meters."""
    return "BELGIUM_CURRENT_AVERAGE_DEMAND" in value_names(version)


def identifier(telegram: Telegram, version: str) -> str | None:
    """The electricity meter's equipment identifier, if the telegram has one."""
    reference = getattr(obis_references, IDENTIFIER_LINE.get(version, "EQUIPMENT_IDENTIFIER"))
    value = getattr(telegram.get(reference), "value", None)
    return str(value) if value is not None else None


def gas_identifier(telegram: Telegram, version: str) -> str | None:
    """The DSMR 2.2/4 gas meter's identifier, if the telegram has one."""
    if IDENTIFIER_LINE.get(version) == "EQUIPMENT_IDENTIFIER_GAS":
        return None  # that line names the electricity meter on this version
    value = getattr(telegram.get(obis_references.EQUIPMENT_IDENTIFIER_GAS), "value", None)
    return str(value) if value is not None else None


def ha_unit(sent: str | None) -> str | None:
    """A unit as Home Assistant writes it (m3 is m³, kVArh is kvarh), None for none."""
    if not isinstance(sent, str) or not sent:
        return None
    return UNITS.get(sent) or UNITS.get(sent.lower(), sent)


def unit(obj: Any) -> str | None:
    """A line's unit as Home Assistant writes it."""
    if isinstance(obj, list):  # the Belgian 13-month peak history: one unit for all
        obj = next(iter(obj), None)
    return ha_unit(getattr(obj, "unit", None))


@dataclass(frozen=True, slots=True)
class Read:
    """A telegram as read: dsmr_parser's `Telegram`, and what it leaves out."""

    telegram: Telegram
    unknown_lines: Mapping[str, str]  # OBIS code -> the rest of its line
    bad_lines: int  # lines that did not parse (the rest of the telegram is used)


class TelegramReader:
    """Reads one meter's telegrams by its version's dsmr_parser specification."""

    def __init__(self, specification: Mapping[str, Any]) -> None:
        """Prepare for `specification` (e.g. dsmr_parser's `telegram_specifications.V5`)."""
        self.crc = bool(specification["checksum_support"])
        self._objects = [
            (obj["obis_reference"], obj["value_parser"], obj["value_name"])
            for obj in specification["objects"]
        ]
        self._patterns = patterns = [re.compile(ref, _FLAGS) for ref, _, _ in self._objects]
        # Expressions over two lines (DSMR 2.2's gas reading) run over the whole telegram.
        self._spanning = [(i, p) for i, p in enumerate(patterns) if p.pattern.count(r"\r\n") > 1]
        self._keys: dict[str, tuple[int, ...] | None] = {}  # code -> objects (None: unknown)
        self._last: dict[tuple[int, int], tuple[str, Any]] = {}  # (object, nth) -> line, value

    def read(self, text: str) -> Read:
        """Read a plain telegram (its CRC checked first where the version has one)."""
        if text.count("\n") > MAX_LINES:
            raise ParseError(f"more than {MAX_LINES} lines")
        if self.crc:
            check_crc(text)
        found: dict[int, list[Any]] = {}
        unknown: dict[str, str] = {}
        last, now, bad = self._last, {}, 0
        for line in text.split("\r\n"):
            paren = line.find("(")
            if paren <= 0:
                continue  # the header, an empty line, the CRC, a continuation
            code = line[:paren]
            if (objects := self._keys.get(code, _UNSEEN)) is _UNSEEN:
                objects = self._objects_of(code)
            if objects is None:
                unknown[code] = line[paren:]
                continue
            for index in objects:
                values = found.setdefault(index, [])
                place = (index, len(values))
                before = last.get(place)
                if before is not None and before[0] == line:
                    value = before[1]
                else:
                    try:
                        value = self._parse(index, line + "\r\n")
                    except Exception:  # dsmr_parser raises many kinds: this line only
                        bad += 1
                        continue
                if len(line) <= MAX_LINE:
                    now[place] = (line, value)
                values.append(value)
        self._last = now
        for index, pattern in self._spanning:
            for match in pattern.findall(text):
                try:
                    found.setdefault(index, []).append(self._parse(index, match))
                except Exception:
                    bad += 1
        telegram = Telegram()
        for index in sorted(found):  # dsmr_parser's order: the specification's
            reference, _, name = self._objects[index]
            for value in found[index]:
                telegram.add(obis_reference=reference, dsmr_object=value, obis_name=name)
        return Read(telegram, MappingProxyType(unknown), bad)

    def _parse(self, index: int, line: str) -> Any:
        parser = self._objects[index][1]
        if isinstance(parser, ProfileGenericParser):  # it grows with every line it reads
            parser = ProfileGenericParser(
                parser.buffer_types, PG_HEAD_PARSERS, parser.parsers_for_unidentified
            )
        return parser.parse(line)

    def _objects_of(self, code: str) -> tuple[int, ...] | None:
        """The objects that take a line with this code (() none, None: an unknown OBIS code)."""
        sample = code + "(\r\n"
        objects = tuple(
            i
            for i, pattern in enumerate(self._patterns)
            if (i, pattern) not in self._spanning and pattern.match(sample)
        )
        spanned = any(pattern.match(sample + sample) for _, pattern in self._spanning)
        result = objects if objects or spanned or not _OBIS.fullmatch(code) else None
        if len(code) <= 32:
            if len(self._keys) >= MAX_KEYS:
                self._keys.clear()
            self._keys[code] = result
        return result
