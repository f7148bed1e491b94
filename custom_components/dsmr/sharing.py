"""Sharing the meter: the re-broadcast server (p1/rebroadcast.py) while the entry is loaded.

It starts in the background, retrying with backoff (at boot an interface address may not exist
yet). A failure never fails the entry (the meter must still be read): one warning line and a
repair issue, gone when the port opens, on unload, and when sharing is turned off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import contextlib
from dataclasses import dataclass
import ipaddress
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers import issue_registry as ir, selector
import probatio as vol

from .connection import FIRST_RETRY_DELAY, redact_port
from .const import (
    CONF_DSMR_VERSION,
    CONF_REBROADCAST,
    CONF_REBROADCAST_DECRYPTED,
    CONF_REBROADCAST_HOST,
    CONF_REBROADCAST_MAX_CLIENTS,
    CONF_REBROADCAST_PORT,
    DEFAULT_REBROADCAST_PORT,
    DOMAIN,
    ENCRYPTED_DSMR_VERSIONS,
    LOGGER,
    MAX_REBROADCAST_CLIENTS,
)
from .p1.rebroadcast import (
    DEFAULT_HOST,
    DEFAULT_MAX_CLIENTS,
    CannotListen,
    ListenFailure,
    RebroadcastServer,
)

MAX_RETRY_DELAY: Final = 60.0  # s: start attempts 1, 2, 4 ... s apart, at most this far


@dataclass(frozen=True, slots=True)
class SharingConfig:
    """Where and how a meter is shared."""

    host: str
    port: int
    max_clients: int
    decrypted: bool  # an encrypted meter's plain telegrams instead of its frames as received


def _issue_id(entry: ConfigEntry) -> str:
    return f"rebroadcast_cannot_listen_{entry.entry_id}"


class Sharing:
    """A loaded entry's re-broadcast server, started in the background, stopped on unload."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, config: SharingConfig) -> None:
        self.hass = hass
        self.entry = entry
        self.config = config
        self.server = RebroadcastServer(config.host, config.port, max_clients=config.max_clients)
        # The start under way: unload waits for it (cancelled halfway, asyncio's create_server
        # would leave its listening socket behind) and then stops the server.
        self._starting: asyncio.Future[None] | None = None

    @callback
    def async_start(self) -> None:
        """Start listening in the entry's background; stop with the entry."""
        self.entry.async_on_unload(self.async_stop)
        self.entry.async_create_background_task(self.hass, self.async_run(), "dsmr re-broadcast")

    async def async_run(self) -> None:
        """Start the server; on failure say so once and retry until it starts or unload."""
        delay, failed = FIRST_RETRY_DELAY, False
        while True:
            self._starting = asyncio.ensure_future(self.server.start())
            try:
                await asyncio.shield(self._starting)
            except CannotListen as err:
                if not failed:
                    address = self.server.address
                    LOGGER.warning(
                        "Cannot share the meter on %s: %s; retrying", address, err.detail
                    )
                    ir.async_create_issue(
                        self.hass,
                        DOMAIN,
                        _issue_id(self.entry),
                        is_fixable=False,
                        is_persistent=False,
                        severity=ir.IssueSeverity.WARNING,
                        translation_key="rebroadcast_cannot_listen",
                        translation_placeholders={
                            "title": redact_port(self.entry.title),
                            "address": address,
                            "error": err.detail,
                        },
                    )
                    failed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if failed:
                LOGGER.info("Sharing the meter on %s", self.server.address)
            ir.async_delete_issue(self.hass, DOMAIN, _issue_id(self.entry))
            return

    async def async_stop(self) -> None:
        """Close every client and release the port; the issue goes with the server."""
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        await self.server.stop()
        ir.async_delete_issue(self.hass, DOMAIN, _issue_id(self.entry))


@callback
def sharing_for(hass: HomeAssistant, entry: ConfigEntry) -> Sharing | None:
    """The entry's sharing if its options turn it on (not started: `Sharing.async_start`)."""
    options = entry.options
    if not options.get(CONF_REBROADCAST):
        ir.async_delete_issue(hass, DOMAIN, _issue_id(entry))  # turned off while failing
        return None
    config = SharingConfig(
        host=str(options.get(CONF_REBROADCAST_HOST, DEFAULT_HOST)),
        port=int(options.get(CONF_REBROADCAST_PORT, DEFAULT_REBROADCAST_PORT)),
        max_clients=int(options.get(CONF_REBROADCAST_MAX_CLIENTS, DEFAULT_MAX_CLIENTS)),
        decrypted=bool(options.get(CONF_REBROADCAST_DECRYPTED))
        and entry.data.get(CONF_DSMR_VERSION) in ENCRYPTED_DSMR_VERSIONS,
    )
    return Sharing(hass, entry, config)


async def async_trial_listen(host: str, port: int) -> ListenFailure | None:
    """Bind `host:port` for a moment: None when it can be used, else why not."""
    server = RebroadcastServer(host, port)
    try:
        await server.start()
    except CannotListen as err:
        return err.reason
    await server.stop()
    return None


def _box(maximum: int) -> selector.NumberSelector:
    return selector.NumberSelector(
        selector.NumberSelectorConfig(
            min=1, max=maximum, step=1, mode=selector.NumberSelectorMode.BOX
        )
    )


def sharing_section(values: Mapping[str, Any], *, encrypted: bool) -> section:
    """The options form's collapsed section for sharing the meter (flat options)."""
    host = str(values.get(CONF_REBROADCAST_HOST, DEFAULT_HOST))
    port = int(values.get(CONF_REBROADCAST_PORT, DEFAULT_REBROADCAST_PORT))
    clients = int(values.get(CONF_REBROADCAST_MAX_CLIENTS, DEFAULT_MAX_CLIENTS))
    fields: dict[Any, Any] = {
        vol.Required(CONF_REBROADCAST, default=bool(values.get(CONF_REBROADCAST))): bool,
        vol.Required(CONF_REBROADCAST_HOST, default=host): selector.TextSelector(),
        vol.Required(CONF_REBROADCAST_PORT, default=port): _box(65535),
        vol.Required(CONF_REBROADCAST_MAX_CLIENTS, default=clients): _box(MAX_REBROADCAST_CLIENTS),
    }
    if encrypted:  # serving decrypted telegrams is asked only for an encrypted meter
        decrypted = bool(values.get(CONF_REBROADCAST_DECRYPTED))
        fields[vol.Required(CONF_REBROADCAST_DECRYPTED, default=decrypted)] = bool
    return section(vol.Schema(fields), {"collapsed": True})


def shared(answers: Mapping[str, Any], *, encrypted: bool) -> tuple[dict[str, Any], str | None]:
    """The sharing options from the section's answers, and the form error (if any)."""
    options: dict[str, Any] = {
        CONF_REBROADCAST: bool(answers[CONF_REBROADCAST]),
        CONF_REBROADCAST_HOST: str(answers[CONF_REBROADCAST_HOST]).strip(),
        CONF_REBROADCAST_PORT: int(answers[CONF_REBROADCAST_PORT]),
        CONF_REBROADCAST_MAX_CLIENTS: int(answers[CONF_REBROADCAST_MAX_CLIENTS]),
    }
    if encrypted:
        options[CONF_REBROADCAST_DECRYPTED] = bool(answers.get(CONF_REBROADCAST_DECRYPTED))
    try:  # an IP address: a name is ambiguous, and resolved before the network is up at boot
        address = ipaddress.ip_address(options[CONF_REBROADCAST_HOST].strip("[]"))
    except ValueError:
        return options, "invalid_bind_address"
    options[CONF_REBROADCAST_HOST] = str(address)  # as Python writes it: [::1] is ::1
    return options, None
