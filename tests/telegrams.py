"""Hand-made telegrams with a correct CRC, served by the simulator over real TCP.

`ReplayMeter` is a simulated meter of one version that sends exactly the text it is given
(encrypted like a real meter of that version when it is one), so a test controls every line.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.const import DOMAIN
from dsmr_sim.crc import with_crc
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer
from dsmr_sim.templates import Rendered

from .helpers import validated

ELECTRICITY_ID = "4530303435303031363238353137313135"  # E0045001628517115, hex ASCII
GAS_ID = "4730303339303031363532303530323136"  # G0039001652050216
WATER_ID = "5730303339303031363532303530323137"


class ReplayMeter(Meter):
    """A meter of `version` that sends `text` (change it between telegrams)."""

    def __init__(self, version: str, text: str, **kwargs: Any) -> None:
        """Send `text`; `kwargs` go to `Meter` (e.g. `key=` for encrypted versions)."""
        super().__init__(version, **kwargs)
        self.text = text

    def render(self) -> Rendered:
        """The given text, as it is."""
        return Rendered(text=self.text)


def telegram(*lines: str, header: str = "/ISk5\\2MT382-1000") -> str:
    """A telegram of `lines` between `header` and a correct CRC, CRLF line ends."""
    return with_crc("\r\n".join([header, "", *lines]) + "\r\n!")


def dsmr5(*lines: str, stamp: str = "240115120000W", ident: str = ELECTRICITY_ID) -> str:
    """A DSMR 5 telegram: version, timestamp and equipment identifier, then `lines`."""
    return telegram("1-3:0.2.8(50)", f"0-0:1.0.0({stamp})", f"0-0:96.1.1({ident})", *lines)


# dsmr_parser's own test frame of the Sagemcom T210-D-r (Austria), inside the encryption
# (dsmr_parser test/example_telegrams.py, TELEGRAM_SAGEMCOM_T210_D_R).
SAGEMCOM_T210_D_R = (
    "/EST5\\253710000_A\r\n"
    "\r\n"
    "1-3:0.2.8(50)\r\n"
    "0-0:1.0.0(221006155014S)\r\n"
    "1-0:1.8.0(006545766*Wh)\r\n"
    "1-0:1.8.1(005017120*Wh)\r\n"
    "1-0:1.8.2(001528646*Wh)\r\n"
    "1-0:1.7.0(000000286*W)\r\n"
    "1-0:2.8.0(000000058*Wh)\r\n"
    "1-0:2.8.1(000000000*Wh)\r\n"
    "1-0:2.8.2(000000058*Wh)\r\n"
    "1-0:2.7.0(000000000*W)\r\n"
    "1-0:3.8.0(000000747*varh)\r\n"
    "1-0:3.8.1(000000000*varh)\r\n"
    "1-0:3.8.2(000000747*varh)\r\n"
    "1-0:3.7.0(000000000*var)\r\n"
    "1-0:4.8.0(003897726*varh)\r\n"
    "1-0:4.8.1(002692848*varh)\r\n"
    "1-0:4.8.2(001204878*varh)\r\n"
    "1-0:4.7.0(000000166*var)\r\n"
    "!7EF9\r\n"
)


async def austrian_entry(
    hass: HomeAssistant, server: TcpServer, options: dict[str, Any], entry_id: str | None = None
) -> MockConfigEntry:
    """An entry for the Austrian meter `server` serves, with its import total registered.

    Its equipment has no identifier: unique ids start with the entry id.
    """
    kwargs = {"entry_id": entry_id} if entry_id else {}
    entry = MockConfigEntry(domain=DOMAIN, data=await validated(server), options=options, **kwargs)
    entry.add_to_hass(hass)
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"{entry.entry_id}_electricity_imported_total",
        suggested_object_id="electricity_meter_energy_consumption_total",
        config_entry=entry,
    )
    return entry
