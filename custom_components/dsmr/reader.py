"""Connection to the meter: open the port, reconnect with backoff, report the connection.

`DsmrReader.async_run` keeps a connection open for as long as the entry is loaded, and calls
`on_connection` with a `ConnectionState` whenever the connection comes or goes. The port's
bytes go to the P1 protocol (protocol.py: framing, parsing, the silence watchdog), which hands
each telegram straight to the reader's `on_telegram` (the coordinator's `telegram_received`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from dsmr_parser import obis_references
from dsmr_parser.objects import Telegram

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_PROTOCOL,
    DEFAULT_EQUIPMENT_IDENTIFIER_OBIS,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_WATCHDOG_TIMEOUT,
    ENCRYPTED_DSMR_VERSIONS,
    EQUIPMENT_IDENTIFIER_OBIS,
    FIRST_RETRY_DELAY,
    LOGGER,
    RFXTRX_DSMR_PROTOCOL,
)
from .counters import ReaderStats
from .dsmr_library import library_parser, version_setup
from .ports import CannotConnect, async_open_port, port_url, redact_port
from .protocol import P1Protocol, RfxtrxP1Protocol, line_rate


class CannotCommunicate(Exception):
    """The port opened but no usable telegram arrived in time."""


class InvalidKey(Exception):
    """Telegrams arrive but cannot be decrypted with the configured key."""


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """The connection to the meter came up or went down."""

    connected: bool
    reason: str | None = None
    failures_in_a_row: int = 0


def equipment_identifier(telegram: Telegram, dsmr_version: str) -> str | None:
    """Return the electricity meter's equipment identifier from a telegram, if it has one."""
    name = EQUIPMENT_IDENTIFIER_OBIS.get(dsmr_version, DEFAULT_EQUIPMENT_IDENTIFIER_OBIS)
    obj = telegram.get(getattr(obis_references, name))
    value = getattr(obj, "value", None)
    return str(value) if value is not None else None


def gas_equipment_identifier(telegram: Telegram, dsmr_version: str) -> str | None:
    """Return the (DSMR 2.2/4) gas meter identifier from a telegram, if it has one."""
    if EQUIPMENT_IDENTIFIER_OBIS.get(dsmr_version) == "EQUIPMENT_IDENTIFIER_GAS":
        return None  # that line identifies the electricity meter on this version
    value = getattr(telegram.get(obis_references.EQUIPMENT_IDENTIFIER_GAS), "value", None)
    return str(value) if value is not None else None


async def async_open(
    data: Mapping[str, Any],
    callback: Callable[[Telegram], None],
    stats: ReaderStats,
    watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
    *,
    frame_sink: Callable[[bytes], None] | None = None,
    plain_frames: bool = False,
) -> tuple[asyncio.BaseTransport, P1Protocol]:
    """Open the meter's port with the version's serial settings; raise CannotConnect.

    (InvalidPort, a CannotConnect, when the port is no serial port: see ports.py.)
    `frame_sink` and `plain_frames`: see P1Protocol.
    """
    loop = asyncio.get_running_loop()
    version = data[CONF_DSMR_VERSION]
    rfxtrx = data.get(CONF_PROTOCOL) == RFXTRX_DSMR_PROTOCOL
    keys: dict[str, Any] = {}
    if version in ENCRYPTED_DSMR_VERSIONS:
        # No authentication key: decrypt without checking the GCM tag (the CRC still protects
        # against line errors), as core does for meters whose grid operator gives one key only.
        keys = {
            "encryption_key": data.get(CONF_ENCRYPTION_KEY, ""),
            "authentication_key": data.get(CONF_AUTHENTICATION_KEY) or None,
        }
    # dsmr_parser's own version table picks the telegram specification and serial settings.
    settings = version_setup(version)[1]
    factory = partial(
        RfxtrxP1Protocol if rfxtrx else P1Protocol,
        loop,
        library_parser(version),  # replaced by the protocol's own (see P1Protocol)
        telegram_callback=callback,
        stats=stats,
        watchdog_timeout=watchdog_timeout,
        frame_sink=frame_sink,
        plain_frames=plain_frames,
        **keys,
    )
    if not rfxtrx and not keys:  # plain telegrams straight off the meter's line
        factory = partial(factory, line_rate=line_rate(settings))
    transport, protocol = await async_open_port(port_url(data), factory, settings)
    assert isinstance(protocol, P1Protocol)
    return transport, protocol


class DsmrReader:
    """Keep a connection to the meter open and hand its telegrams on as they arrive."""

    def __init__(
        self,
        data: Mapping[str, Any],
        on_telegram: Callable[[Telegram], None],
        on_connection: Callable[[ConnectionState], None],
        stats: ReaderStats | None = None,
        *,
        reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL,
        watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT,
        frame_sink: Callable[[bytes], None] | None = None,
        plain_frames: bool = False,
    ) -> None:
        """Initialize the reader for an entry's data, counting into `stats`.

        `frame_sink` and `plain_frames`: see P1Protocol.
        """
        self.data = data
        self.on_telegram = on_telegram
        self.on_connection = on_connection
        self.reconnect_interval = reconnect_interval
        self.watchdog_timeout = watchdog_timeout
        self.sharing: dict[str, Any] = {"frame_sink": frame_sink, "plain_frames": plain_frames}
        self.stats = stats if stats is not None else ReaderStats()
        self.connected = False
        self.port = redact_port(port_url(data))  # as logs show it
        self._opened: tuple[asyncio.BaseTransport, P1Protocol] | None = None

    async def async_connect(self) -> None:
        """Open the port now (entry setup: can it be opened?); `async_run` reads from it.

        Raises CannotConnect (InvalidPort when the port rule refuses it); counts nothing.
        """
        self._opened = await async_open(
            self.data, self.on_telegram, self.stats, self.watchdog_timeout, **self.sharing
        )

    def close(self) -> None:
        """Close a connection `async_connect` opened that `async_run` never took."""
        if self._opened is not None:
            self._opened[0].close()
            self._opened = None

    async def async_run(self) -> None:
        """Connect, read until the connection drops, wait, and again; until cancelled."""
        delay = FIRST_RETRY_DELAY
        while True:
            telegrams_before = self.stats.telegrams
            opened, self._opened = self._opened, None
            try:
                transport, protocol = opened or await async_open(
                    self.data, self.on_telegram, self.stats, self.watchdog_timeout, **self.sharing
                )
            except CannotConnect as err:
                self.stats.connection_errors += 1
                self.stats.failures_in_a_row += 1
                self.stats.fault("connect", "Cannot open %s: %s", self.port, err)
                self._publish(False, str(err))
            else:
                await self._read_until_closed(transport, protocol)
            if self.stats.telegrams > telegrams_before:
                delay = FIRST_RETRY_DELAY
            await asyncio.sleep(delay)
            delay = min(delay * 2, max(self.reconnect_interval, FIRST_RETRY_DELAY))

    async def _read_until_closed(
        self, transport: asyncio.BaseTransport, protocol: P1Protocol
    ) -> None:
        self.stats.connects += 1
        if self.stats.connects > 1 or self.stats.connection_errors:
            LOGGER.info("Connected to %s again", self.port)
        self.stats.recovered("connect")
        self.stats.failures_in_a_row = 0
        self._publish(True)
        try:
            await protocol.wait_closed()
        finally:
            # Reached on a dropped connection, a watchdog timeout, or cancellation (unload).
            transport.close()
            reason = protocol.close_reason or "connection closed"
            if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                LOGGER.info("Connection to %s lost: %s", self.port, reason)
            self._publish(False, reason)

    def _publish(self, connected: bool, reason: str | None = None) -> None:
        if connected != self.connected or not connected:
            self.connected = connected
            self.on_connection(ConnectionState(connected, reason, self.stats.failures_in_a_row))
