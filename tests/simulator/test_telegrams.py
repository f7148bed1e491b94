"""Rendered telegrams parse with dsmr_parser, for every version, with the right names and units."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
import re

from dsmr_parser.exceptions import DecryptionError, InvalidChecksumError
from dsmr_parser.parsers import TelegramParser
from hypothesis import given, strategies as st
import pytest

from dsmr_sim import VERSIONS, Meter, crc16, with_crc
from dsmr_sim.dlms import DlmsEncryptor, parse_key
from dsmr_sim.templates import hex_id

from .helpers import ALL_VERSIONS, AUTH_KEY, ENC_KEY, assert_matches, lookup, make_meter, parse

_TARIFFS = {
    "ELECTRICITY_USED_TARIFF_1": "kWh",
    "ELECTRICITY_USED_TARIFF_2": "kWh",
    "ELECTRICITY_DELIVERED_TARIFF_1": "kWh",
    "ELECTRICITY_DELIVERED_TARIFF_2": "kWh",
    "ELECTRICITY_ACTIVE_TARIFF": None,
}
_POWER = {"CURRENT_ELECTRICITY_USAGE": "kW", "CURRENT_ELECTRICITY_DELIVERY": "kW"}
_PHASES = {
    f"INSTANTANEOUS_ACTIVE_POWER_L{n}_{d}": "kW"
    for n in (1, 2, 3)
    for d in ("POSITIVE", "NEGATIVE")
}
_VOLT_AMP = {f"INSTANTANEOUS_VOLTAGE_L{n}": "V" for n in (1, 2, 3)} | {
    f"INSTANTANEOUS_CURRENT_L{n}": "A" for n in (1, 2, 3)
}
_EVENTS = {
    "SHORT_POWER_FAILURE_COUNT": None,
    "LONG_POWER_FAILURE_COUNT": None,
    "POWER_EVENT_FAILURE_LOG": None,
} | {f"VOLTAGE_{k}_L{n}_COUNT": None for k in ("SAG", "SWELL") for n in (1, 2, 3)}
_HEAD = {"P1_MESSAGE_HEADER": None, "P1_MESSAGE_TIMESTAMP": None, "EQUIPMENT_IDENTIFIER": None}
_V5 = _HEAD | _TARIFFS | _POWER | _EVENTS | {"TEXT_MESSAGE": None} | _VOLT_AMP | _PHASES
_SMARTY = _V5 | {
    "LUXEMBOURG_EQUIPMENT_IDENTIFIER": None,
    "ELECTRICITY_IMPORTED_TOTAL": "kWh",
    "ELECTRICITY_EXPORTED_TOTAL": "kWh",
}
_REACTIVE_PHASES = {
    f"INSTANTANEOUS_REACTIVE_POWER_L{n}_{d}": "kvar"
    for n in (1, 2, 3)
    for d in ("POSITIVE", "NEGATIVE")
}
_REACTIVE_AT = {
    f"ELECTRICITY_REACTIVE_{d}_{s}": "varh"
    for d in ("IMPORTED", "EXPORTED")
    for s in ("TOTAL", "TARIFF_1", "TARIFF_2")
}

# Top-level names (with units) a parsed telegram of each version must carry.
EXPECTED: dict[str, dict[str, str | None]] = {
    "2.2": {"EQUIPMENT_IDENTIFIER": None, "ACTUAL_TRESHOLD_ELECTRICITY": "kW"}
    | _TARIFFS
    | _POWER
    | {"ACTUAL_SWITCH_POSITION": None, "TEXT_MESSAGE_CODE": None, "TEXT_MESSAGE": None},
    "4": _HEAD
    | _TARIFFS
    | _POWER
    | _EVENTS
    | {"TEXT_MESSAGE_CODE": None, "TEXT_MESSAGE": None}
    | {f"INSTANTANEOUS_CURRENT_L{n}": "A" for n in (1, 2, 3)}
    | _PHASES,
    "4+": _V5,
    "5": _V5,
    "5B": {
        "BELGIUM_VERSION_INFORMATION": None,
        "BELGIUM_EQUIPMENT_IDENTIFIER": None,
        "P1_MESSAGE_TIMESTAMP": None,
        "BELGIUM_CURRENT_AVERAGE_DEMAND": "kW",
        "BELGIUM_MAXIMUM_DEMAND_MONTH": "kW",
        "BELGIUM_MAXIMUM_DEMAND_13_MONTHS": None,
        "ACTUAL_SWITCH_POSITION": None,
        "ACTUAL_TRESHOLD_ELECTRICITY": "kW",
        "FUSE_THRESHOLD_L1": "A",
        "TEXT_MESSAGE": None,
    }
    | _TARIFFS
    | _POWER
    | _PHASES
    | _VOLT_AMP,
    "5L": _SMARTY,
    "MSn": _SMARTY
    | _REACTIVE_PHASES
    | {
        "ELECTRICITY_REACTIVE_IMPORTED_TOTAL": "kvarh",
        "ELECTRICITY_REACTIVE_EXPORTED_TOTAL": "kvarh",
        "CURRENT_REACTIVE_IMPORTED": "kvar",
        "CURRENT_REACTIVE_EXPORTED": "kvar",
        "ACTUAL_TRESHOLD_ELECTRICITY": "kVA",
        "MSN_CT_RATIO": "A",
        "MSN_INSTANTANEOUS_APPARENT_POWER_POSITIVE": "kVA",
        "MSN_INSTANTANEOUS_APPARENT_POWER_NEGATIVE": "kVA",
        "MSN_TEXT_MESSAGE_2": None,
        "MSN_TEXT_MESSAGE_5": None,
    },
    "5S": {
        "P1_MESSAGE_TIMESTAMP": None,
        "ELECTRICITY_IMPORTED_TOTAL": "kWh",
        "ELECTRICITY_EXPORTED_TOTAL": "kWh",
        "ELECTRICITY_REACTIVE_IMPORTED_TOTAL": "kvarh",
        "ELECTRICITY_REACTIVE_EXPORTED_TOTAL": "kvarh",
    }
    | _POWER
    | _PHASES
    | _REACTIVE_PHASES
    | _VOLT_AMP,
    "Q3D": {
        "Q3D_EQUIPMENT_IDENTIFIER": None,
        "ELECTRICITY_IMPORTED_TOTAL": "kWh",
        "ELECTRICITY_EXPORTED_TOTAL": "kWh",
        "INSTANTANEOUS_ACTIVE_POWER_L1_POSITIVE": "W",
        "INSTANTANEOUS_ACTIVE_POWER_L2_POSITIVE": "W",
        "INSTANTANEOUS_ACTIVE_POWER_L3_POSITIVE": "W",
        "CURRENT_ELECTRICITY_USAGE": "W",
        "Q3D_EQUIPMENT_STATE": None,
        "Q3D_EQUIPMENT_SERIALNUMBER": None,
    },
    "5EONHU": {
        "P1_MESSAGE_TIMESTAMP": None,
        "COSEM_LOGICAL_DEVICE_NAME": None,
        "EQUIPMENT_SERIAL_NUMBER": None,
        "ACTUAL_SWITCH_POSITION": None,
        "ACTUAL_TRESHOLD_ELECTRICITY": "kW",
        "ELECTRICITY_IMPORTED_TOTAL": "kWh",
        "ELECTRICITY_EXPORTED_TOTAL": "kWh",
        "ELECTRICITY_USED_TARIFF_3": "kWh",
        "ELECTRICITY_USED_TARIFF_4": "kWh",
        "ELECTRICITY_DELIVERED_TARIFF_3": "kWh",
        "ELECTRICITY_DELIVERED_TARIFF_4": "kWh",
        "ELECTRICITY_REACTIVE_IMPORTED_TOTAL": "kvarh",
        "ELECTRICITY_REACTIVE_EXPORTED_TOTAL": "kvarh",
        "ELECTRICITY_COMBINED": "kWh",
        "INSTANTANEOUS_POWER_FACTOR_TOTAL": None,
        "FREQUENCY": "Hz",
        "TEXT_MESSAGE": None,
    }
    | {f"ELECTRICITY_REACTIVE_TOTAL_Q{n}": "kvarh" for n in (1, 2, 3, 4)}
    | {f"INSTANTANEOUS_POWER_FACTOR_L{n}": None for n in (1, 2, 3)}
    | {f"INSTANTANEOUS_REACTIVE_POWER_Q{n}": "kvar" for n in (1, 2, 3, 4)}
    | {f"FUSE_THRESHOLD_L{n}": "A" for n in (1, 2, 3)}
    | _TARIFFS
    | _POWER
    | _VOLT_AMP,
    "ISKRA_IE": {
        "EQUIPMENT_IDENTIFIER_GAS": None,
        "P1_MESSAGE_TIMESTAMP": None,
        "ACTUAL_SWITCH_POSITION": None,
        "TEXT_MESSAGE": None,
        "EQUIPMENT_IDENTIFIER": None,
    }
    | _TARIFFS
    | _POWER
    | _PHASES
    | _VOLT_AMP,
    "SAGEMCOM_T210_D_R": {
        "P1_MESSAGE_HEADER": None,
        "P1_MESSAGE_TIMESTAMP": None,
        "ELECTRICITY_IMPORTED_TOTAL": "Wh",
        "ELECTRICITY_USED_TARIFF_1": "Wh",
        "ELECTRICITY_USED_TARIFF_2": "Wh",
        "ELECTRICITY_EXPORTED_TOTAL": "Wh",
        "ELECTRICITY_DELIVERED_TARIFF_1": "Wh",
        "ELECTRICITY_DELIVERED_TARIFF_2": "Wh",
        "CURRENT_ELECTRICITY_USAGE": "W",
        "CURRENT_ELECTRICITY_DELIVERY": "W",
        "CURRENT_REACTIVE_IMPORTED": "var",
        "CURRENT_REACTIVE_EXPORTED": "var",
    }
    | _REACTIVE_AT,
}
# Objects of a version's dsmr_parser specification that real meters of that kind do not send.
NOT_SENT = {
    "4+": {"ELECTRICITY_IMPORTED_TOTAL"},
    "5": {"ELECTRICITY_IMPORTED_TOTAL"},
    "5S": {"P1_MESSAGE_HEADER"},
    "Q3D": {"CURRENT_ELECTRICITY_DELIVERY"},
}
# dsmr_parser names of the M-Bus lines, per version (NL DSMR 2.2/4 use the old names).
MBUS_NAMES = {
    "2.2": ("DEVICE_TYPE", "EQUIPMENT_IDENTIFIER_GAS", "GAS_METER_READING"),
    "4": ("DEVICE_TYPE", "EQUIPMENT_IDENTIFIER_GAS", "HOURLY_GAS_METER_READING"),
}
_MBUS_DEFAULT = ("MBUS_DEVICE_TYPE", "MBUS_EQUIPMENT_IDENTIFIER", "MBUS_METER_READING")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_version_parses_with_names_and_units(version: str) -> None:
    meter = make_meter(version, seed=7)
    meter.step(5 * 3600 + 17)
    rendered = meter.render()
    telegram = parse(meter, meter.wrap(rendered.text))
    for name, unit in EXPECTED[version].items():
        obj = getattr(telegram, name)
        if isinstance(obj, list):  # the Belgian 13-month history
            assert {item.unit for item in obj} == {"kW"}
        else:
            assert obj.unit == unit, name
    assert_matches(telegram, rendered, meter)
    # every object of the specification is sent, except those real meters leave out
    spec_names = {o["value_name"] for o in meter.telegram_specification()["objects"]}
    mbus_names = set(MBUS_NAMES.get(version, _MBUS_DEFAULT))
    mbus_names |= {"MBUS_VALVE_POSITION", "MSN_MBUS_SWITCH_POSITION", "VALVE_POSITION_GAS"}
    if not meter.house.mbus:
        mbus_names = set()
    seen = {name for name, _ in telegram} | mbus_names
    assert spec_names - seen == NOT_SENT.get(version, set())


@pytest.mark.parametrize("version", [v for v in ALL_VERSIONS if VERSIONS[v].crc])
def test_crc_is_checked_by_both_implementations(version: str) -> None:
    text = make_meter(version, seed=3).telegram()
    body, crc = text[: text.index("!") + 1], text[text.index("!") + 1 : -2]
    assert re.fullmatch(r"[0-9A-F]{4}", crc)
    assert crc16(body) == int(crc, 16) == TelegramParser.crc16(body)
    TelegramParser.validate_checksum(text)
    broken = text.replace("1-0:", "1-1:", 1)
    with pytest.raises(InvalidChecksumError):
        TelegramParser.validate_checksum(broken)


@pytest.mark.parametrize("version", ["2.2", "Q3D"])
def test_versions_without_crc_end_with_a_bare_bang(version: str) -> None:
    text = make_meter(version).telegram()
    assert text.startswith("/") and text.endswith("\r\n!\r\n")


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=126), max_size=300))
def test_crc16_agrees_with_dsmr_parser(data: str) -> None:
    assert crc16(data) == TelegramParser.crc16(data) == crc16(data.encode())


def test_crc_helpers() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the CRC-16/ARC check value
    assert with_crc("/X!") == f"/X!{crc16('/X!'):04X}\r\n"
    with pytest.raises(ValueError, match="from '/' through '!'"):
        with_crc("no telegram")


@pytest.mark.parametrize(
    ("version", "mbus", "types"),
    [
        ("5", ("gas", "water", "heat", "cooling"), (3, 7, 4, 10)),
        ("4+", ("gas", "warm_water"), (3, 6)),
        ("5B", ("gas", "water", "gas"), (3, 7, 3)),
        ("5L", ("gas", "heat_inlet"), (3, 12)),
        ("MSn", ("water",), (7,)),
        ("4", ("gas", "water"), (3, 7)),
        ("2.2", ("gas",), (3,)),
    ],
)
def test_mbus_channels_group_into_devices(
    version: str, mbus: tuple[str, ...], types: tuple[int, ...]
) -> None:
    meter = make_meter(version, mbus=mbus, mbus_ids=["GAS-ONE"])
    meter.step(7200)
    telegram = parse(meter, meter.payload())
    devices = telegram.MBUS_DEVICES
    assert [d.channel_id for d in devices] == list(range(1, len(mbus) + 1))
    type_name, id_name, reading_name = MBUS_NAMES.get(version, _MBUS_DEFAULT)
    for device, kind, device_type, channel in zip(
        devices, mbus, types, meter.house.mbus, strict=True
    ):
        assert int(getattr(device, type_name).value) == device_type
        assert getattr(device, id_name).value == hex_id(channel.identifier)
        reading = getattr(device, reading_name)
        assert reading.value == Decimal(f"{channel.reading:09.3f}")
        assert reading.unit == ("m3" if kind in {"gas", "water", "warm_water"} else "GJ")
        assert channel.reading_at.minute == channel.reading_at.second == 0
    assert meter.house.mbus[0].identifier == "GAS-ONE"


def test_belgian_gas_uses_24_2_3_and_history_skips_invalid_slot() -> None:
    meter = make_meter("5B", mbus=("gas", "water"))
    text = meter.telegram()
    assert "0-1:24.2.3(" in text and "0-2:24.2.1(" in text and "0-1:24.4.0(1)" in text
    assert "(632525252525W)" in text
    history = parse(meter, text).BELGIUM_MAXIMUM_DEMAND_13_MONTHS
    assert len(history) == 13
    assert history[0].occurred is None  # the invalid slot parses as no timestamp
    assert all(isinstance(p.occurred, datetime) for p in history[1:])
    assert [p.datetime for p in history] == sorted(p.datetime for p in history)


def test_v2_2_gas_two_line_form() -> None:
    text = make_meter("2.2").telegram()
    assert re.search(
        r"0-1:24\.3\.0\(\d{12}\)\(00\)\(60\)\(1\)\(0-1:24\.2\.1\)\(m3\)\r\n\(\d{5}\.\d{3}\)\r\n",
        text,
    )
    assert "1-0:1.8.1(" in text and "0-0:1.0.0" not in text


def test_text_message_and_identifiers_are_hex_ascii() -> None:
    meter = make_meter("5", equipment_id="E0053000012345678", text_message="Hello P1")
    telegram = parse(meter, meter.telegram())
    assert bytes.fromhex(telegram.EQUIPMENT_IDENTIFIER.value).decode() == "E0053000012345678"
    assert bytes.fromhex(telegram.TEXT_MESSAGE.value).decode() == "Hello P1"


def test_power_failure_log_has_entries() -> None:
    meter = make_meter("5")
    log = parse(meter, meter.telegram()).POWER_EVENT_FAILURE_LOG
    assert log.buffer_length == 2
    for item, failure in zip(log.buffer, meter.house.failure_log, strict=True):
        assert item.value == failure.duration_s
        assert item.datetime == failure.end


def test_dsmr5_currents_are_integer_amps() -> None:
    meter = make_meter("5", seed=4, start=datetime(2024, 1, 15, 19, 0))
    for _ in range(20):
        meter.step(60)
        telegram = parse(meter, meter.telegram())
        for n in (1, 2, 3):
            value = getattr(telegram, f"INSTANTANEOUS_CURRENT_L{n}").value
            assert value == value.to_integral_value()


@pytest.mark.parametrize("version", ["MSn", "SAGEMCOM_T210_D_R"])
def test_encrypted_frames(version: str) -> None:
    meter = make_meter(
        version, auth_key=AUTH_KEY, system_title="5341473132333435", invocation_counter=41
    )
    first, second = meter.payload(), meter.payload()
    assert first[0] == 0xDB and first[1] == 8 and first[2:10] == b"SAG12345"
    assert first[10] == 0x82 and int.from_bytes(first[11:13], "big") == len(first) - 13
    assert first[13] == 0x30 and int.from_bytes(first[14:18], "big") == 41
    assert int.from_bytes(second[14:18], "big") == 42
    # verified with the right authentication key, and unverified (as Home Assistant does)
    assert parse(meter, first, authentication_key=AUTH_KEY).P1_MESSAGE_HEADER.value
    assert parse(meter, second).P1_MESSAGE_TIMESTAMP.value
    parser = TelegramParser(meter.telegram_specification())
    with pytest.raises(DecryptionError):
        parser.parse(first.hex(), encryption_key=AUTH_KEY, authentication_key=None)
    with pytest.raises(DecryptionError):
        parser.parse(first.hex(), encryption_key=ENC_KEY, authentication_key=ENC_KEY)


def test_msn_default_auth_key_is_the_public_luxmetering_key() -> None:
    meter = make_meter("MSn")
    parser = TelegramParser(meter.telegram_specification())
    # the MSN specification embeds the public key: an empty authentication key verifies
    telegram = parser.parse(meter.payload().hex(), encryption_key=ENC_KEY, authentication_key="")
    assert lookup(telegram, "ELECTRICITY_IMPORTED_TOTAL").unit == "kWh"


def test_meter_argument_errors() -> None:
    with pytest.raises(ValueError, match="unknown DSMR version"):
        Meter("6")
    with pytest.raises(ValueError, match="encrypted"):
        Meter("MSn")
    with pytest.raises(ValueError, match="not encrypted"):
        Meter("5", key=ENC_KEY)
    with pytest.raises(ValueError, match="32 hex digits"):
        Meter("MSn", key="00")
    with pytest.raises(ValueError, match="32 hex digits"):
        parse_key("zz")
    with pytest.raises(ValueError, match="unknown M-Bus kind"):
        Meter("5", mbus=("petrol",))
    with pytest.raises(ValueError, match="M-Bus channel"):
        Meter("5", mbus=("gas",) * 5)
    with pytest.raises(ValueError, match="gas meter only"):
        Meter("2.2", mbus=("water",))
    with pytest.raises(ValueError, match="16 bytes"):
        DlmsEncryptor(b"1", b"2", b"12345678")
    with pytest.raises(ValueError, match="8 bytes"):
        DlmsEncryptor(bytes(16), bytes(16), b"1")


def test_header_and_versions_table() -> None:
    assert (
        make_meter("5", header="/XMX5LGBBFG1012463806")
        .telegram()
        .startswith("/XMX5LGBBFG1012463806\r\n\r\n")
    )
    assert VERSIONS["2.2"].serial.framing == "7E1" and VERSIONS["2.2"].serial.baudrate == 9600
    assert VERSIONS["4"].serial.framing == "7E1" and VERSIONS["4+"].serial.baudrate == 115200
    assert {VERSIONS[v].serial.framing for v in ("5", "5B", "5L", "5S", "Q3D", "MSn")} == {"8N1"}
