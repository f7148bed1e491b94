"""Config flow: add a meter validated by a real telegram, reconfigure it, its options.

USB discovery offers a port only after a telegram was heard on it. No form is pre-filled with a
stored secret: reconfigure leaves the key fields empty (empty keeps the stored key) and shows a
port URL redacted (sent back unchanged, it keeps the stored URL).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
import functools
import ipaddress
import math
import re
import traceback
from typing import Any, Concatenate

from homeassistant.components.usb import get_serial_by_id
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers import selector
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from homeassistant.helpers.translation import async_get_translations
import probatio as vol

from .connection import (
    REDACTED,
    CannotCommunicate,
    CannotConnect,
    InvalidKey,
    InvalidPort,
    async_check_port,
    port_url,
    redact_port,
)
from .const import (
    CONF_AUTHENTICATION_KEY as AUTH_KEY,
    CONF_DSMR_VERSION as VERSION,
    CONF_ENCRYPTION_KEY as KEY,
    CONF_MAIN_FUSE,
    CONF_PEAK_THRESHOLD,
    CONF_PROTOCOL,
    CONF_REBROADCAST as SHARE,
    CONF_REBROADCAST_HOST,
    CONF_REBROADCAST_PORT,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    CONF_SOURCE_YAML,
    CONF_TIME_BETWEEN_UPDATE,
    CONF_WATCHDOG_TIMEOUT,
    DEFAULT_PORT,
    DEFAULT_TIME_BETWEEN_UPDATE,
    DEFAULT_WATCHDOG_TIMEOUT,
    DOMAIN,
    DSMR_PROTOCOL,
    ENCRYPTED_DSMR_VERSIONS,
    LOGGER,
    RFXTRX_DSMR_PROTOCOL,
    VERSION_AUTO,
    VERSION_BY_OPTION,
    version_option,
)
from .detect import (
    ENCRYPTED,
    Detection,
    NothingReceived,
    async_detect,
    async_validated,
    identify_detected,
    identify_encrypted,
)
from .migration import async_replace_meter
from .p1.demand import DEFAULT_THRESHOLD_KW
from .p1.telegram import has_demand, value_names
from .sharing import async_trial_listen, shared, sharing_section
from .yaml_import import yaml_key

CONF_RFXTRX = "rfxtrx"
KEY_PATTERN = re.compile(r"^[0-9A-Fa-f]{32}$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
KEYS = (KEY, AUTH_KEY)
SECRETS = frozenset({KEY, AUTH_KEY, CONF_SERIAL_ID, CONF_SERIAL_ID_GAS})
NOT_RECOGNISED = {"serial": "not_recognized", "network": "not_recognized_network"}
# Where a meter is read from: moved together when the meter turns up elsewhere.
TRANSPORT_KEYS = (CONF_HOST, CONF_PORT, CONF_PROTOCOL, KEY, AUTH_KEY)
VERSION_SELECTOR = selector.SelectSelector(
    selector.SelectSelectorConfig(
        options=list(VERSION_BY_OPTION),
        mode=selector.SelectSelectorMode.DROPDOWN,
        translation_key=VERSION,
    )
)
PASSWORD = selector.TextSelector(
    selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
)
KEY_SCHEMA = vol.Schema({vol.Required(KEY): PASSWORD, vol.Optional(AUTH_KEY): PASSWORD})
MAIN_FUSE = selector.NumberSelector(  # A per phase: 0 (off) to 400 (a large connection)
    selector.NumberSelectorConfig(
        min=0, max=400, step=1, unit_of_measurement="A", mode=selector.NumberSelectorMode.BOX
    )
)
PEAK_THRESHOLD = selector.NumberSelector(  # kW: 0 (every new peak) to 100 (a large connection)
    selector.NumberSelectorConfig(
        min=0, max=100, step=0.1, unit_of_measurement="kW", mode=selector.NumberSelectorMode.BOX
    )
)
type Step[F, **P] = Callable[Concatenate[F, P], Coroutine[Any, Any, ConfigFlowResult]]


def ends_well[F: ConfigFlow | OptionsFlow, **P](step: Step[F, P]) -> Step[F, P]:
    """A step whose unexpected error aborts the flow with `unknown`, logged without secrets."""

    @functools.wraps(step)
    async def run(flow: F, /, *args: P.args, **kwargs: P.kwargs) -> ConfigFlowResult:
        try:
            return await step(flow, *args, **kwargs)
        except AbortFlow:
            raise
        except Exception as err:
            sources = [a for a in (*args, *kwargs.values()) if isinstance(a, Mapping)]
            sources.append(getattr(flow, "_data", None) or {})
            sources.extend(e.data for e in flow.hass.config_entries.async_entries(DOMAIN))
            text = "".join(traceback.format_exception(err)).rstrip()
            for source in sources:
                for name, value in source.items():
                    if isinstance(value, str) and value.strip() and name in SECRETS:
                        text = re.sub(re.escape(value.strip()), REDACTED, text, flags=re.I)
                    elif isinstance(value, str) and (shown := redact_port(value)) != value:
                        text = text.replace(value, shown)
            name = step.__name__.removeprefix("async_step_")
            LOGGER.error("Unexpected error in the dsmr %s step; please report it:\n%s", name, text)
            return flow.async_abort(reason="unknown")

    return run


def port_schema(defaults: Mapping[str, Any], *, network: bool, version: bool = True) -> vol.Schema:
    """The serial or network step's form (reconfigure: without the meter type)."""
    if network:
        fields: dict[Any, Any] = {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, "")): selector.TextSelector(),
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, 23)): vol.All(
                vol.Coerce(int), vol.Range(min=1, max=65535)
            ),
        }
    else:
        port = redact_port(str(defaults.get(CONF_PORT, DEFAULT_PORT)))
        fields = {vol.Required(CONF_PORT, default=port): selector.SerialPortSelector()}
    if version:
        option = version_option(defaults.get(VERSION, VERSION_AUTO))
        fields[vol.Required(VERSION, default=option)] = VERSION_SELECTOR
        fields[vol.Optional(CONF_RFXTRX, default=bool(defaults.get(CONF_RFXTRX, False)))] = bool
    return vol.Schema(fields)


def version_and_protocol(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data for the meter type and framing chosen."""
    return {
        VERSION: VERSION_BY_OPTION[user_input.get(VERSION, VERSION_AUTO)],
        CONF_PROTOCOL: RFXTRX_DSMR_PROTOCOL if user_input.get(CONF_RFXTRX) else DSMR_PROTOCOL,
    }


def clean_host(value: str) -> str | None:
    """A host name or address, a scheme, port or path pasted with it stripped; IPv6 bracketed."""
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value.strip(), flags=re.IGNORECASE).split("/")[0]
    if bracketed := re.fullmatch(r"\[([^\]]*)\](?::\d*)?", host):
        host = bracketed.group(1)
    elif host.count(":") == 1:  # host:port pasted into the host field
        host = host.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host if HOST_PATTERN.match(host) else None
    return f"[{address}]" if address.version == 6 else str(address)


def keys(user_input: Mapping[str, Any]) -> dict[str, str] | None:
    """The encryption (and optional authentication) key, upper-case; None if malformed."""
    key, auth = (str(user_input.get(field) or "").strip() for field in KEYS)
    if not KEY_PATTERN.match(key) or (auth and not KEY_PATTERN.match(auth)):
        return None
    return {KEY: key.upper()} | ({AUTH_KEY: auth.upper()} if auth else {})


def title(data: Mapping[str, Any]) -> str:
    """An entry's title: the port (its secrets redacted), or host:port."""
    if CONF_HOST in data:
        return f"{data[CONF_HOST]}:{data[CONF_PORT]}"
    return redact_port(str(data[CONF_PORT]))


def form_error(err: Exception, *, base: bool = False) -> dict[str, str]:
    """The form error for what opening, detecting or validating raised."""
    if isinstance(err, InvalidPort):
        return {"base" if base else CONF_PORT: "invalid_port"}
    if isinstance(err, CannotConnect):
        return {"base": "cannot_connect"}
    return {"base": "invalid_key" if isinstance(err, InvalidKey) else "cannot_communicate"}


async def async_meter_name(hass: HomeAssistant, version: str) -> str:
    """The meter type as the user's language names it (a placeholder is shown as it is)."""
    strings = await async_get_translations(hass, hass.config.language, "selector", {DOMAIN})
    key = f"component.{DOMAIN}.selector.{VERSION}.options.{version_option(version)}"
    return strings.get(key, version)


class DsmrFlowHandler(ConfigFlow, domain=DOMAIN):
    """Add a DSMR meter."""

    VERSION = 1  # core's: entries stay loadable by core after a rollback

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._detection: Detection | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> DsmrOptionsFlow:
        return DsmrOptionsFlow()

    @ends_well
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Serial port or network bridge."""
        return self.async_show_menu(step_id="user", menu_options=["serial", "network"])

    @ends_well
    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A P1 cable on a serial port (or any serialx URL)."""
        if user_input is None:
            return self._show("serial", {}, {})
        port = str(user_input[CONF_PORT]).strip()
        if self._data and port == redact_port(str(self._data.get(CONF_PORT))):
            port = self._data[CONF_PORT]  # shown redacted after a failed attempt
        try:  # before anything is opened: a file or a watchdog never is
            await async_check_port(port)
        except CannotConnect as err:
            return self._show("serial", user_input, form_error(err))
        self._data = {CONF_PORT: port, **version_and_protocol(user_input)}
        return await self._async_next("serial", user_input)

    @ends_well
    async def async_step_network(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A ser2net server or an ESP bridge: host and port."""
        if user_input is None:
            return self._show("network", {}, {})
        if not (host := clean_host(user_input[CONF_HOST])):
            return self._show("network", user_input, {CONF_HOST: "invalid_host"})
        data = {CONF_HOST: host, CONF_PORT: user_input[CONF_PORT]}
        self._data = data | version_and_protocol(user_input)
        return await self._async_next("network", user_input)

    def _show(
        self, step: str, user_input: dict[str, Any], errors: dict[str, str], **shown: str
    ) -> ConfigFlowResult:
        """A step's form again, with what was typed (a key too: it is the user's own)."""
        if step == "encryption_key":
            schema = self.add_suggested_values_to_schema(KEY_SCHEMA, user_input)
        else:
            schema = port_schema(user_input, network=step == "network")
        return self.async_show_form(
            step_id=step, data_schema=schema, errors=errors, description_placeholders=shown or None
        )

    async def _async_next(self, step: str, user_input: dict[str, Any]) -> ConfigFlowResult:
        self._abort_if_port_configured(self._data)
        if self._data[VERSION] == VERSION_AUTO:
            try:
                self._detection = await async_detect(port_url(self._data))
            except CannotConnect as err:
                return self._show(step, user_input, form_error(err))
            except NothingReceived as err:
                seconds = str(math.ceil(err.seconds))
                return self._show(step, user_input, {"base": "no_data"}, seconds=seconds)
            except CannotCommunicate:
                return self._show(step, user_input, {"base": NOT_RECOGNISED[step]})
            try:
                return await self._async_detected()
            except CannotCommunicate, InvalidKey:
                return self._show(step, user_input, {"base": "cannot_communicate"})
        if self._data[VERSION] in ENCRYPTED_DSMR_VERSIONS:
            return await self.async_step_encryption_key()
        return await self._async_validate_and_create(self._data, step, user_input)

    @ends_well
    async def async_step_encryption_key(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The key (and optional authentication key) of an encrypted meter."""
        errors: dict[str, str] = {}
        if user_input is not None:
            if (found := keys(user_input)) is None:
                errors["base"] = "invalid_key_format"
            elif self._detection is not None and self._detection.version == ENCRYPTED:
                try:  # the frame heard in detection: a wrong key shows at once
                    data = identify_encrypted(self._detection.telegram, {**self._data, **found})
                except InvalidKey:
                    errors["base"] = "invalid_key"
                except CannotCommunicate:
                    errors["base"] = "not_recognized"
                else:
                    return await self._async_confirm(data)
            else:
                data = {**self._data, **found}
                return await self._async_validate_and_create(data, "encryption_key", user_input)
        return self._show("encryption_key", user_input or {}, errors)

    async def _async_validate_and_create(
        self, data: dict[str, Any], step: str, user_input: dict[str, Any]
    ) -> ConfigFlowResult:
        try:
            data = await async_validated(data)
        except (CannotConnect, CannotCommunicate, InvalidKey) as err:
            return self._show(step, user_input, form_error(err, base=step == "encryption_key"))
        await self._async_abort_if_known(data)
        return self.async_create_entry(title=title(data), data=data)

    async def _async_detected(self) -> ConfigFlowResult:
        """The key step for an encrypted meter, else confirm the meter (CannotCommunicate)."""
        assert self._detection is not None
        if self._detection.version == ENCRYPTED:
            return await self.async_step_encryption_key()
        return await self._async_confirm(identify_detected(self._data, self._detection))

    async def _async_confirm(self, data: dict[str, Any]) -> ConfigFlowResult:
        await self._async_abort_if_known(data)
        self._data = data
        return await self.async_step_detected()

    def _abort_if_port_configured(self, data: Mapping[str, Any], other_than: str = "") -> None:
        """One entry per port (a meter without an identifier is known by nothing else)."""
        url = port_url(data)
        for entry in self._async_current_entries(include_ignore=False):
            if entry.entry_id != other_than and port_url(entry.data) == url:
                raise AbortFlow("already_configured")

    async def _async_abort_if_known(self, data: dict[str, Any]) -> None:
        """A meter set up already: abort; found on another port, its entry moves there."""
        if not data.get(CONF_SERIAL_ID):
            return
        if (entry := await self.async_set_unique_id(data[CONF_SERIAL_ID])) is None:
            return
        moved = {k: v for k, v in entry.data.items() if k != CONF_HOST}
        moved |= {k: data[k] for k in TRANSPORT_KEYS if k in data}
        if moved == dict(entry.data):
            raise AbortFlow("already_configured")
        new_title = title(moved) if entry.title == title(entry.data) else entry.title
        self.hass.config_entries.async_update_entry(entry, title=new_title, data=moved)
        self.hass.config_entries.async_schedule_reload(entry.entry_id)
        raise AbortFlow("moved", description_placeholders={"port": redact_port(port_url(moved))})

    @ends_well
    async def async_step_detected(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the meter that was found; one click adds it."""
        if user_input is not None:
            return self.async_create_entry(title=title(self._data), data=self._data)
        assert self._detection is not None
        self._set_confirm_only()
        return self.async_show_form(
            step_id="detected",
            description_placeholders={
                "meter": await async_meter_name(self.hass, self._data[VERSION]),
                "port": title(self._data),  # host:port or the serial path, as the user gave it
                "settings": self._detection.settings,
                "seconds": f"{self._detection.seconds:.1f}",
            },
        )

    @ends_well
    async def async_step_usb(self, discovery_info: UsbServiceInfo) -> ConfigFlowResult:
        """A USB serial adapter appeared: offered only if a meter is talking on it."""
        port = await self.hass.async_add_executor_job(get_serial_by_id, discovery_info.device)
        self._async_abort_entries_match({CONF_PORT: port})
        self._data = {CONF_PORT: port, VERSION: VERSION_AUTO, CONF_PROTOCOL: DSMR_PROTOCOL}
        try:
            self._detection = await async_detect(port)
            self.context["title_placeholders"] = {"name": port}
            return await self._async_detected()
        except CannotConnect, CannotCommunicate, InvalidKey:
            return self.async_abort(reason="not_dsmr")

    @ends_well
    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where the meter is read from (and its keys), keeping every entity."""
        entry = self._get_reconfigure_entry()
        if entry.data.get(CONF_SOURCE_YAML):  # the YAML would undo it at the next start
            return self.async_abort(reason="configured_in_yaml")
        network = CONF_HOST in entry.data
        encrypted = entry.data[VERSION] in ENCRYPTED_DSMR_VERSIONS
        schema = port_schema(entry.data, network=network, version=False)
        if encrypted:  # never pre-filled: an empty field keeps the stored key
            schema = schema.extend({vol.Optional(field): PASSWORD for field in KEYS})
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = reconfigured(dict(entry.data), user_input, network, encrypted)
            if not errors:
                self._abort_if_port_configured(data, entry.entry_id)
                try:
                    data = await self._async_meter_on(data, encrypted)
                except (CannotConnect, CannotCommunicate, InvalidKey) as err:
                    errors = form_error(err)
                else:
                    if entry.unique_id and data[CONF_SERIAL_ID] not in (entry.unique_id, None):
                        self._data = data  # another meter: replaced, once confirmed
                        return await self.async_step_replace()
                    return self.async_update_reload_and_abort(entry, title=title(data), data=data)
            # What was typed, keys included, is shown again; never what is stored.
            schema = self.add_suggested_values_to_schema(schema, user_input)
        return self.async_show_form(step_id="reconfigure", data_schema=schema, errors=errors)

    async def _async_meter_on(self, data: dict[str, Any], encrypted: bool) -> dict[str, Any]:
        """The data for the meter on the port: of the entry's type, else (replaced) detected."""
        unique_id = self._get_reconfigure_entry().unique_id
        try:
            found = await async_validated(data)
        except CannotCommunicate:
            if encrypted:  # no detection without the key: the type stays
                raise
        else:
            if encrypted or found[CONF_SERIAL_ID] in (unique_id, None) or not unique_id:
                return found
        return identify_detected(data, await async_detect(port_url(data)))

    @ends_well
    async def async_step_replace(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Another meter is on the port: the entry, its entities and history move to it."""
        entry = self._get_reconfigure_entry()
        if user_input is not None:
            await self.async_set_unique_id(self._data[CONF_SERIAL_ID])
            self._abort_if_unique_id_configured()
            async_replace_meter(self.hass, entry, self._data, title=title(self._data))
            return self.async_abort(reason="reconfigure_successful")
        self._set_confirm_only()
        placeholders = {
            "before": await async_meter_name(self.hass, entry.data[VERSION]),
            "after": await async_meter_name(self.hass, self._data[VERSION]),
        }
        return self.async_show_form(step_id="replace", description_placeholders=placeholders)

    @ends_well
    async def async_step_import(self, import_data: dict[str, Any]) -> ConfigFlowResult:
        """A `sensor: - platform: dsmr` block (yaml_import.py)."""
        for entry in self._async_current_entries(include_ignore=False):
            if yaml_key(entry.data) != yaml_key(import_data):
                continue
            if not entry.data.get(CONF_SOURCE_YAML):  # made in the UI or by core: never taken over
                return self._abort_yaml_duplicate(import_data, entry)
            merged = {**entry.data, **import_data}
            if import_data[VERSION] == VERSION_AUTO:
                merged[VERSION] = entry.data[VERSION]  # detected before
            if merged == dict(entry.data):
                return self.async_abort(reason="already_configured")
            return self.async_update_reload_and_abort(
                entry, data=merged, reason="already_configured"
            )
        for entry in self._async_current_entries(include_ignore=False):
            if port_url(entry.data) == port_url(import_data):  # a meter without identifier
                return self._abort_yaml_duplicate(import_data, entry)
        data = {**import_data, CONF_PROTOCOL: DSMR_PROTOCOL}
        shown = redact_port(port_url(data))
        try:
            await async_check_port(port_url(data))
        except InvalidPort as err:
            LOGGER.error("The dsmr port %s in YAML is refused: %s; fix its block", shown, err)
            return self.async_abort(reason="invalid_port")
        except CannotConnect:
            pass  # not plugged in (yet): said below, retried at the next start
        try:
            if data[VERSION] == VERSION_AUTO:
                detection = await async_detect(port_url(data))
                if detection.version == ENCRYPTED:
                    LOGGER.error(
                        "The dsmr meter on %s sends encrypted telegrams, and YAML has no place "
                        "for its key: remove its YAML block and add the meter under Settings > "
                        "Devices & services",
                        shown,
                    )
                    return self.async_abort(reason="encrypted_yaml")
                data = identify_detected(data, detection)
            else:
                data = await async_validated(data)
        except (CannotConnect, CannotCommunicate, InvalidKey) as err:
            LOGGER.error(
                "Cannot import the dsmr meter on %s from YAML: %s; retrying at the next start",
                shown,
                type(err).__name__,
            )
            return self.async_abort(reason="cannot_connect")
        if data[CONF_SERIAL_ID] and (same := await self.async_set_unique_id(data[CONF_SERIAL_ID])):
            return self._abort_yaml_duplicate(import_data, same)
        return self.async_create_entry(title=title(data), data=data)

    def _abort_yaml_duplicate(self, block: dict[str, Any], entry: ConfigEntry) -> ConfigFlowResult:
        LOGGER.warning(
            "The dsmr meter on %s in YAML is already set up as '%s'; ignoring its YAML block",
            redact_port(port_url(block)),
            redact_port(entry.title),
        )
        return self.async_abort(reason="already_configured")


def reconfigured(
    data: dict[str, Any], user_input: Mapping[str, Any], network: bool, encrypted: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The entry data with the new port, host and keys; or the form errors."""
    if network:
        if not (host := clean_host(str(user_input[CONF_HOST]))):
            return data, {CONF_HOST: "invalid_host"}
        data |= {CONF_HOST: host, CONF_PORT: user_input[CONF_PORT]}
    elif not (port := str(user_input[CONF_PORT]).strip()):
        return data, {CONF_PORT: "invalid_port"}
    elif port != redact_port(str(data[CONF_PORT])):
        data[CONF_PORT] = port
    if encrypted:
        typed = {f: str(user_input.get(f) or "").strip() or data.get(f) for f in KEYS}
        if (found := keys(typed)) is None:
            return data, {"base": "invalid_key_format"}
        data.pop(AUTH_KEY, None)
        data |= found
    return data, {}


class DsmrOptionsFlow(OptionsFlowWithReload):
    """Update window, watchdog, (Belgian meters) the lowest peak worth a warning, sharing."""

    @ends_well
    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The options; saved options reload the entry, which applies them."""
        options = dict(self.config_entry.options)  # keeps what the form does not show
        encrypted = self.config_entry.data.get(VERSION) in ENCRYPTED_DSMR_VERSIONS
        errors: dict[str, str] = {}
        if user_input is not None:
            answers = dict(user_input)
            section_answers = answers.pop(SHARE, None)  # absent: sharing stays as it is
            options |= answers
            if section_answers is not None:
                found, error = shared(section_answers, encrypted=encrypted)
                options |= found
                if error is None and found[SHARE]:
                    error = await self._async_cannot_listen(found)
                errors = {"base": error} if error else {}
            if not errors:
                return self.async_create_entry(data=options)
        window = options.get(CONF_TIME_BETWEEN_UPDATE, DEFAULT_TIME_BETWEEN_UPDATE)
        watchdog = options.get(CONF_WATCHDOG_TIMEOUT, DEFAULT_WATCHDOG_TIMEOUT)
        fields: dict[Any, Any] = {
            vol.Required(CONF_TIME_BETWEEN_UPDATE, default=window): vol.All(
                vol.Coerce(int), vol.Range(min=0, max=3600)
            ),
            vol.Required(CONF_WATCHDOG_TIMEOUT, default=watchdog): vol.All(
                vol.Coerce(int), vol.Range(min=5, max=3600)
            ),
        }
        if has_demand(self.config_entry.data[VERSION]):
            threshold = options.get(CONF_PEAK_THRESHOLD, DEFAULT_THRESHOLD_KW)
            fields[vol.Required(CONF_PEAK_THRESHOLD, default=threshold)] = PEAK_THRESHOLD
        if "INSTANTANEOUS_CURRENT_L1" in value_names(self.config_entry.data[VERSION]):
            fuse = options.get(CONF_MAIN_FUSE, 0)
            fields[vol.Required(CONF_MAIN_FUSE, default=fuse)] = MAIN_FUSE
        fields[vol.Optional(SHARE)] = sharing_section(options, encrypted=encrypted)
        meter = await async_meter_name(self.hass, self.config_entry.data[VERSION])
        return self.async_show_form(
            step_id="init",
            data_schema=vol.Schema(fields),
            errors=errors,
            description_placeholders={"meter": meter},
        )

    async def _async_cannot_listen(self, options: dict[str, Any]) -> str | None:
        """Why the address cannot be listened on (a translation key), or None."""
        entry, port = self.config_entry, options[CONF_REBROADCAST_PORT]
        running = entry.runtime_data.rebroadcast if entry.state is ConfigEntryState.LOADED else None
        # Not tried on the port the entry's server holds (Linux refuses even another address of
        # it while it listens): the reload moves it.
        if running is not None and running.port == port:
            return None
        failure = await async_trial_listen(options[CONF_REBROADCAST_HOST], port)
        return None if failure is None else str(failure)
