"""The config flow's forms: what they ask, what they show pre-filled, and what answers become.

No form is ever pre-filled with a stored secret: key fields are password fields, the reconfigure
form leaves them empty (empty keeps the stored key), and a port URL with secrets is shown
redacted (sent back unchanged, it keeps the stored URL). What the user typed is shown again after
a failed attempt, so a key survives a typo elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
import ipaddress
import re
from typing import Any

from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    SerialPortSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_PROTOCOL,
    CONF_REBROADCAST,
    CONF_REBROADCAST_DECRYPTED,
    CONF_REBROADCAST_HOST,
    CONF_REBROADCAST_MAX_CLIENTS,
    CONF_REBROADCAST_PORT,
    DEFAULT_PORT,
    DEFAULT_REBROADCAST_PORT,
    DSMR_PROTOCOL,
    MAX_REBROADCAST_CLIENTS,
    RFXTRX_DSMR_PROTOCOL,
    VERSION_AUTO,
    VERSION_BY_OPTION,
    version_option,
)
from .ports import CannotConnect, InvalidPort, redact_port
from .reader import InvalidKey
from .rebroadcast import DEFAULT_HOST, DEFAULT_MAX_CLIENTS

CONF_RFXTRX = "rfxtrx"
KEY_PATTERN = re.compile(r"^[0-9A-Fa-f]{32}$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
KEY_FIELDS = (CONF_ENCRYPTION_KEY, CONF_AUTHENTICATION_KEY)
# Options are version_option(token); their labels ("Detect automatically", "DSMR 5
# (Netherlands)", ...) are translated: strings.json, selector.dsmr_version.options.
VERSION_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=list(VERSION_BY_OPTION),
        mode=SelectSelectorMode.DROPDOWN,
        translation_key=CONF_DSMR_VERSION,
    )
)
PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
KEY_SCHEMA = vol.Schema(
    {vol.Required(CONF_ENCRYPTION_KEY): PASSWORD, vol.Optional(CONF_AUTHENTICATION_KEY): PASSWORD}
)
# Reconfigure: both keys optional, an empty field keeps the stored key.
OPTIONAL_KEYS = vol.Schema({vol.Optional(field): PASSWORD for field in KEY_FIELDS})


def serial_schema(defaults: Mapping[str, Any], *, version: bool = True) -> vol.Schema:
    """The serial step's form (reconfigure: the port only)."""
    port = redact_port(str(defaults.get(CONF_PORT, DEFAULT_PORT)))
    fields: dict[Any, Any] = {vol.Required(CONF_PORT, default=port): SerialPortSelector()}
    return vol.Schema(fields | _version_fields(defaults) if version else fields)


def network_schema(defaults: Mapping[str, Any], *, version: bool = True) -> vol.Schema:
    """The network step's form (reconfigure: host and TCP port only)."""
    fields: dict[Any, Any] = {
        vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, "")): TextSelector(),
        vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, 23)): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=65535)
        ),
    }
    return vol.Schema(fields | _version_fields(defaults) if version else fields)


def _version_fields(defaults: Mapping[str, Any]) -> dict[Any, Any]:
    """The meter type (detect by default) and the RFXtrx framing option."""
    return {
        vol.Required(
            CONF_DSMR_VERSION,
            default=version_option(defaults.get(CONF_DSMR_VERSION, VERSION_AUTO)),
        ): VERSION_SELECTOR,
        vol.Optional(CONF_RFXTRX, default=bool(defaults.get(CONF_RFXTRX, False))): bool,
    }


def version_and_protocol(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data for the meter type and framing chosen."""
    return {
        CONF_DSMR_VERSION: VERSION_BY_OPTION[user_input.get(CONF_DSMR_VERSION, VERSION_AUTO)],
        CONF_PROTOCOL: RFXTRX_DSMR_PROTOCOL if user_input.get(CONF_RFXTRX) else DSMR_PROTOCOL,
    }


def reconfigured(
    data: dict[str, Any], user_input: Mapping[str, Any], network: bool, encrypted: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The entry data with the new port, host and keys; or the form errors.

    A key field left empty keeps the stored key; the port shown redacted keeps the stored URL.
    """
    if network:
        if not (host := clean_host(str(user_input[CONF_HOST]))):
            return data, {CONF_HOST: "invalid_host"}
        data |= {CONF_HOST: host, CONF_PORT: user_input[CONF_PORT]}
    elif port := str(user_input[CONF_PORT]).strip():
        if port != redact_port(str(data[CONF_PORT])):
            data[CONF_PORT] = port
    else:
        return data, {CONF_PORT: "invalid_port"}
    if encrypted:
        typed = {f: str(user_input.get(f) or "").strip() or data.get(f) for f in KEY_FIELDS}
        if (found := keys(typed)) is None:
            return data, {"base": "invalid_key_format"}
        data.pop(CONF_AUTHENTICATION_KEY, None)
        data |= found
    return data, {}


def form_error(err: Exception, *, base: bool = False) -> dict[str, str]:
    """The form error for what opening, detecting or validating raised.

    A port the rule refuses marks the port field (`base`: a form without one).
    """
    if isinstance(err, InvalidPort):
        return {"base" if base else CONF_PORT: "invalid_port"}
    if isinstance(err, CannotConnect):
        return {"base": "cannot_connect"}
    if isinstance(err, InvalidKey):
        return {"base": "invalid_key"}
    return {"base": "cannot_communicate"}


def clean_host(value: str) -> str | None:
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


def keys(user_input: dict[str, Any]) -> dict[str, str] | None:
    """The encryption (and optional authentication) key, upper-case; None if malformed."""
    key = str(user_input.get(CONF_ENCRYPTION_KEY) or "").strip()
    auth = str(user_input.get(CONF_AUTHENTICATION_KEY) or "").strip()
    if not KEY_PATTERN.match(key) or (auth and not KEY_PATTERN.match(auth)):
        return None
    found = {CONF_ENCRYPTION_KEY: key.upper()}
    if auth:
        found[CONF_AUTHENTICATION_KEY] = auth.upper()
    return found


def title(data: Mapping[str, Any]) -> str:
    """An entry's title: the port (secrets in its URL redacted), or host:port."""
    if CONF_HOST in data:
        return f"{data[CONF_HOST]}:{data[CONF_PORT]}"
    return redact_port(str(data[CONF_PORT]))


def _box(maximum: int) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(min=1, max=maximum, step=1, mode=NumberSelectorMode.BOX)
    )


def sharing_section(values: Mapping[str, Any], *, encrypted: bool) -> section:
    """The options form's collapsed section for sharing the meter, showing `values` (flat).

    Serving decrypted telegrams is asked only for an encrypted meter.
    """
    fields: dict[Any, Any] = {
        vol.Required(CONF_REBROADCAST, default=bool(values.get(CONF_REBROADCAST))): bool,
        vol.Required(
            CONF_REBROADCAST_HOST, default=str(values.get(CONF_REBROADCAST_HOST, DEFAULT_HOST))
        ): TextSelector(),
        vol.Required(
            CONF_REBROADCAST_PORT,
            default=int(values.get(CONF_REBROADCAST_PORT, DEFAULT_REBROADCAST_PORT)),
        ): _box(65535),
        vol.Required(
            CONF_REBROADCAST_MAX_CLIENTS,
            default=int(values.get(CONF_REBROADCAST_MAX_CLIENTS, DEFAULT_MAX_CLIENTS)),
        ): _box(MAX_REBROADCAST_CLIENTS),
    }
    if encrypted:
        fields[
            vol.Required(
                CONF_REBROADCAST_DECRYPTED, default=bool(values.get(CONF_REBROADCAST_DECRYPTED))
            )
        ] = bool
    return section(vol.Schema(fields), {"collapsed": True})


def shared(answers: Mapping[str, Any], *, encrypted: bool) -> tuple[dict[str, Any], str | None]:
    """The sharing options from the section's answers, and the form error (if any).

    The address must be an IP address (no host names: ambiguous, and resolved before the
    network is up at boot); `[::1]` is taken as `::1`, and every address is stored as Python
    writes it.
    """
    options: dict[str, Any] = {
        CONF_REBROADCAST: bool(answers[CONF_REBROADCAST]),
        CONF_REBROADCAST_HOST: str(answers[CONF_REBROADCAST_HOST]).strip(),
        CONF_REBROADCAST_PORT: int(answers[CONF_REBROADCAST_PORT]),
        CONF_REBROADCAST_MAX_CLIENTS: int(answers[CONF_REBROADCAST_MAX_CLIENTS]),
    }
    if encrypted:
        options[CONF_REBROADCAST_DECRYPTED] = bool(answers.get(CONF_REBROADCAST_DECRYPTED))
    try:
        address = ipaddress.ip_address(options[CONF_REBROADCAST_HOST].strip("[]"))
    except ValueError:
        return options, "invalid_bind_address"
    options[CONF_REBROADCAST_HOST] = str(address)
    return options, None
