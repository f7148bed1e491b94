"""One rule for ports: what may be opened as a meter's port, how it is opened, how it is shown.

A port is a serial device or a serialx URL of a kind that carries a meter's serial line:

* a path that resolves to a serial tty under /dev (/dev/ttyUSB0, /dev/ttyAMA0, links such as
  /dev/serial/by-id/usb-FTDI_...; pseudo-terminals of ser2net or socat too); COMn on Windows;
* socket://host:port (ser2net, ESP P1 bridges), rfc2217://host:port, esphome://host/... and
  esphome-hass://... (ESPHome serial proxies).

Anything else is refused before anything is opened: a regular file is never read, and a
character device that is not a serial tty (/dev/watchdog arms a hardware watchdog when opened,
/dev/zero streams zeros) is never opened. `async_open_port` is the only place that opens a port;
every error on the way comes out as `CannotConnect` (`InvalidPort` when the rule refused it).

Port URLs may carry secrets (esphome://host/?key=..., rfc2217://user:password@host): whatever
shows or logs a port goes through `redact_port`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
import contextlib
import os
import re
import stat
from typing import Any
from urllib.parse import unquote_plus

from homeassistant.const import CONF_HOST, CONF_PORT
from serialx import create_serial_connection

# serialx URL schemes that make sense for a meter (its other ones: tcp:// is socket://'s alias
# without the name users know; device://, linux:// and the like name a backend, not a port).
URL_SCHEMES = frozenset({"socket", "rfc2217", "esphome", "esphome-hass"})
# Query parameters of a port URL that hold secrets (serialx's ESPHome backend reads these).
SECRET_PARAMS = frozenset({"key", "password", "noise_psk"})
REDACTED = "**REDACTED**"
# How long closing a port may take before the next open is tried anyway (seconds).
CLOSE_WAIT = 1.0
# Kinds of tty driver (/proc/tty/drivers) a meter can be on: UARTs and USB serial adapters
# ("serial"), and pseudo-terminals ("pty:slave", e.g. ser2net or socat exporting a remote port).
SERIAL_TTY_KINDS = frozenset({"serial", "pty:slave"})
TTY_DRIVERS = "/proc/tty/drivers"
WINDOWS = os.name == "nt"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_COM_PORT = re.compile(r"(?:\\\\\.\\)?COM[1-9][0-9]*", re.IGNORECASE)
# A query parameter as serialx reads one: its value runs to the next & or to the fragment.
_PARAM = re.compile(r"[?&](?P<name>[^=&#?]*)=(?P<value>[^&#]*)")


class CannotConnect(Exception):
    """The port or host cannot be opened."""


class InvalidPort(CannotConnect):
    """Not a serial device or a supported URL: refused without being opened."""


def port_url(data: Mapping[str, Any]) -> str:
    """Return the serialx URL for an entry: a device path or socket://host:port.

    Entries made by core's older network flow store `host` and an integer `port`; they are
    translated here, in memory only, so the stored entry stays as core wrote it.
    """
    if host := data.get(CONF_HOST):
        return f"socket://{host}:{data[CONF_PORT]}"
    return str(data[CONF_PORT])


def check_port(port: str) -> None:
    """Raise InvalidPort unless `port` is a device path or a URL of a supported scheme.

    This checks the text only; `check_device` looks at what a path names.
    """
    if not port or port != port.strip() or not port.isprintable():
        raise InvalidPort("not a device path or URL")
    if scheme := _SCHEME.match(port):
        if scheme.group(1).lower() not in URL_SCHEMES:
            raise InvalidPort(
                f"{scheme.group(1)}:// is not a serial port URL "
                "(use socket://, rfc2217://, esphome:// or esphome-hass://)"
            )
        return
    if WINDOWS:
        if not _COM_PORT.fullmatch(port):
            raise InvalidPort("not a COM port")
    elif not port.startswith("/"):
        raise InvalidPort("not a device path (it starts with /dev/)")


def check_device(path: str) -> None:
    """Raise InvalidPort unless `path` resolves to a serial tty under /dev (blocking I/O).

    A path that does not exist (yet) raises CannotConnect: an unplugged adapter is retried.
    """
    if WINDOWS:
        return
    try:
        real = os.path.realpath(path, strict=True)
        info = os.stat(real)
    except ValueError as err:  # a NUL byte
        raise InvalidPort("not a device path") from err
    except OSError as err:
        raise CannotConnect(err.strerror or type(err).__name__) from err
    if not real.startswith("/dev/") or not stat.S_ISCHR(info.st_mode):
        raise InvalidPort("not a serial device (not a character device under /dev)")
    if not _is_serial_tty(info.st_rdev):
        raise InvalidPort("not a serial device (a character device, but not a serial tty)")


def _is_serial_tty(device: int) -> bool:
    """Whether a character device number belongs to a serial or pseudo-terminal tty driver.

    Linux lists its tty drivers, with their device numbers, in /proc/tty/drivers (read each
    time: a USB serial driver loads when the first adapter is plugged in). Where that list does
    not exist, any character device under /dev is taken.
    """
    try:
        with open(TTY_DRIVERS, encoding="ascii", errors="replace") as drivers:
            lines = drivers.read().splitlines()
    except OSError:
        return True
    major, minor = os.major(device), os.minor(device)
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[-1] not in SERIAL_TTY_KINDS or fields[-3] != str(major):
            continue
        low, _, high = fields[-2].partition("-")
        if low.isdigit() and int(low) <= minor <= int(high if high.isdigit() else low):
            return True
    return False


async def async_check_port(url: str) -> None:
    """Raise InvalidPort unless the port rule allows `url`; CannotConnect for a missing device."""
    check_port(url)
    if not _SCHEME.match(url):
        await asyncio.get_running_loop().run_in_executor(None, check_device, url)


async def async_open_port(
    url: str, factory: Callable[[], asyncio.Protocol], settings: Mapping[str, Any]
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    """Open a port with serialx after the port rule allowed it; raise CannotConnect only.

    Every failure on the way (a missing device, a refused connection, a bad URL, a host name
    that does not resolve, an ESPHome proxy that is not loaded, whatever a serialx backend
    raises) becomes CannotConnect; its message never carries the URL's secrets.
    """
    await async_check_port(url)
    loop = asyncio.get_running_loop()
    try:
        return await create_serial_connection(
            loop, factory, **{**settings, "url": url, "low_latency": False}
        )
    except Exception as err:
        message = str(err) if redact_port(url) == url else ""  # it might quote a secret
        raise CannotConnect(message or type(err).__name__) from err


async def async_close_port(transport: asyncio.BaseTransport, closed: Awaitable[object]) -> None:
    """Close a port and wait until its protocol saw it go (`closed`), at most CLOSE_WAIT s.

    A transport closes on a later turn of the event loop; whoever opens the port next (the
    entry's setup, right after the config flow read a telegram) must not find it still open
    (serialx locks a serial port while it is open).
    """
    transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT):
            await closed


def redact_port(port: str) -> str:
    """A port URL fit to show or log: user:password and secret query values replaced.

    Everything between the scheme and the URL's last @ is taken for user:password, whatever it
    holds (a password may hold #, / or ?). Query parameter names are compared as serialx reads
    them (percent-decoded, tabs and line breaks removed), so `k%65y=` is a key too.
    """
    scheme = _SCHEME.match(port)
    if scheme is None:
        return port
    at = port.rfind("@", scheme.end())
    shown_from = at + 1 if at >= 0 else scheme.end()
    parts = [port[: scheme.end()], f"{REDACTED}@" if at >= 0 else ""]
    # Secret values are looked for in the whole URL: one holding an @ would show its tail.
    for param in _PARAM.finditer(port, scheme.end()):
        begin, end = param.span("value")
        name = unquote_plus(re.sub(r"[\t\r\n]", "", param["name"]))
        if end >= shown_from and name in SECRET_PARAMS:
            parts += [port[shown_from : max(begin, shown_from)], REDACTED]
            shown_from = end
    parts.append(port[shown_from:])
    return "".join(parts)
