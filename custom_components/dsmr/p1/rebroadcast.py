"""Serve the meter's telegrams to other programs over TCP, the way ser2net does (raw mode).

Every accepted frame (`publish`, opaque bytes) goes to every client whole and byte for byte: one
that joins mid-telegram gets the next whole one; nothing is sent while the meter is silent. A
client with more than `max_buffer` bytes waiting is dropped, so a stalled one costs nobody
anything. What clients send is thrown away; one that closes or resets is let go at once, one that
vanished by TCP keepalive. At most `max_clients`: one more is closed as it connects.
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

_LOGGER = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_MAX_CLIENTS: Final = 5
# Bytes waiting for a client before it counts as stalled: a few telegrams (~0.9 KiB, Belgian 1.5).
DEFAULT_MAX_BUFFER: Final = 8 * 1024
# A client socket's kernel send buffer (Linux doubles it): small, so a stall shows within dozens
# of telegrams, not the megabytes a tuned buffer may grow to.
SEND_BUFFER: Final = 8 * 1024
# A client's data is read (up to 256 KiB, thrown away) at most once per READ_INTERVAL s. Not paused
# for good: a paused transport sees no EOF, RST or keepalive failure (a gone client keeps its slot).
READ_INTERVAL: Final = 1.0
# TCP keepalive (the options the platform has): after IDLE seconds of silence, COUNT probes
# INTERVAL apart drop a client that vanished without closing, about a minute in all.
KEEPALIVE_IDLE: Final = 30
KEEPALIVE_INTERVAL: Final = 10
KEEPALIVE_COUNT: Final = 3


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
        self.reason, self.detail = reason, detail


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
        # asyncio skips an address it cannot assign; with none left: a bare OSError (errno None).
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
    """One connection: gets frames, its data thrown away; dropped if stalled, closed at its EOF."""

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
        self.server._connected(self, transport)

    def data_received(self, data: bytes) -> None:
        """Discard what the client sent; read again in ``READ_INTERVAL`` seconds."""
        assert self.transport is not None
        self.transport.pause_reading()
        self._resume = asyncio.get_running_loop().call_later(
            READ_INTERVAL, self.transport.resume_reading
        )

    def pause_writing(self) -> None:
        """More than ``max_buffer`` bytes wait for this client: it is not reading; drop it."""
        self.server._drop(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._resume is not None:
            self._resume.cancel()
        self.server._disconnected(self)


class RebroadcastServer:
    """A TCP server that writes every published frame to every connected client.

    ``host``: ``127.0.0.1`` (this machine), ``0.0.0.0``/``::`` (every IPv4/IPv6 interface) or one
    interface's address; ``port=0`` binds an ephemeral one (:attr:`port` once started).
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
        self.host, self.port = host, port
        self.max_clients, self.max_buffer = max_clients, max_buffer
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
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def start(self) -> None:
        """Bind and listen (nothing happens when already listening); raise CannotListen."""
        if self._server is not None:
            return
        try:
            self._server = await asyncio.get_running_loop().create_server(
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
        for transport in list(self._serving.values()):  # politely, unless data waits for it
            if transport.get_write_buffer_size():
                transport.abort()  # (a close would wait for the data)
            else:
                transport.close()
        self._serving.clear()
        await server.wait_closed()  # until every connection_lost has run
        _LOGGER.debug("Stopped re-broadcasting on %s", self.address)

    def publish(self, frame: bytes) -> None:
        """Write one whole frame to every client now (never waits or raises; stalled: dropped)."""
        if self._server is None or not frame:
            return
        self.stats.frames += 1
        for transport in tuple(self._serving.values()):
            transport.write(frame)

    def _connected(self, client: _Client, transport: asyncio.Transport) -> None:
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
        for name, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
            ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
        transport.set_write_buffer_limits(high=self.max_buffer)
        self.stats.accepted += 1
        self._serving[client] = transport
        self._counted.add(client)
        _LOGGER.debug("Re-broadcast client %s connected", client.peer)
        self._changed()

    def _drop(self, client: _Client) -> None:
        if (transport := self._serving.pop(client, None)) is None:
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
