"""Extra lines no specification names: inside the telegram, before the "!", covered by the CRC."""

from __future__ import annotations

import asyncio

from dsmr_parser.exceptions import InvalidChecksumError
import pytest

from dsmr_sim import VERSIONS, crc16
from dsmr_sim.__main__ import build_parser, main, parse_hostport, serve

from .helpers import ALL_VERSIONS, assert_matches, make_meter, parse

# Codes that no version's specification names (1-0:3.8.0 would do for a Dutch meter, but
# Sweden, Hungary, Luxembourg and Austria specify it).
EXTRA = ["1-0:9.8.0(000123.456*kVAh)", "0-0:96.50.1(Xemex)", "1-0:1.6.1(240108060000W)(04.779*kW)"]


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_extra_lines_close_the_telegram_and_every_value_still_parses(version: str) -> None:
    meter = make_meter(version, seed=4, extra_lines=EXTRA)
    rendered = meter.render()
    plain = make_meter(version, seed=4).render()
    text = rendered.text
    bang = text.rindex("!")
    assert text[:bang].endswith("\r\n".join(EXTRA) + "\r\n")
    assert text[:bang] == plain.text[: plain.text.rindex("!")] + "".join(
        f"{line}\r\n" for line in EXTRA
    )
    assert rendered.extra == {
        "1-0:9.8.0": "(000123.456*kVAh)",
        "0-0:96.50.1": "(Xemex)",
        "1-0:1.6.1": "(240108060000W)(04.779*kW)",
    }
    assert plain.extra == {}
    if VERSIONS[version].crc:
        assert text[bang + 1 :] == f"{crc16(text[: bang + 1]):04X}\r\n"
    else:
        assert text[bang + 1 :] == "\r\n"
    # dsmr_parser (checking the CRC, decrypting) reads every specified value as before.
    assert_matches(parse(meter, meter.wrap(text)), rendered, meter)


def test_extra_lines_are_checked_by_the_crc() -> None:
    meter = make_meter("5", extra_lines=["1-0:3.8.0(000123.456*kvarh)"])
    text = meter.telegram()
    with pytest.raises(InvalidChecksumError):
        parse(meter, text.replace("000123.456", "000123.457"))


def test_extra_lines_can_change_between_telegrams() -> None:
    meter = make_meter("5", extra_lines=["1-0:3.8.0(000123.456*kvarh)"])
    assert "1-0:3.8.0(000123.456*kvarh)\r\n!" in meter.telegram()
    meter.extra_lines = ["1-0:3.8.0(000124.000*kvarh)"]
    assert meter.extra_lines == ("1-0:3.8.0(000124.000*kvarh)",)
    assert "1-0:3.8.0(000124.000*kvarh)\r\n!" in meter.telegram()
    meter.extra_lines = []
    assert "1-0:3.8.0" not in meter.telegram()


@pytest.mark.parametrize(
    "line",
    [
        "1-0:3.8.0",  # no value
        "hello(1)",  # no OBIS code
        "1-0:3.8.0(1)!",  # would end the telegram
        "1-0:3.8.0(a!b)",
        "1-0:3.8.0(1)\r\n0-0:1.0.0(2)",  # two lines
        "1-0:3.8.0(1)x",
        "1-0:3.8.0(é)",  # not ASCII
    ],
)
def test_bad_extra_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError, match="extra line"):
        make_meter("5", extra_lines=[line])
    meter = make_meter("5")
    with pytest.raises(ValueError, match="extra line"):
        meter.extra_lines = [line]


def test_cli_refuses_a_bad_extra_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--tcp", "127.0.0.1:0", "--extra-line", "nonsense"]) == 2
    assert "extra line" in capsys.readouterr().err


async def test_cli_sends_extra_lines(
    socket_enabled: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        [
            "--tcp",
            "127.0.0.1:0",
            "--interval",
            "0.02",
            "--extra-line",
            EXTRA[0],
            "--extra-line",
            EXTRA[1],
        ]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(args, stop))
    try:
        async with asyncio.timeout(10):
            out = ""
            while "TCP " not in out:
                await asyncio.sleep(0.01)
                out += capsys.readouterr().out
            host, port = parse_hostport(out.split("TCP ", 1)[1].splitlines()[0])
            reader, writer = await asyncio.open_connection(host, port)
            try:
                data = await reader.readuntil(b"!")  # a partial first telegram, maybe
                data = await reader.readuntil(b"!")  # then a whole one
            finally:
                writer.close()
                await writer.wait_closed()
    finally:
        stop.set()
        assert await task == 0
    assert data.endswith(f"\r\n{EXTRA[0]}\r\n{EXTRA[1]}\r\n!".encode())
