"""Every telegram of the field corpus parses, identically with dsmr_parser and our reader.

No Home Assistant here: the corpus against dsmr_parser's `TelegramParser` for the version the
meter's owner chooses, our `TelegramReader`, and the CRC the meter printed. Lines that
dsmr_parser cannot read (it logs them and leaves them out) are listed in `SKIPPED_LINES` with
the reason: a real meter's line that the library misreads.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
import logging
import re
from typing import Any

from dsmr_parser.parsers import TelegramParser
import pytest

from custom_components.dsmr.p1.telegram import TelegramReader, check_crc, crc16, decrypt
from dsmr_sim.crc import crc16 as reference_crc16

from .field_corpus import CORPUS, FIELD, Recording
from .test_telegram import snapshot

# Lines of real meters that dsmr_parser logs as unreadable and drops (file -> OBIS reference).
SKIPPED_LINES: dict[str, dict[str, str]] = {}
# Lines that dsmr_parser reads into another number or unit than the line has (file -> lines).
MISREAD_LINES: dict[str, list[str]] = {}
# A line whose last group is one value, with or without a unit: "1-0:1.8.1(000123.456*kWh)".
_LAST_VALUE = re.compile(
    r"^(\d+-\d+:\d+\.\d+\.\d+(?:\*\d+)?)(?:\(.*\))?\(([-+]?[0-9.]+)(?:\*([^()*]+))?\)$"
)
# Lines read into something other than their last group's value: timestamps (a meter's may lack
# its S/W), power failure logs, Belgian peak histories, DSMR 2.2 gas headers.
_NOT_ONE_VALUE = (":1.0.0", "99.97.0", "98.1.0", "24.3.0")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """No Home Assistant instance here: these are plain parser tests."""


def test_corpus_is_listed_and_covers_the_countries() -> None:
    listed = [recording.name for recording in CORPUS]
    on_disk = sorted(path.name for path in FIELD.iterdir() if path.name != "SOURCES.md")
    assert sorted(listed) == on_disk
    assert len(listed) == len(set(listed)) >= 25
    countries = Counter(recording.country for recording in CORPUS)
    assert set(countries) >= {"NL", "BE", "LU", "SE", "AT"}
    versions = {recording.version for recording in CORPUS}
    assert versions >= {"2.2", "4", "5", "5B", "5L", "5S", "Q3D", "ISKRA_IE", "SAGEMCOM_T210_D_R"}


@pytest.mark.parametrize("recording", CORPUS, ids=lambda recording: recording.name)
def test_crc(recording: Recording) -> None:
    """The CRC the meter printed is the CRC of the telegram (none on DSMR 2.2/3 and Q3D)."""
    text = recording.text
    body_end = text.index("!") + 1
    printed = re.match(r"[0-9A-F]{4}\r\n", text[body_end:])
    if recording.version in {"2.2", "Q3D"}:
        assert printed is None
        assert text[body_end : body_end + 2] == "\r\n"
        return
    # Iskra IE.5: dsmr_parser's ISKRA_IE does not check CRCs ("the meter's is wrong"); it is not.
    assert printed is not None
    body = text[text.index("/") : body_end]
    assert crc16(body.encode("latin-1")) == reference_crc16(body) == int(printed.group()[:4], 16)
    assert TelegramParser.crc16(body) == crc16(body.encode("latin-1"))
    check_crc(text)
    TelegramParser.validate_checksum(text)


@pytest.mark.parametrize("recording", CORPUS, ids=lambda recording: recording.name)
def test_parsers_agree(recording: Recording, caplog: pytest.LogCaptureFixture) -> None:
    """dsmr_parser and our parser read the same objects; dropped lines are known findings."""
    spec = recording.specification()
    if recording.key is not None:
        data = recording.frame.hex()
        keys = {"encryption_key": recording.key, "authentication_key": recording.auth_key}
    else:
        data, keys = recording.text, {}
    with caplog.at_level(logging.ERROR, logger="dsmr_parser"):
        expected = TelegramParser(spec).parse(data, **keys)
    dropped = {
        match.group(1): record.getMessage()
        for record in caplog.records
        if (match := re.search(r"signature (\S+)", record.getMessage())) is not None
    }
    text = recording.text
    if recording.key is not None:  # as the reader has it: decrypted with the tag checked
        text = decrypt(recording.frame, recording.key, recording.auth_key)
    ours = TelegramReader(spec).read(text)
    assert snapshot(ours.telegram) == snapshot(expected)
    assert ours.bad_lines == len(dropped)
    assert len(expected) > 0
    assert set(dropped) == set(SKIPPED_LINES.get(recording.name, {}))


def _read_values(telegram: Any) -> set[tuple[Any, str | None]]:
    """Every (value, unit) dsmr_parser read, M-Bus devices and monthly peaks included."""
    objects: list[Any] = []
    for name, obj in telegram:
        if name == "MBUS_DEVICES":
            objects.extend(item for device in obj for _, item in device)
        elif isinstance(obj, list):
            objects.extend(obj)
        else:
            objects.append(obj)
    values = ((getattr(o, "value", None), getattr(o, "unit", None) or None) for o in objects)
    return {(value, unit) for value, unit in values if not isinstance(value, list)}


@pytest.mark.parametrize("recording", CORPUS, ids=lambda recording: recording.name)
def test_dsmr_parser_reads_each_line_as_written(recording: Recording) -> None:
    """Each line a specification names is read as its text says: the number and the unit."""
    spec = recording.specification()
    keys = {"encryption_key": recording.key, "authentication_key": None} if recording.key else {}
    data = recording.frame.hex() if recording.key else recording.text
    telegram = TelegramParser(spec).parse(data, **keys)
    unknown = TelegramReader(spec).read(recording.text).unknown_lines
    read = _read_values(telegram)
    misread, checked = [], 0
    for line in recording.text.split("\r\n"):
        if (found := _LAST_VALUE.match(line)) is None:
            continue
        code, number, unit = found.groups()
        if code in unknown or code.endswith(_NOT_ONE_VALUE):
            continue
        checked += 1
        if (Decimal(number), unit) not in read and (number, unit) not in read:
            misread.append(line)
    assert checked >= 5
    assert misread == MISREAD_LINES.get(recording.name, [])
