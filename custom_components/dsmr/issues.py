"""Repair issues: a meter unreachable or replaced, a new cycle, too many M-Bus sub-meters.

(Raised in Home Assistant's issue registry. Not named repairs.py: Home Assistant loads an
integration's `repairs` module as the platform of its repair fix flows.)
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, LOGGER
from .ports import port_url, redact_port
from .reader import ConnectionState

# Connection attempts that must fail in a row (1, 2, 4, 8 ... s apart) before we raise an issue:
# short outages (a bridge rebooting) do not deserve one.
FAILURES_BEFORE_ISSUE = 5


def _unreachable_id(entry: ConfigEntry) -> str:
    return f"unreachable_{entry.entry_id}"


@callback
def async_connection_changed(
    hass: HomeAssistant, entry: ConfigEntry, state: ConnectionState
) -> None:
    """Raise the 'cannot reach the meter' issue after repeated failures; clear it on success."""
    issue_id = _unreachable_id(entry)
    if state.connected:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    if state.failures_in_a_row < FAILURES_BEFORE_ISSUE:
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="unreachable",
        translation_placeholders={
            "title": redact_port(entry.title),
            "port": redact_port(port_url(entry.data)),
            "error": state.reason or "unknown error",
        },
    )


@callback
def async_meter_replaced(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Tell the user the electricity meter now reports another equipment identifier."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"replaced_{entry.entry_id}",
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="meter_replaced",
        translation_placeholders={"title": redact_port(entry.title)},
    )


@callback
def async_register_new_cycle(
    hass: HomeAssistant,
    entry: ConfigEntry,
    entity_id: str,
    before: str,
    after: str,
) -> None:
    """Tell the user a register stayed lower for an hour and is now shown as a new cycle."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"new_cycle_{entity_id}",
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="register_new_cycle",
        translation_placeholders={
            "title": entry.title,
            "entity": entity_id,
            "before": before,
            "after": after,
        },
    )


def _too_many_submeters_id(entry: ConfigEntry) -> str:
    return f"too_many_submeters_{entry.entry_id}"


@callback
def async_too_many_submeters(hass: HomeAssistant, entry: ConfigEntry, cap: int) -> None:
    """Tell the user (a log line, a repair issue) that no more M-Bus sub-meters are added."""
    title = redact_port(entry.title)
    # No identifiers here: an M-Bus identifier is the serial number of someone's meter.
    LOGGER.warning(
        "%s has reached the limit of %s M-Bus sub-meters: no more are added (see Repairs)",
        title,
        cap,
    )
    ir.async_create_issue(
        hass,
        DOMAIN,
        _too_many_submeters_id(entry),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="too_many_submeters",
        translation_placeholders={"title": title, "max": str(cap)},
    )


@callback
def async_submeters_within_cap(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Withdraw the 'too many sub-meters' issue (a new start counts them again)."""
    ir.async_delete_issue(hass, DOMAIN, _too_many_submeters_id(entry))
