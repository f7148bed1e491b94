"""Options: how often entities update, how long silence is trusted, the peak threshold, sharing.

The peak threshold (kW) is shown only for meters that send the quarter-hour demand (1-0:1.4.0).

Sharing (the re-broadcast) is a collapsed section of the same form; its answers are stored as
flat options (`rebroadcast`, `rebroadcast_host`, ...). An address that cannot be listened on is
a form error at once (a trial bind), not a repair issue after the reload. Saved options reload
the entry, which applies them.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigFlowResult, OptionsFlowWithReload
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)
import probatio as vol

from .const import (
    CONF_DSMR_VERSION,
    CONF_PEAK_THRESHOLD,
    CONF_REBROADCAST,
    CONF_REBROADCAST_HOST,
    CONF_REBROADCAST_PORT,
    CONF_TIME_BETWEEN_UPDATE,
    CONF_WATCHDOG_TIMEOUT,
    DEFAULT_TIME_BETWEEN_UPDATE,
    DEFAULT_WATCHDOG_TIMEOUT,
    ENCRYPTED_DSMR_VERSIONS,
)
from .demand import DEFAULT_THRESHOLD_KW
from .descriptions import has_demand
from .flow_guard import ends_well
from .forms import shared, sharing_section
from .sharing import async_trial_listen

# The capacity tariff's threshold: kW, 0 (every new peak) to 100 (a large connection).
PEAK_THRESHOLD_SELECTOR = NumberSelector(
    NumberSelectorConfig(
        min=0, max=100, step=0.1, unit_of_measurement="kW", mode=NumberSelectorMode.BOX
    )
)


class DsmrOptionsFlow(OptionsFlowWithReload):
    """Update window, watchdog, (Belgian meters) the lowest peak worth a warning, sharing."""

    @ends_well
    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The update window (0 = every telegram), the watchdog (s), the peak threshold, sharing."""
        # Keep options this form does not show.
        options = dict(self.config_entry.options)
        errors: dict[str, str] = {}
        if user_input is not None:
            answers = dict(user_input)
            section = answers.pop(CONF_REBROADCAST, None)  # absent: sharing stays as it is
            options |= answers
            if section is not None:
                found, error = shared(section, encrypted=self._encrypted)
                options |= found
                if error is None and found[CONF_REBROADCAST]:
                    error = await self._async_cannot_listen(found)
                if error is not None:
                    errors["base"] = error
            if not errors:
                return self.async_create_entry(data=options)
        return self.async_show_form(
            step_id="init", data_schema=self._schema(options), errors=errors
        )

    @property
    def _encrypted(self) -> bool:
        return self.config_entry.data.get(CONF_DSMR_VERSION) in ENCRYPTED_DSMR_VERSIONS

    def _schema(self, options: dict[str, Any]) -> vol.Schema:
        fields: dict[Any, Any] = {
            vol.Required(
                CONF_TIME_BETWEEN_UPDATE,
                default=options.get(CONF_TIME_BETWEEN_UPDATE, DEFAULT_TIME_BETWEEN_UPDATE),
            ): vol.All(vol.Coerce(int), vol.Range(min=0, max=3600)),
            vol.Required(
                CONF_WATCHDOG_TIMEOUT,
                default=options.get(CONF_WATCHDOG_TIMEOUT, DEFAULT_WATCHDOG_TIMEOUT),
            ): vol.All(vol.Coerce(int), vol.Range(min=5, max=3600)),
        }
        if has_demand(self.config_entry.data[CONF_DSMR_VERSION]):
            fields[
                vol.Required(
                    CONF_PEAK_THRESHOLD,
                    default=options.get(CONF_PEAK_THRESHOLD, DEFAULT_THRESHOLD_KW),
                )
            ] = PEAK_THRESHOLD_SELECTOR
        fields[vol.Optional(CONF_REBROADCAST)] = sharing_section(options, encrypted=self._encrypted)
        return vol.Schema(fields)

    async def _async_cannot_listen(self, options: dict[str, Any]) -> str | None:
        """Why the new address cannot be listened on (a translation key), or None.

        Not tried when the entry's server has that port already: it holds the port itself
        (on Linux even another address of the same port is refused while it listens), and the
        reload moves it.
        """
        entry = self.config_entry
        if entry.state is ConfigEntryState.LOADED:
            running = entry.runtime_data.rebroadcast
            if running is not None and running.port == options[CONF_REBROADCAST_PORT]:
                return None
        failure = await async_trial_listen(
            options[CONF_REBROADCAST_HOST], options[CONF_REBROADCAST_PORT]
        )
        return None if failure is None else str(failure)
