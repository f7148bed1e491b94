"""Repair issues: an unreachable or replaced meter, a register's new cycle, too many sub-meters."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .connection import ConnectionState, port_url, redact_port
from .const import DOMAIN, LOGGER

# Failed attempts in a row (1, 2, 4, 8 ... s apart) before a meter counts as unreachable: a
# bridge rebooting does not deserve an issue.
FAILURES_BEFORE_ISSUE = 5


def _create(
    hass: HomeAssistant,
    issue_id: str,
    key: str,
    placeholders: dict[str, str],
    severity: ir.IssueSeverity = ir.IssueSeverity.WARNING,
) -> None:
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
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
    _create(hass, f"replaced_{entry.entry_id}", "meter_replaced", placeholders)


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
