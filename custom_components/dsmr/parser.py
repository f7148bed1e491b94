"""A telegram parser that parses only the lines that changed since the previous telegram.

A meter sends its full state every second, and from one telegram to the next only the
timestamp, the power and a few per-phase values move. dsmr_parser's `TelegramParser` parses
every line again (about 0.4 ms per DSMR 5 telegram, a third of it in its pure-Python CRC).

`CachingTelegramParser` keeps dsmr_parser's telegram specifications and value objects as the
single source of truth and returns exactly the `Telegram` that `TelegramParser.parse` returns
for the same text (the same objects by value, added in the same order, the same M-Bus grouping,
the same exceptions), but:

* it cuts the telegram into lines once and maps each line to the specification objects whose
  regular expression matches it, by the line's OBIS code (memoised per code);
* a line whose text is the same as last time gives the value object parsed last time (the
  cache holds one line per object and occurrence: its size is bounded by the specification);
* when a telegram has the same lines as the previous one (the same codes in the same order)
  and only values moved, which is nearly every telegram, it is built from the previous
  `Telegram`: only the changed lines are parsed and set, the rest is copied; M-Bus values,
  lines that no longer parse and any other change take the long way above;
* the CRC is dsmr_parser's CRC-16 (same expressions, same errors), from the last telegram's
  CRC and the bytes that changed (145 us -> ~9 us per telegram; `checksum.py`); decryption is
  dsmr_parser's own code (`decryption.py`);
* a changed line is read into dsmr_parser's value object in fewer steps (`values.py`).

Lines with an OBIS code that no object of the specification matches are not thrown away:
`unknown_lines(telegram)` gives them (code -> the rest of the line), for generic sensors; and
`changed_since(telegram, previous)` says which values moved, so a reader can skip the rest.

Nothing a meter does not send is kept: a telegram of more than MAX_LINES lines raises
`TooManyLines` (before its CRC is checked), and a line longer than MAX_LINE is parsed but not
remembered (nor is the telegram it is in: the next one is parsed in full).

Telegrams it cannot map line by line (a stray line feed, a line that is nothing but an OBIS
code, objects whose expression spans lines such as DSMR 2.2's gas reading) are handled
exactly as `TelegramParser.parse` does: by running the object's expression over the telegram.

This module touches none of dsmr_parser's private names: copying a `Telegram` (which needs its
private lists) is handed in as `derive`, by `dsmr_library`, which builds these parsers and
checks on import that they still agree with dsmr_parser's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import compress, count
import re
from types import MappingProxyType
from typing import Any, Final, cast

from dsmr_parser.exceptions import ParseError
from dsmr_parser.objects import DSMRObject, Telegram

from .checksum import ChecksumCheck
from .decryption import Decryptor
from .values import SKIP, parse_line

__all__ = [
    "MAX_LINE",
    "MAX_LINES",
    "PARSER_ATTRIBUTES",
    "CachingTelegramParser",
    "TooManyLines",
    "changed_since",
    "unknown_lines",
]

# An expression of the form every line-local object in dsmr_parser's specifications has:
# `^` + an OBIS code pattern that matches neither "(" nor a line break + `.+?\r\n`. Such an
# expression matches a line exactly when its code pattern matches at the start of the line and
# at least one character follows before the line's CRLF.
_TAIL: Final = r".+?\r\n"
_LINE_LOCAL_HEAD: Final = re.compile(r"\^(?:\\d|\[[0-9-]+\]|[0-9A-Za-z:-]|\\\.)+")
_HEAD: Final = re.compile(r"\^((?:\\d|\[[0-9-]+\]|[0-9A-Za-z:-]|\\\.)+)")
# A line key that is an OBIS code (reduced ID: A-B:C.D.E): an unknown one is kept, not skipped.
_OBIS_CODE: Final = re.compile(r"[0-9]{1,3}-[0-9]{1,3}:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
# The attribute of a parsed `Telegram` that holds its unknown OBIS lines (see `unknown_lines`).
UNKNOWN_LINES: Final = "unknown_lines"
# And where it came from: (its number, that of the telegram it was built from or None, the
# names of the values that moved) (see `changed_since`).
PARSED: Final = "dsmr_parsed"
PARSER_ATTRIBUTES: Final = frozenset({UNKNOWN_LINES, PARSED})  # dsmr_parser has neither
_SERIALS: Final = count(1)
# The flags dsmr_parser's `TelegramParser` compiles the specification's expressions with.
EXPRESSION_FLAGS: Final = re.DOTALL | re.MULTILINE
# Distinct line keys remembered (OBIS codes in practice; garbage lines are keys too).
MAX_KEYS: Final = 512
# Longer keys are not remembered: a real one is an OBIS code (at most 16 characters).
MAX_KEY: Final = 64
# Longer lines are parsed but not remembered. Real ones are under 600 bytes; DSMR allows a
# text message of up to 2048 hex digits, which is parsed anew each time.
MAX_LINE: Final = 1024
# More lines than this is no meter's telegram (real ones have under 60): it is not parsed.
MAX_LINES: Final = 200
_UNPARSED: Final = object()
_RUNS_ON: Final = object()  # a line that is nothing but an OBIS code: cannot be mapped alone
_NO_LINES: Final[Mapping[str, str]] = MappingProxyType({})


class TooManyLines(ParseError):  # type: ignore[misc]
    """A telegram of more than MAX_LINES lines: no meter sends one, it is not parsed."""


type _Place = tuple[int, int]  # (object index in the specification, occurrence in the telegram)
# What a line is: the objects it holds, its unknown OBIS code, or None (not part of any object).
type _Kind = tuple[int, ...] | str | None


@dataclass(slots=True)
class _Layout:
    """The last telegram built line by line, and where each of its objects came from.

    The next telegram is built from it when its lines are the same lines (the same codes in the
    same order) with only some values moved: the changed lines are parsed, everything else is
    the previous telegram's.
    """

    lines: list[str]  # the telegram's lines (split at CRLF)
    kinds: list[_Kind]  # per line: what `_kind` said of it
    places: list[tuple[_Place, ...]]  # per line: the (object, occurrence) pairs it holds
    matches: dict[int, list[str]]  # per object: its matched texts, as `_match` gives them
    telegram: Telegram
    # Per added object: (it is its name's attribute, it is its reference's dict entry).
    visible: dict[_Place, tuple[bool, bool]]
    mbus: frozenset[_Place]  # objects grouped into M-Bus devices: rebuilt the long way
    unknown: Mapping[str, str]


class CachingTelegramParser:
    """A drop-in for dsmr_parser's `TelegramParser` that re-parses only changed lines."""

    def __init__(
        self,
        telegram_specification: dict[str, Any],
        apply_checksum_validation: bool = True,
        *,
        derive: Callable[[Telegram], Telegram],
    ) -> None:
        """Prepare for a dsmr_parser telegram specification (e.g. `telegram_specifications.V5`).

        `derive(previous)` returns a new `Telegram` holding what `previous` holds, whose
        contents can be replaced without touching `previous` (see `dsmr_library`).
        """
        self.telegram_specification = telegram_specification
        self.apply_checksum_validation = apply_checksum_validation
        self._derive = derive
        self._decryptor = (
            Decryptor(telegram_specification)
            if telegram_specification.get("general_global_cipher")
            else None
        )
        self._objects: list[tuple[str, Any, str, re.Pattern[str]]] = []
        self._heads: list[tuple[int, re.Pattern[str]]] = []  # line-local objects
        self._spanning: list[int] = []  # objects whose expression may span lines
        spanning_heads: list[str] = []
        for index, obj in enumerate(telegram_specification["objects"]):
            reference = obj["obis_reference"]
            pattern = re.compile(reference, EXPRESSION_FLAGS)
            self._objects.append((reference, obj["value_parser"], obj["value_name"], pattern))
            head = reference.removesuffix(_TAIL)
            if head != reference and _LINE_LOCAL_HEAD.fullmatch(head):
                self._heads.append((index, re.compile(head)))
            else:
                self._spanning.append(index)
                if found := _HEAD.match(reference):
                    spanning_heads.append(found.group(1))
        self._any_head = re.compile("|".join(f"(?:{head.pattern})" for _, head in self._heads))
        # A line of a spanning object (e.g. DSMR 2.2's gas reading) is not an unknown line.
        self._spanning_head = re.compile("|".join(spanning_heads)) if spanning_heads else None
        # Line key (its text before the first "(", or the whole line when it has none) ->
        # the line-local objects matching such a line, or None when the line cannot be
        # mapped alone (an OBIS code with nothing after it: the expression runs on).
        self._keys: dict[str, tuple[int, ...] | None] = {}
        self._unknown_codes: set[str] = set()  # keys that are OBIS codes no object matches
        # (object index, occurrence) -> (matched text, value object) of the last telegram.
        self._last: dict[_Place, tuple[str, Any]] = {}
        self._layout: _Layout | None = None
        self.cache_hits = 0
        self.cache_misses = 0
        self.last_plain = ""  # the last decrypted telegram (encrypted specifications only)
        self._checksum = ChecksumCheck()

    def parse(
        self,
        telegram_data: str,
        encryption_key: str = "",
        authentication_key: str | None = "",
        throw_ex: bool = False,
    ) -> Telegram:
        """Parse a telegram as `TelegramParser.parse` does; raise what it raises.

        And `TooManyLines` for a telegram of more than MAX_LINES lines.
        """
        if self._decryptor is None:
            return self._parse_plain(telegram_data, throw_ex)
        plain = self._decryptor.decrypt(telegram_data, encryption_key, authentication_key)
        telegram = self._parse_plain(plain, throw_ex)
        self.last_plain = plain
        return telegram

    def _parse_plain(self, telegram_data: str, throw_ex: bool) -> Telegram:
        if telegram_data.count("\n") > MAX_LINES:  # before the CRC: each line costs
            raise TooManyLines(f"A telegram of more than {MAX_LINES} lines")
        if self.apply_checksum_validation and self.telegram_specification["checksum_support"]:
            self._checksum.validate(telegram_data)
        lines = telegram_data.split("\r\n")
        if telegram_data.count("\n") != len(lines) - 1:
            # A line feed without a carriage return: "^" may match mid-line.
            return self._parse_all(telegram_data, lines, throw_ex)
        if (layout := self._layout) is not None and len(lines) == len(layout.lines):
            telegram = self._rebuild(layout, telegram_data, lines, throw_ex)
            if telegram is not None:
                return telegram
        return self._parse_lines(telegram_data, lines, throw_ex)

    def _kind(self, line: str) -> _Kind | object:
        """What a line is: its objects, its unknown OBIS code, nothing (None) or _RUNS_ON."""
        paren = line.find("(")
        key = line[:paren] if paren >= 0 else line + "\r\n"
        try:
            indices = self._keys[key]
        except KeyError:
            if paren < 0 and self._any_head.match(key) is None:
                return None  # e.g. the header or the checksum line: not worth remembering
            indices = self._key_objects(key)
        if indices is None:
            return _RUNS_ON
        if indices:
            return indices
        return key if key in self._unknown_codes else None

    def _key_objects(self, key: str) -> tuple[int, ...] | None:
        whole_line = key.endswith("\r\n")  # the line has no "(": its key is all of it
        result: tuple[int, ...] | None
        indices: list[int] = []
        for index, head in self._heads:
            match = head.match(key)
            if match is None:
                continue
            if whole_line and match.end() >= len(key) - 2:
                result = None  # nothing but the code: ".+?" would take the CRLF and run on
                break
            indices.append(index)
        else:
            result = tuple(indices)
        if len(key) > MAX_KEY:
            return result
        if len(self._keys) >= MAX_KEYS:
            self._keys.clear()
            self._unknown_codes.clear()
        self._keys[key] = result
        if (
            result == ()
            and _OBIS_CODE.fullmatch(key)
            and (self._spanning_head is None or self._spanning_head.match(key) is None)
        ):
            self._unknown_codes.add(key)
        return result

    def _parse_lines(self, telegram_data: str, lines: list[str], throw_ex: bool) -> Telegram:
        """Map every line to its objects and build the telegram, reusing unchanged objects."""
        self._layout = None
        matches: dict[int, list[str]] = {}
        kinds: list[_Kind] = []
        places: list[tuple[_Place, ...]] = []
        unknown: dict[str, str] = {}
        for line in lines[:-1]:  # what follows the last CRLF cannot end in CRLF
            kind = self._kind(line)
            if kind is _RUNS_ON:
                return self._parse_all(telegram_data, lines, throw_ex)
            here: list[_Place] = []
            if isinstance(kind, tuple):
                text = line + "\r\n"
                for index in kind:
                    if (found := matches.get(index)) is None:
                        found = matches[index] = []
                    here.append((index, len(found)))
                    found.append(text)
            elif isinstance(kind, str):
                unknown[kind] = line[len(kind) :]
            kinds.append(cast(_Kind, kind))
            places.append(tuple(here))
        for index in self._spanning:
            if found := self._objects[index][3].findall(telegram_data):
                matches[index] = found
        layout = _Layout(
            lines, kinds, places, matches, Telegram(), {}, frozenset(), MappingProxyType(unknown)
        )
        complete = self._build(layout, throw_ex, {})
        if complete and max(map(len, lines)) <= MAX_LINE:
            self._layout = layout
        return layout.telegram

    def _rebuild(
        self, layout: _Layout, telegram_data: str, lines: list[str], throw_ex: bool
    ) -> Telegram | None:
        """The telegram from the last one when only values moved; None when the lines differ."""
        for index in self._spanning:
            if self._objects[index][3].findall(telegram_data) != layout.matches.get(index, []):
                return None
        changed: list[tuple[_Place, str]] = []
        unknown: dict[str, str] | None = None
        kinds = layout.kinds
        last_line = len(lines) - 1
        for i in compress(range(last_line), map(str.__ne__, lines, layout.lines, strict=True)):
            line = lines[i]
            if len(line) > MAX_LINE:
                return None  # the long way, which does not keep it
            kind = self._kind(line)
            if kind != kinds[i]:
                return None
            if isinstance(kind, tuple):
                text = line + "\r\n"
                changed.extend((place, text) for place in layout.places[i])
            elif isinstance(kind, str):
                if unknown is None:
                    unknown = dict(layout.unknown)
                unknown[kind] = line[len(kind) :]
        changed.sort()  # dsmr_parser's order: errors are raised and logged as it would
        parsed = {
            place: parse_line(
                self._objects[place[0]][1], self._objects[place[0]][0], text, throw_ex
            )
            for place, text in changed
        }
        matches = layout.matches
        for (index, occurrence), text in changed:
            matches[index][occurrence] = text
        layout.lines = lines
        if unknown is not None:
            layout.unknown = MappingProxyType(unknown)
        if any(place in layout.mbus or obj is SKIP for place, obj in parsed.items()):
            # An M-Bus value moved or a line no longer parses: the long way (with these objects).
            layout.telegram = Telegram()
            if not self._build(layout, throw_ex, parsed):
                self._layout = None
            return layout.telegram
        telegram = layout.telegram = self._derive(layout.telegram)
        attributes = vars(telegram)
        attributes[UNKNOWN_LINES] = layout.unknown
        last = self._last
        moved: list[str] = []
        for place, text in changed:
            dsmr_object = parsed[place]
            reference, _, value_name, _ = self._objects[place[0]]
            is_attribute, is_entry = layout.visible[place]
            if is_attribute:
                attributes[value_name] = dsmr_object
                moved.append(value_name)
            if is_entry:
                telegram[reference] = dsmr_object
            last[place] = (text, dsmr_object)
        # The previous telegram's number is among what `derive` copied.
        attributes[PARSED] = (next(_SERIALS), attributes.get(PARSED, (None,))[0], frozenset(moved))
        self.cache_misses += len(changed)
        self.cache_hits += len(layout.visible) - len(changed)
        return telegram

    def _build(self, layout: _Layout, throw_ex: bool, parsed: dict[_Place, Any]) -> bool:
        """Add the layout's objects to its (empty) telegram; False if a line did not parse."""
        telegram = layout.telegram
        last = self._last
        kept: dict[_Place, tuple[str, Any]] = {}  # this telegram's objects only
        attribute_of: dict[str, _Place] = {}
        entry_of: dict[str, _Place] = {}
        mbus: list[_Place] = []
        complete = True
        for index in sorted(layout.matches):
            reference, value_parser, value_name, _ = self._objects[index]
            for occurrence, text in enumerate(layout.matches[index]):
                place = (index, occurrence)
                cached = last.get(place)
                if cached is not None and cached[0] == text:
                    self.cache_hits += 1
                    dsmr_object = cached[1]
                    kept[place] = cached
                else:
                    self.cache_misses += 1
                    dsmr_object = parsed.get(place, _UNPARSED)
                    if dsmr_object is _UNPARSED:
                        dsmr_object = parse_line(value_parser, reference, text, throw_ex)
                    if dsmr_object is SKIP:
                        complete = False
                        continue
                    if len(text) <= MAX_LINE + 2:  # with its CRLF
                        kept[place] = (text, dsmr_object)
                telegram.add(
                    obis_reference=reference, dsmr_object=dsmr_object, obis_name=value_name
                )
                attribute_of[value_name] = place
                entry_of.setdefault(reference, place)
                if isinstance(dsmr_object, DSMRObject) and dsmr_object.is_mbus_reading:
                    mbus.append(place)
        attributes = set(attribute_of.values())
        entries = set(entry_of.values())
        layout.visible = {
            place: (place in attributes, place in entries) for place in attributes | entries
        }
        layout.mbus = frozenset(mbus)
        self._last = kept
        setattr(telegram, UNKNOWN_LINES, layout.unknown)
        setattr(telegram, PARSED, (next(_SERIALS), None, frozenset()))
        return complete

    def _parse_all(self, telegram_data: str, lines: list[str], throw_ex: bool) -> Telegram:
        """Every object's expression over the whole telegram: `TelegramParser.parse` exactly."""
        self._layout = None
        telegram = Telegram()
        for reference, value_parser, value_name, pattern in self._objects:
            for text in pattern.findall(telegram_data):
                dsmr_object = parse_line(value_parser, reference, text, throw_ex)
                if dsmr_object is not SKIP:
                    telegram.add(
                        obis_reference=reference, dsmr_object=dsmr_object, obis_name=value_name
                    )
        unknown: dict[str, str] = {}
        for line in lines[:-1]:
            if "\n" not in line and isinstance(kind := self._kind(line), str):
                unknown[kind] = line[len(kind) :]
        setattr(telegram, UNKNOWN_LINES, MappingProxyType(unknown))
        setattr(telegram, PARSED, (next(_SERIALS), None, frozenset()))
        return telegram


def unknown_lines(telegram: Telegram) -> Mapping[str, str]:
    """Unmatched OBIS lines, e.g. {"1-0:3.8.0": "(000123.456*kvarh)"}; empty from other parsers."""
    lines: Mapping[str, str] = getattr(telegram, UNKNOWN_LINES, _NO_LINES)
    return lines


def changed_since(telegram: Telegram, before: Telegram) -> frozenset[str] | None:
    """The names of the values (attributes) that moved from `before` to `telegram`, if known.

    Known when this parser built `telegram` from `before`: every other attribute is `before`'s
    very object, M-Bus devices included (moved M-Bus values take the long way). None: anything
    may have moved (the long way, another parser, or telegrams further apart).
    """
    mine = getattr(telegram, PARSED, None)
    if mine is None or mine[1] is None or mine[1] != getattr(before, PARSED, (None,))[0]:
        return None
    moved: frozenset[str] = mine[2]
    return moved
