"""Repair issues: an unreachable or replaced meter, a register's new cycle, too many sub-meters.

A replaced meter's issue is fixed by moving the entry to the meter now sending (its entities and
history follow); a meter of another type is found by Reconfigure, which detects it.
"""

from __future__ import annotations

from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .connection import ConnectionState, port_url, redact_port
from .const import CONF_DSMR_VERSION, CONF_SERIAL_ID, CONF_SERIAL_ID_GAS, DOMAIN, LOGGER
from .migration import async_replace_meter
from .p1.telegram import gas_identifier, identifier

# Failed attempts in a row (1, 2, 4, 8 ... s apart) before a meter counts as unreachable: a
# bridge rebooting does not deserve an issue.
FAILURES_BEFORE_ISSUE = 5


def _create(
    hass: HomeAssistant,
    issue_id: str,
    key: str,
    placeholders: dict[str, str],
    severity: ir.IssueSeverity = ir.IssueSeverity.WARNING,
    *,
    data: dict[str, str | int | float | None] | None = None,
) -> None:
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        data=data,
        is_fixable=data is not None,
        is_persistent=False,
        severity=severity,
        translation_key=key,
        translation_placeholders=placeholders,
    )


@callback
def async_connection_changed(
    hass: HomeAssistant, entry: ConfigEntry, state: ConnectionState
) -> None:
    """Raise 'cannot reach the meter' after repeated failures; clear it once connected."""
    issue_id = f"unreachable_{entry.entry_id}"
    if state.connected:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
    elif state.failures_in_a_row >= FAILURES_BEFORE_ISSUE:
        placeholders = {
            "title": redact_port(entry.title),
            "port": redact_port(port_url(entry.data)),
            "error": state.reason or "unknown error",
        }
        _create(hass, issue_id, "unreachable", placeholders, ir.IssueSeverity.ERROR)


@callback
def async_meter_replaced(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The electricity meter reports another equipment identifier than the entry's."""
    placeholders = {"title": redact_port(entry.title)}
    data: dict[str, str | int | float | None] = {"entry_id": entry.entry_id}
    _create(hass, f"replaced_{entry.entry_id}", "meter_replaced", placeholders, data=data)


class ReplacedMeterFlow(RepairsFlow):
    """Move the entry to the meter that now sends on its port."""

    def __init__(self, entry: ConfigEntry) -> None:
        """For the entry whose meter was replaced."""
        self.entry = entry

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """The confirmation (what starts the flow gives the issue id, not an answer)."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Confirm; then the entry, its entities and devices take the new meter's identifiers."""
        if user_input is None:
            return self.async_show_form(
                step_id="confirm", description_placeholders={"title": redact_port(self.entry.title)}
            )
        snapshot = getattr(getattr(self.entry, "runtime_data", None), "coordinator", None)
        telegram = getattr(getattr(snapshot, "data", None), "telegram", None)
        version = self.entry.data[CONF_DSMR_VERSION]
        if telegram is None or not (serial := identifier(telegram, version)):
            return self.async_abort(reason="no_telegram")
        if any(e.unique_id == serial for e in self.hass.config_entries.async_entries(DOMAIN)):
            return self.async_abort(reason="already_configured")
        data = {**self.entry.data, CONF_SERIAL_ID: serial}
        if CONF_SERIAL_ID_GAS in data:
            data[CONF_SERIAL_ID_GAS] = gas_identifier(telegram, version)
        async_replace_meter(self.hass, self.entry, data)
        return self.async_create_entry(data={})


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None
) -> RepairsFlow:
    """The flow that fixes a replaced meter's issue."""
    entry = hass.config_entries.async_get_entry(str((data or {}).get("entry_id")))
    if entry is None:
        raise data_entry_flow.UnknownFlow
    return ReplacedMeterFlow(entry)


@callback
def async_register_new_cycle(
    hass: HomeAssistant, entry: ConfigEntry, entity_id: str, before: str, after: str
) -> None:
    """A register stayed lower for an hour: shown as a new cycle."""
    placeholders = {
        "title": redact_port(entry.title),
        "entity": entity_id,
        "before": before,
        "after": after,
    }
    _create(hass, f"new_cycle_{entity_id}", "register_new_cycle", placeholders)


@callback
def async_too_many_submeters(hass: HomeAssistant, entry: ConfigEntry, cap: int) -> None:
    """No more M-Bus sub-meters are added (their identifiers are serial numbers: not logged)."""
    title = redact_port(entry.title)
    LOGGER.warning(
        "%s has reached the limit of %s M-Bus sub-meters: no more are added (see Repairs)",
        title,
        cap,
    )
    issue_id = f"too_many_submeters_{entry.entry_id}"
    _create(hass, issue_id, "too_many_submeters", {"title": title, "max": str(cap)})


@callback
def async_submeters_within_cap(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Withdraw 'too many sub-meters' (each start counts them again)."""
    ir.async_delete_issue(hass, DOMAIN, f"too_many_submeters_{entry.entry_id}")
