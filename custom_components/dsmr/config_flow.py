"""Config flow: add a meter on a serial port or a network bridge, validated by a real telegram."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    SerialPortSelector,
    TextSelector,
)
import probatio as vol
from serialx import SerialException

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_PROTOCOL,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    CONF_SOURCE_YAML,
    CONF_TIME_BETWEEN_UPDATE,
    DEFAULT_PORT,
    DEFAULT_TIME_BETWEEN_UPDATE,
    DOMAIN,
    DSMR_PROTOCOL,
    DSMR_VERSIONS,
    ENCRYPTED_DSMR_VERSIONS,
    LOGGER,
    RFXTRX_DSMR_PROTOCOL,
    VALIDATION_TIMEOUT,
)
from .reader import (
    CannotCommunicate,
    CannotConnect,
    InvalidKey,
    async_read_telegram,
    equipment_identifier,
    gas_equipment_identifier,
    port_url,
)
from .yaml_import import yaml_key

CONF_RFXTRX = "rfxtrx"
KEY_PATTERN = re.compile(r"^[0-9A-Fa-f]{32}$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")

VERSION_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=[
            SelectOptionDict(value=token, label=label) for token, label in DSMR_VERSIONS.items()
        ],
        mode=SelectSelectorMode.DROPDOWN,
    )
)


def _serial_schema(defaults: dict[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(
                CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)
            ): SerialPortSelector(),
            vol.Required(
                CONF_DSMR_VERSION, default=defaults.get(CONF_DSMR_VERSION, "5")
            ): VERSION_SELECTOR,
            vol.Optional(CONF_RFXTRX, default=False): bool,
        }
    )


def _network_schema(defaults: dict[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, "")): TextSelector(),
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, 23)): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=65535)
            ),
            vol.Required(
                CONF_DSMR_VERSION, default=defaults.get(CONF_DSMR_VERSION, "5")
            ): VERSION_SELECTOR,
            vol.Optional(CONF_RFXTRX, default=False): bool,
        }
    )


KEY_SCHEMA = vol.Schema(
    {vol.Required(CONF_ENCRYPTION_KEY): str, vol.Optional(CONF_AUTHENTICATION_KEY): str}
)


class DsmrFlowHandler(ConfigFlow, domain=DOMAIN):
    """Add a DSMR meter."""

    VERSION = 1  # core's; entries stay loadable by core after a rollback

    def __init__(self) -> None:
        """Initialize the flow."""
        self._data: dict[str, Any] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> DsmrOptionsFlow:
        """Options: the update window."""
        return DsmrOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Serial port or network bridge."""
        return self.async_show_menu(step_id="user", menu_options=["serial", "network"])

    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A P1 cable on a local serial port (or any serialx URL)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            port = user_input[CONF_PORT].strip()
            if not port:
                errors[CONF_PORT] = "invalid_port"
            else:
                self._data = {
                    CONF_PORT: port,
                    CONF_DSMR_VERSION: user_input[CONF_DSMR_VERSION],
                    CONF_PROTOCOL: _protocol(user_input),
                }
                return await self._async_next()
        return self.async_show_form(
            step_id="serial", data_schema=_serial_schema(user_input or {}), errors=errors
        )

    async def async_step_network(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A ser2net server or an ESP bridge: host and port."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host = _clean_host(user_input[CONF_HOST])
            if not host:
                errors[CONF_HOST] = "invalid_host"
            else:
                self._data = {
                    CONF_HOST: host,
                    CONF_PORT: user_input[CONF_PORT],
                    CONF_DSMR_VERSION: user_input[CONF_DSMR_VERSION],
                    CONF_PROTOCOL: _protocol(user_input),
                }
                return await self._async_next()
        return self.async_show_form(
            step_id="network", data_schema=_network_schema(user_input or {}), errors=errors
        )

    async def _async_next(self) -> ConfigFlowResult:
        if self._data[CONF_DSMR_VERSION] in ENCRYPTED_DSMR_VERSIONS:
            return await self.async_step_encryption_key()
        return await self._async_validate_and_create(self._data, "user")

    async def async_step_encryption_key(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The key (and optional authentication key) of an encrypted meter."""
        errors: dict[str, str] = {}
        if user_input is not None:
            key = user_input[CONF_ENCRYPTION_KEY].strip()
            auth = (user_input.get(CONF_AUTHENTICATION_KEY) or "").strip()
            if not KEY_PATTERN.match(key) or (auth and not KEY_PATTERN.match(auth)):
                errors["base"] = "invalid_key_format"
            else:
                data = {**self._data, CONF_ENCRYPTION_KEY: key.upper()}
                if auth:
                    data[CONF_AUTHENTICATION_KEY] = auth.upper()
                return await self._async_validate_and_create(data, "encryption_key")
        return self.async_show_form(step_id="encryption_key", data_schema=KEY_SCHEMA, errors=errors)

    async def _async_validate_and_create(self, data: dict[str, Any], step: str) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        try:
            data = await async_validated(data)
        except CannotConnect:
            errors["base"] = "cannot_connect"
        except CannotCommunicate:
            errors["base"] = "cannot_communicate"
        except InvalidKey:
            errors["base"] = "invalid_key"
        if errors:
            if step == "encryption_key":
                return self.async_show_form(step_id=step, data_schema=KEY_SCHEMA, errors=errors)
            schema = _network_schema(data) if CONF_HOST in data else _serial_schema(data)
            step = "network" if CONF_HOST in data else "serial"
            return self.async_show_form(step_id=step, data_schema=schema, errors=errors)
        if data[CONF_SERIAL_ID]:
            await self.async_set_unique_id(data[CONF_SERIAL_ID])
            self._abort_if_unique_id_configured()
        return self.async_create_entry(title=_title(data), data=data)

    async def async_step_import(self, import_data: dict[str, Any]) -> ConfigFlowResult:
        """A `sensor: - platform: dsmr` YAML block (see yaml_import).

        Only entries marked as coming from YAML follow the YAML; an entry made in the UI (or
        by core's YAML import long ago) for the same port or meter is never taken over, as
        removing the block would then remove it.
        """
        for entry in self._async_current_entries(include_ignore=False):
            if yaml_key(entry.data) != yaml_key(import_data):
                continue
            if not entry.data.get(CONF_SOURCE_YAML):
                return self._async_abort_yaml_duplicate(import_data, entry)
            merged = {**entry.data, **import_data}
            if merged == dict(entry.data):
                return self.async_abort(reason="already_configured")
            return self.async_update_reload_and_abort(
                entry, data=merged, reason="already_configured"
            )
        try:
            data = await async_validated({**import_data, CONF_PROTOCOL: DSMR_PROTOCOL})
        except (CannotConnect, CannotCommunicate, InvalidKey) as err:
            LOGGER.error(
                "Cannot import the dsmr meter on %s from YAML: %s; retrying at the next start",
                port_url(import_data),
                type(err).__name__,
            )
            return self.async_abort(reason="cannot_connect")
        if data[CONF_SERIAL_ID]:
            await self.async_set_unique_id(data[CONF_SERIAL_ID])
            if same := self.hass.config_entries.async_entry_for_domain_unique_id(
                DOMAIN, data[CONF_SERIAL_ID]
            ):
                return self._async_abort_yaml_duplicate(import_data, same)
        return self.async_create_entry(title=_title(data), data=data)

    def _async_abort_yaml_duplicate(
        self, import_data: dict[str, Any], entry: ConfigEntry
    ) -> ConfigFlowResult:
        LOGGER.warning(
            "The dsmr meter on %s in YAML is already set up as '%s'; ignoring its YAML block",
            port_url(import_data),
            entry.title,
        )
        return self.async_abort(reason="already_configured")


async def async_validated(data: dict[str, Any]) -> dict[str, Any]:
    """Read a telegram with these settings; return the data with the meter's identifiers."""
    try:
        telegram = await async_read_telegram(data, VALIDATION_TIMEOUT)
    except (SerialException, HomeAssistantError) as err:
        # serialx's own errors (a URL scheme nothing handles, an ESPHome proxy that is gone) and
        # ConfigEntryNotReady from the esphome-hass:// stub while ESPHome has not loaded.
        raise CannotConnect(str(err) or type(err).__name__) from err
    version = data[CONF_DSMR_VERSION]
    return {
        **data,
        CONF_SERIAL_ID: equipment_identifier(telegram, version),
        CONF_SERIAL_ID_GAS: gas_equipment_identifier(telegram, version),
    }


def _protocol(user_input: dict[str, Any]) -> str:
    return RFXTRX_DSMR_PROTOCOL if user_input.get(CONF_RFXTRX) else DSMR_PROTOCOL


def _clean_host(value: str) -> str | None:
    """Accept a host name or address; strip a scheme, port or path a user pasted with it.

    An IPv6 address is returned in brackets, as it goes into the socket:// URL.
    """
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value.strip(), flags=re.IGNORECASE)
    host = host.split("/", 1)[0]
    if bracketed := re.fullmatch(r"\[([^\]]*)\](?::\d*)?", host):  # [IPv6] or [IPv6]:port
        host = bracketed.group(1)
    elif host.count(":") == 1:  # host:port pasted into the host field
        host = host.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host if HOST_PATTERN.match(host) else None
    return f"[{address}]" if address.version == 6 else str(address)


def _title(data: dict[str, Any]) -> str:
    if CONF_HOST in data:
        return f"{data[CONF_HOST]}:{data[CONF_PORT]}"
    return str(data[CONF_PORT])


class DsmrOptionsFlow(OptionsFlowWithReload):
    """How often entities are updated."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The update window (seconds; 0 = every telegram)."""
        if user_input is not None:
            # Keep options this form does not show (watchdog_timeout).
            return self.async_create_entry(data={**self.config_entry.options, **user_input})
        current = self.config_entry.options.get(
            CONF_TIME_BETWEEN_UPDATE, DEFAULT_TIME_BETWEEN_UPDATE
        )
        return self.async_show_form(
            step_id="init",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_TIME_BETWEEN_UPDATE, default=current): vol.All(
                        vol.Coerce(int), vol.Range(min=0, max=3600)
                    )
                }
            ),
        )
