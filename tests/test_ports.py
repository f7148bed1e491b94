"""The port rule, its opening function and URL redaction (connection.py), on real devices."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from custom_components.dsmr import connection
from custom_components.dsmr.connection import (
    CannotConnect,
    InvalidPort,
    async_open_port,
    check_device,
    check_port,
    redact_port,
)

from .conftest import MISSING_PORT


@pytest.mark.parametrize(
    "port",
    [
        "/dev/ttyUSB0",
        "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZQ3B-if00-port0",
        "socket://192.168.1.20:23",
        "SOCKET://p1reader.local:2001",
        "rfc2217://[::1]:2217",
        "esphome://p1.local:6053/?port_name=uart&key=abc",
        "esphome-hass://esphome/01JXYZ?port_name=P1",
    ],
)
def test_ports_the_rule_takes(port: str) -> None:
    check_port(port)


@pytest.mark.parametrize(
    "port",
    [
        "",
        " /dev/ttyUSB0",
        "/dev/tty\x00USB0",
        "/dev/tty\nUSB0",
        "ttyUSB0",
        "COM3",  # not on this (POSIX) machine
        "tcp://127.0.0.1:23",
        "file:///etc/passwd",
        "http://p1reader.local/",
        "loop://",
    ],
)
def test_ports_the_rule_refuses(port: str) -> None:
    with pytest.raises(InvalidPort):
        check_port(port)


def test_com_ports_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "WINDOWS", True)
    for port in ("COM3", "com12", r"\\.\COM10"):
        check_port(port)
        check_device(port)  # Windows has no device nodes to look at
    for port in ("/dev/ttyUSB0", "COM", "COM0", "LPT1"):
        with pytest.raises(InvalidPort):
            check_port(port)


def test_devices(tmp_path: Path) -> None:
    primary, secondary = os.openpty()
    try:
        tty = os.ttyname(secondary)
        link = tmp_path / "by-id" / "usb-P1-if00"
        link.parent.mkdir()
        link.symlink_to(tty)
        check_device(tty)
        check_device(str(link))  # a link anywhere, to a tty under /dev
        regular = tmp_path / "file"
        regular.write_text("x")
        for path in ("/dev/zero", "/dev/null", "/etc/passwd", str(regular), str(tmp_path), "/dev"):
            with pytest.raises(InvalidPort):
                check_device(path)
        with pytest.raises(CannotConnect) as missing:
            check_device(MISSING_PORT)
        assert type(missing.value) is CannotConnect  # not InvalidPort: it may be plugged in
        loop = tmp_path / "loop"
        loop.symlink_to(loop)
        with pytest.raises(CannotConnect):
            check_device(str(loop))
    finally:
        os.close(primary)
        os.close(secondary)


def test_without_a_tty_driver_list_any_character_device_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where /proc/tty/drivers does not exist (not Linux), the device type cannot be told."""
    monkeypatch.setattr(connection, "TTY_DRIVERS", "/proc/no-such-file")
    check_device("/dev/zero")
    with pytest.raises(InvalidPort):
        check_device("/etc/passwd")


async def test_open_errors_are_cannot_connect_without_secrets() -> None:
    with pytest.raises(CannotConnect) as err:
        await async_open_port(
            "esphome://:6053/?key=TOPSECRET", asyncio.Protocol, {"baudrate": 115200}
        )
    assert "TOPSECRET" not in str(err.value)
    with pytest.raises(CannotConnect, match="port"):  # serialx's own words, nothing secret
        await async_open_port("socket://127.0.0.1", asyncio.Protocol, {"baudrate": 115200})


@pytest.mark.parametrize(
    ("port", "shown"),
    [
        ("/dev/ttyUSB0", "/dev/ttyUSB0"),
        ("socket://127.0.0.1:23", "socket://127.0.0.1:23"),
        (
            "esphome://p1.local:6053/?port_name=uart&key=c2VjcmV0&password=pw",
            "esphome://p1.local:6053/?port_name=uart&key=**REDACTED**&password=**REDACTED**",
        ),
        ("esphome://p1.local?noise_psk=abc#x", "esphome://p1.local?noise_psk=**REDACTED**#x"),
        ("esphome://p1.local/?k%65y=abc", "esphome://p1.local/?k%65y=**REDACTED**"),
        ("rfc2217://user:pw@host:2217/x?y=1", "rfc2217://**REDACTED**@host:2217/x?y=1"),
        ("socket://a@b@host:1", "socket://**REDACTED**@host:1"),
        # A password holding what ends an authority: all up to the last @ is taken for it.
        ("rfc2217://user:p#ss@host:2217", "rfc2217://**REDACTED**@host:2217"),
        ("rfc2217://user:p/ss@host:2217", "rfc2217://**REDACTED**@host:2217"),
        ("rfc2217://user:p?ss@host:2217", "rfc2217://**REDACTED**@host:2217"),
        ("rfc2217://user:p@ss@host:2217", "rfc2217://**REDACTED**@host:2217"),
        ("socket://u:a#b/c?d@e@host:1/x?y=1", "socket://**REDACTED**@host:1/x?y=1"),
        # An @ in a query value: all up to it goes, and a secret value holding it all of it.
        ("esphome://u:p?key=k@host/?key=secret", "esphome://**REDACTED**@**REDACTED**"),
        (
            "esphome://p1.local/?key=abc@def&port_name=uart",
            "esphome://**REDACTED**@**REDACTED**&port_name=uart",
        ),
        (
            "esphome://p1.local/?port_name=a@b&key=abc",
            "esphome://**REDACTED**@b&key=**REDACTED**",
        ),
    ],
)
def test_redaction(port: str, shown: str) -> None:
    assert redact_port(port) == shown
