"""Every flow step ends well: a form error, an abort with a reason, or an entry.

The steps map every error they expect (a port the rule refuses, a port that cannot be opened,
a wrong key, a meter that sends nothing usable) to a form error or an abort. `ends_well` is the
final catch-all around each step for whatever they did not expect: the flow aborts with
`unknown`, and the error is logged once, its traceback included, with every secret the flow
knows of (keys, equipment identifiers, secrets in port URLs) taken out of the text.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
import functools
import re
import traceback
from typing import Any, Concatenate

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.data_entry_flow import AbortFlow

from .const import (
    CONF_AUTHENTICATION_KEY,
    CONF_ENCRYPTION_KEY,
    CONF_SERIAL_ID,
    CONF_SERIAL_ID_GAS,
    DOMAIN,
    LOGGER,
)
from .ports import REDACTED, redact_port

SECRET_FIELDS = frozenset(
    {CONF_ENCRYPTION_KEY, CONF_AUTHENTICATION_KEY, CONF_SERIAL_ID, CONF_SERIAL_ID_GAS}
)


def ends_well[F: ConfigFlow | OptionsFlow, **P](
    step: Callable[Concatenate[F, P], Coroutine[Any, Any, ConfigFlowResult]],
) -> Callable[Concatenate[F, P], Coroutine[Any, Any, ConfigFlowResult]]:
    """Wrap a flow step: an unexpected exception aborts the flow with `unknown`, logged once."""

    @functools.wraps(step)
    async def run(flow: F, /, *args: P.args, **kwargs: P.kwargs) -> ConfigFlowResult:
        try:
            return await step(flow, *args, **kwargs)
        except AbortFlow:
            raise  # Home Assistant's own way for a step to abort
        except Exception as err:
            sources: list[Mapping[str, Any]] = [
                a for a in (*args, *kwargs.values()) if isinstance(a, Mapping)
            ]
            sources.append(getattr(flow, "_data", None) or {})
            sources.extend(e.data for e in flow.hass.config_entries.async_entries(DOMAIN))
            text = "".join(traceback.format_exception(err)).rstrip()
            LOGGER.error(
                "Unexpected error in the dsmr %s step; please report it:\n%s",
                step.__name__.removeprefix("async_step_"),
                scrubbed(text, sources),
            )
            return flow.async_abort(reason="unknown")

    return run


def scrubbed(text: str, sources: list[Mapping[str, Any]]) -> str:
    """`text` without the keys and identifiers in `sources`, port URLs redacted."""
    for source in sources:
        for name, value in source.items():
            if not isinstance(value, str) or not value.strip():
                continue
            if name in SECRET_FIELDS:
                text = re.sub(re.escape(value.strip()), REDACTED, text, flags=re.IGNORECASE)
            elif (shown := redact_port(value)) != value:
                text = text.replace(value, shown)
    return text
