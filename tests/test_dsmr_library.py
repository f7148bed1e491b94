"""The dsmr_parser adapter: its self-check, the fallback to dsmr_parser's parser, its helpers."""

from __future__ import annotations

from datetime import UTC
import logging
import subprocess
import sys
from typing import Any

from dsmr_parser import value_types
from dsmr_parser.objects import Telegram
from dsmr_parser.parsers import TelegramParser
import pytest

from custom_components.dsmr import dsmr_library, values
from custom_components.dsmr.counters import ReaderStats
from custom_components.dsmr.dsmr_library import (
    PARSING,
    EncryptedFrames,
    caching_parser,
    check_library,
    derive_telegram,
    new_parser,
    self_check,
    version_setup,
)
from custom_components.dsmr.parser import CachingTelegramParser
from custom_components.dsmr.protocol import P1Protocol

from .field_corpus import load
from .telegrams import GAS_ID, dsmr5

IDENTIFIERS = ("4530303030303030303030303030303030", "3153414730303030303030303030")


def test_self_check_passes_on_the_installed_library() -> None:
    assert self_check() is None
    assert dsmr_library.SELF_CHECK_PROBLEM is None
    assert isinstance(new_parser(version_setup("5")[0]), CachingTelegramParser)


def test_a_missing_private_name_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(value_types, "_SYSTEM_TZ")
    assert self_check() == "no value_types._SYSTEM_TZ"


def test_another_zone_in_the_library_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(value_types, "_SYSTEM_TZ", UTC)
    assert self_check() == "dsmr_parser reads local time in another zone"


def test_a_parse_mismatch_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # Our timestamps read in another zone than the library's: the first telegram differs.
    monkeypatch.setattr(values, "ZONE", UTC)
    assert self_check() == "5 telegram 0 parses differently"


def test_a_mismatch_on_the_fast_path_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # A copy that loses the telegram's values: only telegrams rebuilt from the last one differ.
    monkeypatch.setattr(dsmr_library, "derive_telegram", lambda previous: Telegram())
    assert self_check() == "5 telegram 1 parses differently"


def test_an_exception_in_our_parser_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(previous: Telegram) -> Telegram:
        raise AttributeError("_item_names")

    monkeypatch.setattr(dsmr_library, "derive_telegram", broken)
    assert self_check() == "5 telegram 1: AttributeError"


def test_a_failing_check_is_logged_once_without_data(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(value_types, "_SYSTEM_TZ")
    with caplog.at_level(logging.WARNING):
        assert check_library() == "no value_types._SYSTEM_TZ"
    (record,) = caplog.records
    assert "no value_types._SYSTEM_TZ" in record.getMessage()
    assert "own parser" in record.getMessage()
    assert not any(ident in caplog.text for ident in IDENTIFIERS)


def test_a_check_that_raises_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    def raises() -> str | None:
        raise RuntimeError("boom")

    monkeypatch.setattr(dsmr_library, "self_check", raises)
    assert check_library() == "the check failed (RuntimeError)"


def test_the_check_runs_on_import_and_falls_back() -> None:
    """A library without a private name we rely on: the reader gets dsmr_parser's parser."""
    code = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "from dsmr_parser import value_types\n"
        "del value_types._SYSTEM_TZ\n"
        "from custom_components.dsmr import dsmr_library\n"
        "from custom_components.dsmr.dsmr_library import new_parser, version_setup\n"
        "print('problem:', dsmr_library.SELF_CHECK_PROBLEM)\n"
        "print('parser:', type(new_parser(version_setup('5')[0])).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    lines = done.stdout.splitlines()
    assert "problem: no value_types._SYSTEM_TZ" in lines
    assert "parser: TelegramParser" in lines
    assert sum(line.startswith("WARNING") for line in lines) == 1


def test_the_reader_parses_with_dsmr_parser_after_a_failed_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dsmr_library, "SELF_CHECK_PROBLEM", "no value_types._SYSTEM_TZ")
    received: list[Telegram] = []
    specification = version_setup("5")[0]
    protocol = P1Protocol(
        None, TelegramParser(specification), telegram_callback=received.append, stats=ReaderStats()
    )
    assert type(protocol.telegram_parser) is TelegramParser
    text = dsmr5("0-1:24.1.0(003)", f"0-1:96.1.0({GAS_ID})", "0-1:24.2.1(240115120000W)(01.5*m3)")
    protocol.handle_telegram(text)
    protocol.handle_telegram(text)
    assert protocol.stats.telegrams == 2
    ours = caching_parser(specification).parse(text)
    assert [str(t) for t in received] == [str(ours), str(ours)]


def test_derived_telegram_shares_no_list() -> None:
    specification = version_setup("5")[0]
    text = dsmr5("0-1:24.1.0(003)", f"0-1:96.1.0({GAS_ID})", "0-1:24.2.1(240115120000W)(01.5*m3)")
    previous = TelegramParser(specification).parse(text)
    telegram = derive_telegram(previous)
    assert dict(telegram) == dict(previous)
    assert [name for name, _ in telegram] == [name for name, _ in previous]
    assert telegram.MBUS_DEVICES == previous.MBUS_DEVICES
    assert telegram.MBUS_DEVICES is not previous.MBUS_DEVICES
    assert telegram.get_mbus_device_by_channel(1) is previous.get_mbus_device_by_channel(1)
    telegram.add("x", object(), "EXTRA")
    assert "EXTRA" not in [name for name, _ in previous]


def test_encrypted_frames_are_cut_as_dsmr_parser_cuts_them() -> None:
    (recording,) = (r for r in load() if r.name.endswith("encrypted.hex"))
    frame = bytes.fromhex(recording.frame.hex())
    frames = EncryptedFrames()
    stream = b"noise\x00" + frame + frame[:20]
    found: list[bytes] = []
    for start in range(0, len(stream), 7):
        found += frames.feed(stream[start : start + 7])
    assert found == [frame]
    assert frames.feed(frame[20:]) == [frame]


def test_parser_noise_is_counted_while_a_reader_parses(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("dsmr_parser.parsers")
    stats = ReaderStats()
    token = PARSING.set(stats)
    try:
        with caplog.at_level(logging.DEBUG):
            logger.error("ignore line with signature %s", "x")
            logger.warning("Untested security suite")
    finally:
        PARSING.reset(token)
    assert stats.bad_lines == 1
    assert stats.last_error == "dsmr_parser: Untested security suite"
    assert "ignore line" not in caplog.text
    with caplog.at_level(logging.DEBUG):
        logger.error("ignore line with signature %s", "y")
    assert "ignore line with signature y" in caplog.text


def _spec(version: str) -> dict[str, Any]:
    return version_setup(version)[0]


def test_version_setup_is_dsmr_parsers_table() -> None:
    from dsmr_parser import telegram_specifications
    from dsmr_parser.clients.settings import SERIAL_SETTINGS_V4

    assert _spec("5B") is telegram_specifications.BELGIUM_FLUVIUS
    assert version_setup("4+") == (telegram_specifications.V5, SERIAL_SETTINGS_V4)
    with pytest.raises(NotImplementedError):
        version_setup("6")
