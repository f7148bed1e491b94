"""Serve the meter's telegrams to other programs over TCP, the way ser2net does (raw mode).

A P1 port can be read by one program; this server lets every other DSMR tool read the same
meter at ``HOST:PORT`` (``socket://HOST:PORT`` for dsmr_parser, "network" in DSMR-reader or in
another Home Assistant). Free of Home Assistant: the reader hands it each frame it accepted,
:meth:`RebroadcastServer.publish`, and it writes those bytes, unchanged, to every client.

What it promises:

* Frames go out whole and byte for byte as published (CRC line included). A client that
  connects while a telegram is on its way gets the next whole frame, never the tail of one,
  and nothing at all before that: no greeting, no replay of the last telegram, no keep-alive
  bytes. While the meter is silent, nothing is sent.
* :meth:`~RebroadcastServer.publish` never waits: it hands each client's transport the frame
  and returns. A client that does not keep up is dropped as soon as more than ``max_buffer``
  bytes wait for it in this process (on top of its socket's send buffer, kept small with
  ``SO_SNDBUF``), so a stalled client costs the reader and the other clients nothing, and
  memory stays bounded per client.
* Clients cannot reach the meter, nor keep this process busy: what a client sends is thrown
  away, one read at most per ``READ_INTERVAL`` seconds; TCP slows a client that sends more to
  that pace. A client that ends its side (EOF) or resets the connection is disconnected, as
  ser2net does (one that was sending: once that is read); one that vanished without a word
  (power cut, cable pulled) is found out by TCP keepalive in about a minute, even while the
  meter is silent.
* At most ``max_clients`` clients; one more is closed right after it connects (a plain close,
  no data), and a slot is free again as soon as a client leaves.
* :attr:`~RebroadcastServer.clients` counts connected clients; listeners added with
  :meth:`~RebroadcastServer.add_listener` are called whenever it changes.
* :meth:`~RebroadcastServer.start` raises :class:`CannotListen` (with a :class:`ListenFailure`
  reason to translate) when the address cannot be bound; :meth:`~RebroadcastServer.stop`
  closes every client and releases the port.

The bytes are opaque here: plain telegrams or the DLMS frames of an encrypted meter alike; the
caller decides which frames to publish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
import errno
import logging
import os
import socket
from typing import Final

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_CLIENTS",
    "KEEPALIVE_COUNT",
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "READ_INTERVAL",
    "SEND_BUFFER",
    "CannotListen",
    "ListenFailure",
    "RebroadcastServer",
    "RebroadcastStats",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_MAX_CLIENTS: Final = 5
# Bytes that may wait for one client in this process before it counts as stalled: a few
# telegrams (a DSMR 5 telegram is ~0.9 KiB, a Belgian one with its peak history ~1.5 KiB).
DEFAULT_MAX_BUFFER: Final = 8 * 1024
# Each client socket's kernel send buffer (Linux doubles it): small, so a stalled client is
# noticed after a few dozen telegrams instead of the megabytes a tuned buffer may grow to.
SEND_BUFFER: Final = 8 * 1024
# After each read from a client (up to asyncio's 256 KiB, thrown away), reading pauses this
# long: a client that sends without pause costs one read a second. Not paused for good: a paused
# transport sees no EOF, RST or keepalive failure, so a client gone while the meter is silent
# would hold its slot until the next telegrams.
READ_INTERVAL: Final = 1.0
# TCP keepalive on each client socket (the options the platform has): once nothing has crossed
# the connection for IDLE seconds, COUNT probes INTERVAL seconds apart; a client that vanished
# without closing is dropped after them, about a minute in all.
KEEPALIVE_IDLE: Final = 30
KEEPALIVE_INTERVAL: Final = 10
KEEPALIVE_COUNT: Final = 3
_KEEPALIVE_OPTIONS: Final = [
    (getattr(socket, name), value)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    )
    if hasattr(socket, name)
]


class ListenFailure(StrEnum):
    """Why the server cannot listen; the values are meant as translation keys."""

    ADDRESS_IN_USE = "address_in_use"
    ADDRESS_NOT_AVAILABLE = "address_not_available"
    PERMISSION_DENIED = "permission_denied"
    INVALID_ADDRESS = "invalid_address"
    CANNOT_LISTEN = "cannot_listen"


class CannotListen(Exception):
    """The server cannot bind its address; ``reason`` says why, ``str()`` says it in English."""

    def __init__(self, reason: ListenFailure, host: str, port: int, detail: str) -> None:
        """Describe a failure to listen on ``host:port``."""
        super().__init__(f"Cannot listen on {_address(host, port)}: {detail}")
        self.reason = reason
        self.detail = detail
        self.host = host
        self.port = port


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_failure(err: OSError) -> ListenFailure:
    if isinstance(err, socket.gaierror):
        return ListenFailure.INVALID_ADDRESS
    if err.errno == errno.EADDRINUSE:
        return ListenFailure.ADDRESS_IN_USE
    if err.errno in (errno.EACCES, errno.EPERM):
        return ListenFailure.PERMISSION_DENIED
    if err.errno == errno.EADDRNOTAVAIL or err.errno is None:
        # asyncio skips an address it cannot assign (EADDRNOTAVAIL) and, when none is left,
        # raises a bare OSError("could not bind on any address out of ...").
        return ListenFailure.ADDRESS_NOT_AVAILABLE
    return ListenFailure.CANNOT_LISTEN


@dataclass(slots=True)
class RebroadcastStats:
    """Counters since the server was made (they survive stop and start)."""

    frames: int = 0  # frames published while the server was listening
    accepted: int = 0  # connections served
    refused: int = 0  # connections closed at once: max_clients reached
    dropped: int = 0  # clients dropped for not reading


class _Client(asyncio.Protocol):
    """One connection: receives frames, discards what it sends, is dropped when it stalls."""

    def __init__(self, server: RebroadcastServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self._resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]  # IPv6 adds flow info, scope
        self.peer = _address(str(host), int(port))
        self.server._connected(self)

    def data_received(self, data: bytes) -> None:
        """Discard what the client sent; read again in ``READ_INTERVAL`` seconds."""
        assert self.transport is not None
        self.transport.pause_reading()
        self._resume = asyncio.get_running_loop().call_later(
            READ_INTERVAL, self.transport.resume_reading
        )

    def eof_received(self) -> bool:
        """The client ended its side: close ours too (a half-open client is not served)."""
        return False

    def pause_writing(self) -> None:
        """More than ``max_buffer`` bytes wait for this client: it is not reading; drop it."""
        self.server._drop(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._resume is not None:
            self._resume.cancel()
        self.server._disconnected(self)


class RebroadcastServer:
    """A TCP server that writes every published frame to every connected client.

    ``port=0`` binds an ephemeral port (see :attr:`port` once started). ``host`` is the
    address to bind: ``127.0.0.1`` (this machine only), ``0.0.0.0`` (every IPv4 interface),
    ``::`` (every IPv6 interface) or one interface's address.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        """Configure the server; :meth:`start` binds the address."""
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.max_buffer = max_buffer
        self.stats = RebroadcastStats()
        self._server: asyncio.Server | None = None
        # Transports of the clients being served, in connection order: what publish() writes
        # to. A dropped client leaves at once; it is counted until its connection is lost.
        self._serving: dict[_Client, asyncio.Transport] = {}
        self._counted: set[_Client] = set()
        self._listeners: list[Callable[[], None]] = []
        self._refusing = False  # a refusal was logged; the next one is logged at debug

    @property
    def listening(self) -> bool:
        """Whether the server is started."""
        return self._server is not None

    @property
    def clients(self) -> int:
        """The number of connected clients."""
        return len(self._counted)

    @property
    def address(self) -> str:
        """``host:port`` as a client would dial it (``[host]:port`` for IPv6)."""
        return _address(self.host, self.port)

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever :attr:`clients` changes; return a function to stop."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    async def start(self) -> None:
        """Bind and listen (nothing happens when already listening); raise CannotListen."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Client(self), self.host, self.port, reuse_address=True
            )
        except OSError as err:
            # asyncio's message repeats the address; the system's text for the error does not.
            detail = os.strerror(err.errno) if err.errno else str(err)
            raise CannotListen(_listen_failure(err), self.host, self.port, detail) from err
        if not self.port:
            self.port = int(self._server.sockets[0].getsockname()[1])
        _LOGGER.debug("Re-broadcasting telegrams on %s", self.address)

    async def stop(self) -> None:
        """Stop listening, close every client and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for transport in list(self._serving.values()):
            # Politely, unless data still waits for the client: a close would wait for it.
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
        self._serving.clear()
        await server.wait_closed()  # until every connection_lost has run
        _LOGGER.debug("Stopped re-broadcasting on %s", self.address)

    def publish(self, frame: bytes) -> None:
        """Write one complete frame to every client now; never waits, never raises.

        A client whose unsent bytes exceed ``max_buffer`` is dropped inside the write (see
        ``_Client.pause_writing``); a client that went away is noticed by its transport.
        """
        if self._server is None or not frame:
            return
        self.stats.frames += 1
        for transport in tuple(self._serving.values()):
            transport.write(frame)

    # --- called by _Client -----------------------------------------------------------------

    def _connected(self, client: _Client) -> None:
        transport = client.transport
        assert transport is not None
        if self._server is None or len(self._counted) >= self.max_clients:
            self.stats.refused += 1
            log = _LOGGER.debug if self._refusing else _LOGGER.info
            log(
                "Refused re-broadcast client %s: %d clients already connected (the maximum)",
                client.peer,
                len(self._counted),
            )
            self._refusing = True
            transport.close()
            return
        self._refusing = False
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in _KEEPALIVE_OPTIONS:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
        transport.set_write_buffer_limits(high=self.max_buffer)
        self.stats.accepted += 1
        self._serving[client] = transport
        self._counted.add(client)
        _LOGGER.debug("Re-broadcast client %s connected", client.peer)
        self._changed()

    def _drop(self, client: _Client) -> None:
        transport = self._serving.pop(client, None)
        if transport is None:
            return
        self.stats.dropped += 1
        _LOGGER.info(
            "Dropped re-broadcast client %s: it stopped reading (%d bytes waiting)",
            client.peer,
            transport.get_write_buffer_size(),
        )
        transport.abort()  # frees the buffer now; connection_lost follows

    def _disconnected(self, client: _Client) -> None:
        self._serving.pop(client, None)
        if client in self._counted:
            self._counted.discard(client)
            _LOGGER.debug("Re-broadcast client %s disconnected", client.peer)
            self._changed()

    def _changed(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener()
            except Exception:
                _LOGGER.exception("Error in a re-broadcast client count listener")
