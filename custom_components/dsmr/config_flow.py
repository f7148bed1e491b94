"""Config flow: add a meter on a serial port or a network bridge, validated by a real telegram.

The meter type defaults to "Detect automatically": the port is listened to with each line setting
in turn and the version is read from the first telegram (detect.py); the user confirms what was
found. USB discovery offers a port only after a telegram was heard on it. Reconfigure changes the
port, host or key of an existing meter, which must still be the same meter.
"""

from __future__ import annotations

import math
from typing import Any

from homeassistant.components.usb import get_serial_by_id
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from homeassistant.helpers.translation import async_get_translations

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_DSMR_VERSION,
    CONF_ENCRYPTION_KEY,
    CONF_PROTOCOL,
    CONF_SERIAL_ID,
    CONF_SOURCE_YAML,
    DOMAIN,
    DSMR_PROTOCOL,
    ENCRYPTED_DSMR_VERSIONS,
    LOGGER,
    VERSION_AUTO,
    version_option,
)
from .detect import ENCRYPTED, Detection, NothingReceived, async_detect
from .flow_guard import ends_well
from .forms import (
    KEY_SCHEMA,
    OPTIONAL_KEYS,
    clean_host,
    form_error,
    keys,
    network_schema,
    reconfigured,
    serial_schema,
    title,
    version_and_protocol,
)
from .identify import async_validated, identify_detected, identify_encrypted
from .options_flow import DsmrOptionsFlow
from .ports import CannotConnect, InvalidPort, async_check_port, port_url, redact_port
from .reader import CannotCommunicate, InvalidKey
from .yaml_import import yaml_key

# Detection heard bytes but no telegram: line settings are worth mentioning on a serial port.
NOT_RECOGNISED = {"serial": "not_recognised", "network": "not_recognised_network"}
# What says where a meter is read from: moved together when the meter turns up elsewhere.
TRANSPORT_KEYS = (
    CONF_HOST,
    CONF_PORT,
    CONF_PROTOCOL,
    CONF_ENCRYPTION_KEY,
    CONF_AUTHENTICATION_KEY,
)


class DsmrFlowHandler(ConfigFlow, domain=DOMAIN):
    """Add a DSMR meter."""

    VERSION = 1  # core's; entries stay loadable by core after a rollback

    def __init__(self) -> None:
        """Initialize the flow."""
        self._data: dict[str, Any] = {}
        self._detection: Detection | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> DsmrOptionsFlow:
        """Options: the update window, the watchdog, sharing the meter."""
        return DsmrOptionsFlow()

    @ends_well
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Serial port or network bridge."""
        return self.async_show_menu(step_id="user", menu_options=["serial", "network"])

    @ends_well
    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A P1 cable on a local serial port (or any serialx URL)."""
        if user_input is not None:
            port = str(user_input[CONF_PORT]).strip()
            if self._data and port == redact_port(str(self._data.get(CONF_PORT))):
                port = self._data[CONF_PORT]  # shown redacted after a failed attempt
            try:  # before anything is opened: a file or a watchdog never is
                await async_check_port(port)
            except CannotConnect as err:
                return self._show("serial", user_input, form_error(err))
            self._data = {CONF_PORT: port, **version_and_protocol(user_input)}
            return await self._async_next("serial", user_input)
        return self._show("serial", {}, {})

    @ends_well
    async def async_step_network(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A ser2net server or an ESP bridge: host and port."""
        if user_input is not None:
            if not (host := clean_host(user_input[CONF_HOST])):
                return self._show("network", user_input, {CONF_HOST: "invalid_host"})
            self._data = {
                CONF_HOST: host,
                CONF_PORT: user_input[CONF_PORT],
                **version_and_protocol(user_input),
            }
            return await self._async_next("network", user_input)
        return self._show("network", {}, {})

    def _show(
        self,
        step: str,
        user_input: dict[str, Any],
        errors: dict[str, str],
        placeholders: dict[str, str] | None = None,
    ) -> ConfigFlowResult:
        """Show a step's form again, with what was typed (a key too: it is the user's own)."""
        if step == "encryption_key":
            schema = self.add_suggested_values_to_schema(KEY_SCHEMA, user_input)
        else:
            schema = network_schema(user_input) if step == "network" else serial_schema(user_input)
        return self.async_show_form(
            step_id=step, data_schema=schema, errors=errors, description_placeholders=placeholders
        )

    async def _async_next(self, step: str, user_input: dict[str, Any]) -> ConfigFlowResult:
        self._abort_if_port_configured(self._data)
        if self._data[CONF_DSMR_VERSION] == VERSION_AUTO:
            try:
                self._detection = await async_detect(port_url(self._data))
            except CannotConnect as err:
                return self._show(step, user_input, form_error(err))
            except NothingReceived as err:
                seconds = {"seconds": str(math.ceil(err.seconds))}
                return self._show(step, user_input, {"base": "no_data"}, seconds)
            except CannotCommunicate:
                return self._show(step, user_input, {"base": NOT_RECOGNISED[step]})
            if self._detection.version == ENCRYPTED:
                return await self.async_step_encryption_key()
            try:
                data = identify_detected(self._data, self._detection)
            except CannotCommunicate, InvalidKey:
                return self._show(step, user_input, {"base": "cannot_communicate"})
            return await self._async_confirm(data)
        if self._data[CONF_DSMR_VERSION] in ENCRYPTED_DSMR_VERSIONS:
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
                try:  # decrypt the frame heard during detection: a wrong key shows at once
                    data = identify_encrypted(self._detection.telegram, {**self._data, **found})
                except InvalidKey:
                    errors["base"] = "invalid_key"
                except CannotCommunicate:
                    errors["base"] = "not_recognised"
                else:
                    return await self._async_confirm(data)
            else:
                return await self._async_validate_and_create(
                    {**self._data, **found}, "encryption_key", user_input
                )
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

    async def _async_confirm(self, data: dict[str, Any]) -> ConfigFlowResult:
        """Tell the user what detection found; one click creates the entry."""
        await self._async_abort_if_known(data)
        self._data = data
        return await self.async_step_detected()

    def _abort_if_port_configured(self, data: dict[str, Any], other_than: str = "") -> None:
        """One entry per port, or host and TCP port in whichever spelling (raises AbortFlow).

        A meter without an equipment identifier (Sweden, Austria) is known by nothing else.
        `other_than`: the entry being reconfigured, which may keep its own port.
        """
        url = port_url(data)
        for entry in self._async_current_entries(include_ignore=False):
            if entry.entry_id != other_than and port_url(entry.data) == url:
                raise AbortFlow("already_configured")

    async def _async_abort_if_known(self, data: dict[str, Any]) -> None:
        """A meter that is set up already: abort; found on another port, its entry moves there.

        The entry's data then says where the meter is, consistently: host set (a network
        bridge) or gone (a serial port), the port, the framing and any key just entered.
        """
        if not data.get(CONF_SERIAL_ID):
            return
        await self.async_set_unique_id(data[CONF_SERIAL_ID])
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, data[CONF_SERIAL_ID]
        )
        if entry is None:
            return
        moved = {k: v for k, v in entry.data.items() if k != CONF_HOST} | {
            k: data[k] for k in TRANSPORT_KEYS if k in data
        }
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
        """Show the meter that was found."""
        if user_input is not None:
            return self.async_create_entry(title=title(self._data), data=self._data)
        detection = self._detection
        assert detection is not None
        self._set_confirm_only()
        return self.async_show_form(
            step_id="detected",
            description_placeholders={
                "meter": await self._async_version_label(self._data[CONF_DSMR_VERSION]),
                "port": redact_port(port_url(self._data)),
                "settings": detection.settings,
                "seconds": f"{detection.seconds:.1f}",
            },
        )

    async def _async_version_label(self, version: str) -> str:
        """The meter type's label as the selector shows it, in Home Assistant's language.

        A placeholder is shown as it is, so it is translated here (English where a language
        lacks the label); the frontend's language is not known to a flow.
        """
        strings = await async_get_translations(
            self.hass, self.hass.config.language, "selector", {DOMAIN}
        )
        key = f"component.{DOMAIN}.selector.{CONF_DSMR_VERSION}.options.{version_option(version)}"
        return strings.get(key, version)

    @ends_well
    async def async_step_usb(self, discovery_info: UsbServiceInfo) -> ConfigFlowResult:
        """A USB serial adapter appeared: offer it only if a meter is talking on it."""
        port = await self.hass.async_add_executor_job(get_serial_by_id, discovery_info.device)
        self._async_abort_entries_match({CONF_PORT: port})
        self._data = {
            CONF_PORT: port,
            CONF_DSMR_VERSION: VERSION_AUTO,
            CONF_PROTOCOL: DSMR_PROTOCOL,
        }
        try:
            self._detection = await async_detect(port)
        except CannotConnect, CannotCommunicate:
            return self.async_abort(reason="not_dsmr")
        self.context["title_placeholders"] = {"name": port}
        if self._detection.version == ENCRYPTED:
            return await self.async_step_encryption_key()
        try:
            data = identify_detected(self._data, self._detection)
        except CannotCommunicate, InvalidKey:
            return self.async_abort(reason="not_dsmr")
        return await self._async_confirm(data)

    @ends_well
    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where the meter is read from (and its key), keeping every entity."""
        entry = self._get_reconfigure_entry()
        if entry.data.get(CONF_SOURCE_YAML):  # the YAML would undo it at the next start
            return self.async_abort(reason="configured_in_yaml")
        network = CONF_HOST in entry.data
        encrypted = entry.data[CONF_DSMR_VERSION] in ENCRYPTED_DSMR_VERSIONS
        schema = (
            network_schema(entry.data, version=False)
            if network
            else serial_schema(entry.data, version=False)
        )
        if encrypted:  # never pre-filled: an empty field keeps the stored key
            schema = schema.extend(OPTIONAL_KEYS.schema)
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = reconfigured(dict(entry.data), user_input, network, encrypted)
            if not errors:
                self._abort_if_port_configured(data, entry.entry_id)
                try:
                    data = await async_validated(data)
                except (CannotConnect, CannotCommunicate, InvalidKey) as err:
                    errors = form_error(err)
                else:
                    if entry.unique_id:
                        await self.async_set_unique_id(data[CONF_SERIAL_ID])
                        self._abort_if_unique_id_mismatch(reason="wrong_meter")
                    return self.async_update_reload_and_abort(entry, title=title(data), data=data)
            # What was typed, keys included, is shown again; never what is stored.
            schema = self.add_suggested_values_to_schema(schema, user_input)
        return self.async_show_form(step_id="reconfigure", data_schema=schema, errors=errors)

    @ends_well
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
            if import_data[CONF_DSMR_VERSION] == VERSION_AUTO:
                merged[CONF_DSMR_VERSION] = entry.data[CONF_DSMR_VERSION]  # detected before
            if merged == dict(entry.data):
                return self.async_abort(reason="already_configured")
            return self.async_update_reload_and_abort(
                entry, data=merged, reason="already_configured"
            )
        for entry in self._async_current_entries(include_ignore=False):
            if port_url(entry.data) == port_url(import_data):  # a meter without identifier
                return self._async_abort_yaml_duplicate(import_data, entry)
        data = {**import_data, CONF_PROTOCOL: DSMR_PROTOCOL}
        shown = redact_port(port_url(data))
        try:
            await async_check_port(port_url(data))
        except InvalidPort as err:
            LOGGER.error("The dsmr port %s in YAML is refused: %s; fix its block", shown, err)
            return self.async_abort(reason="invalid_port")
        except CannotConnect:
            pass  # a device not plugged in (yet): said below, retried at the next start
        try:
            if data[CONF_DSMR_VERSION] == VERSION_AUTO:
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
        if data[CONF_SERIAL_ID]:
            await self.async_set_unique_id(data[CONF_SERIAL_ID])
            if same := self.hass.config_entries.async_entry_for_domain_unique_id(
                DOMAIN, data[CONF_SERIAL_ID]
            ):
                return self._async_abort_yaml_duplicate(import_data, same)
        return self.async_create_entry(title=title(data), data=data)

    def _async_abort_yaml_duplicate(
        self, import_data: dict[str, Any], entry: ConfigEntry
    ) -> ConfigFlowResult:
        LOGGER.warning(
            "The dsmr meter on %s in YAML is already set up as '%s'; ignoring its YAML block",
            redact_port(port_url(import_data)),
            redact_port(entry.title),
        )
        return self.async_abort(reason="already_configured")
