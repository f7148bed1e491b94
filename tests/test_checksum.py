"""dsmr_parser's CRC check, quicker: the same CRC, the same outcome, for a single telegram and
from the last telegram's CRC in a meter's stream."""

from __future__ import annotations

from typing import Any

from dsmr_parser.parsers import TelegramParser
from hypothesis import given, settings, strategies as st

from custom_components.dsmr.checksum import ChecksumCheck, crc16, validate_checksum
from dsmr_sim.meter import Meter

ALPHABET = "0123456789ABCDEF()*.:-\r\n"


def outcome(check: Any, text: str) -> tuple[str, str]:
    try:
        check(text)
    except Exception as err:  # the exception is the outcome
        return type(err).__name__, str(err)
    return "ok", ""


def framed(body: str, crc: int | None = None) -> str:
    contents = f"/{body}!"
    if crc is None:
        crc = TelegramParser.crc16(contents)
    return f"{contents}{crc:04X}\r\n"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=300))
def test_crc16_matches_dsmr_parser(text: str) -> None:
    """The table CRC is dsmr_parser's CRC-16, for any text (non-ASCII falls back)."""
    assert crc16(text) == TelegramParser.crc16(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="/!\r\n0123456789ABCDEFZa(", max_size=60))
def test_validate_checksum_matches_dsmr_parser(text: str) -> None:
    """Same acceptance, same exception and message as `TelegramParser.validate_checksum`."""
    assert outcome(validate_checksum, text) == outcome(TelegramParser.validate_checksum, text)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=ALPHABET, min_size=1, max_size=300),
    st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.integers(0, 10_000), st.sampled_from(ALPHABET + "é")), max_size=8
            ),
            st.booleans(),  # the CRC sent is right
            st.booleans(),  # a character is added (another length)
        ),
        max_size=12,
    ),
)
def test_a_stream_is_checked_as_dsmr_parser_checks_each_telegram(
    base: str, steps: list[tuple[list[tuple[int, str]], bool, bool]]
) -> None:
    check = ChecksumCheck()
    body = list(base)
    for changes, right, longer in [([], True, False), *steps]:
        for at, char in changes:
            body[at % len(body)] = char
        if longer:
            body.append("7")
        text = "".join(body)
        telegram = framed(text, None if right else TelegramParser.crc16(f"/{text}!") ^ 1)
        assert outcome(check.validate, telegram) == outcome(
            TelegramParser.validate_checksum, telegram
        )


def test_changes_far_apart_in_a_long_telegram() -> None:
    """Runs of unchanged bytes longer than the largest skip table (4095 bytes)."""
    check = ChecksumCheck()
    body = ["0"] * 9000
    for at in (0, 1, 4200, 8999, 5000):
        body[at] = "1" if body[at] == "0" else "0"
        telegram = framed("".join(body))
        check.validate(telegram)  # a right CRC passes
        wrong = telegram.replace(telegram[-6:-2], f"{int(telegram[-6:-2], 16) ^ 0x100:04X}")
        assert outcome(check.validate, wrong)[0] == "InvalidChecksumError"


def test_a_meters_stream_passes_and_a_flipped_digit_is_caught() -> None:
    meter = Meter("5", seed=3, mbus=("gas",))
    check = ChecksumCheck()
    for second in range(300):
        meter.step(1.0)
        telegram = meter.telegram()
        check.validate(telegram)
        if second % 50 == 0:
            at = telegram.index("1-0:1.7.0(") + 12
            digit = "1" if telegram[at] != "1" else "2"
            bad = telegram[:at] + digit + telegram[at + 1 :]
            assert outcome(check.validate, bad)[0] == "InvalidChecksumError"
