"""One telegram line to dsmr_parser's value object, as dsmr_parser reads it, in fewer steps.

At one telegram a second only the lines that changed are read (see `parser`), and they are
read cold: every step counts. COSEM lines and timestamps, nearly all of what changes, take a
shorter path here; anything unusual goes to dsmr_parser's own code, and property tests hold
both to dsmr_parser's results.
"""

from __future__ import annotations

from datetime import UTC, datetime
import re
from typing import Any, Final
from zoneinfo import ZoneInfo

from dsmr_parser import parsers as dsmr_parsers
from dsmr_parser.exceptions import ParseError
from dsmr_parser.objects import CosemObject
from dsmr_parser.parsers import CosemParser
from dsmr_parser.value_types import timestamp

__all__ = ["SKIP", "ZONE", "parse_cosem", "parse_line", "parse_timestamp"]

SKIP: Final = object()  # a line that did not parse (logged, not added)
# The zone dsmr_parser reads a telegram's local time in (the library's own zone is a private
# name; `dsmr_library` checks on import that it is this one).
ZONE: Final = ZoneInfo("Europe/Amsterdam")
# dsmr_parser's value groups, r"((?<=\()[0-9a-zA-Z\.\*\-\:]{0,}(?=\)))": a group's text is a
# run of these characters right after a "(" and right before a ")". Taking the parentheses in
# the match finds the same runs (a "(" or ")" can never be inside one).
_VALUE_GROUP: Final = re.compile(r"\(([0-9a-zA-Z.*\-:]*)\)")


def parse_cosem(value_parser: CosemParser, text: str) -> Any:
    """`CosemParser.parse` for a well-formed line, in fewer steps; dsmr_parser's own otherwise.

    dsmr_parser finds the value groups with a look-behind expression it looks up in `re`'s
    cache on every line; `_VALUE_GROUP` finds the same groups. The values are still parsed by
    the specification's own value parsers into dsmr_parser's `CosemObject`.
    """
    values = _VALUE_GROUP.findall(text)
    formats = value_parser.value_formats
    if not values or len(values) != len(formats) or not (text[0] + text[2]).isdecimal():
        return value_parser.parse(text)  # raises (and words) its ParseError as dsmr_parser does
    return CosemObject(
        obis_id_code=(int(text[0]), int(text[2])),
        values=[
            {"value": parse_timestamp(value), "unit": None}
            if value_format.coerce_type is timestamp and value and "*" not in value
            else value_format.parse(value or None)
            for value_format, value in zip(formats, values, strict=True)
        ],
    )


def parse_timestamp(value: str) -> datetime | None:
    """dsmr_parser's `timestamp`, without `strptime` for a plain "YYMMDDhhmmss[SW]" text.

    The telegram's timestamp changes every second, and `strptime` is most of a changed line's
    cost. For twelve ASCII digits that make a valid date and time, `strptime("%y%m%d%H%M%S")`
    reads exactly the two-digit fields (years 00-68 are 20xx, 69-99 19xx); anything else goes
    to dsmr_parser's own function.
    """
    if len(value) != 13 or value[12] not in "SW" or not (value.isascii() and value[:12].isdigit()):
        result: datetime | None = timestamp(value)
        return result
    year = int(value[:2])
    try:
        naive = datetime(
            year + (2000 if year <= 68 else 1900),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]),
        )
    except ValueError:
        result = timestamp(value)
        return result
    # As dsmr_parser: local time of its zone, "W" (winter time) is the second of an hour that
    # occurs twice.
    local = naive.replace(tzinfo=ZONE, fold=1 if value[12] == "W" else 0)
    return local.astimezone(UTC)


def parse_line(value_parser: Any, reference: str, text: str, throw_ex: bool) -> Any:
    """One object's value; a bad line is logged and skipped (SKIP) or raised, as dsmr_parser."""
    try:
        if type(value_parser) is CosemParser:
            return parse_cosem(value_parser, text)
        return value_parser.parse(text)
    except ParseError:
        dsmr_parsers.logger.error(
            "ignore line with signature %s, because parsing failed.", reference, exc_info=True
        )
        if throw_ex:
            raise
    except Exception as err:
        dsmr_parsers.logger.error("Unexpected %s: %s", type(err), err)
        raise
    return SKIP
