"""Hand-made telegrams with a correct CRC, served by the simulator over real TCP.

`ReplayMeter` is a simulated meter of one version that sends exactly the text it is given
(encrypted like a real meter of that version when it is one), so a test controls every line.
`mutate` and `MUTATION` change a telegram's lines (property tests), `recrc` gives it a CRC that
fits again.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from hypothesis import strategies as st
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


# Lines that are hard to map: OBIS codes with nothing after them (their expression runs on into
# the next line), empty and odd values, extra M-Bus channels, power failure logs, a DSMR 2.2
# gas value line, stray text.
TRICKY_LINES = [
    "1-0:1.7.0",
    "1-0:1.8.1",
    "0-1:24.3.0",
    "1-0:1.8.1()",
    "1-0:1.8.1(",
    "1-0:1.8.10(000001.000*kWh)",
    "1-0:1.7.0(xx.x*kW)",
    "0-0:96.14.0(0001)",
    "0-0:1.0.0(991332250000W)",
    "0-2:24.1.0(007)",
    "0-2:96.1.0(4730303339303031363532303530323136)",
    "0-2:24.2.1(240101000000W)(00001.000*m3)",
    "0-1:24.2.1(240101000000W)(00012.345*m3)",
    "0-1:24.3.0(240115120000)(00)(60)(1)(0-1:24.2.1)(m3)",
    "(01186.848)",
    "1-0:99.97.0()",
    "1-0:99.97.0(1)(0-0:96.7.19)(240101000000W)(0000000010*s)",
    "1-0:99.97.0(2)(0-0:96.7.19)",
    "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(230101000000W)(632525252525W)(00.000*kW)",
    "0-0:96.13.0(48656C6C6F)",
    "1-3:0.2.8(50)",
    "1-0:3.8.0(000123.456*kvarh)",  # no specification names these two
    "0-0:96.50.1(Xemex)",
    "garbage (1) here",
    "",
    "!",
    "/XMX5LGBBFG1009",
]
MUTATION_CHARS = "0123456789()*.:-!/ AWS\r\n"


def mutate(text: str, op: str, a: int, b: int, char: str, line: str) -> str:
    """Apply one mutation to the lines of a plain telegram (its first and last lines kept)."""
    lines = text.split("\r\n")
    body = lines[1:-2]  # between the header and the "!CRC" line
    if not body:
        return text
    i, j = a % len(body), b % len(body)
    target = body[i]
    if op == "char" and target:
        k = b % len(target)
        body[i] = target[:k] + char + target[k + 1 :]
    elif op == "delete_char" and target:
        k = b % len(target)
        body[i] = target[:k] + target[k + 1 :]
    elif op == "drop":
        del body[i]
    elif op == "duplicate":
        body.insert(j, target)
    elif op == "swap":
        body[i], body[j] = body[j], body[i]
    elif op == "insert":
        body.insert(i, line)
    elif op == "lone_lf":
        body[i] = target[: b % (len(target) + 1)] + "\n" + target[b % (len(target) + 1) :]
    return "\r\n".join([lines[0], *body, *lines[-2:]])


def recrc(text: str) -> str:
    """The same telegram with a CRC that fits its (mutated) content."""
    start, end = text.find("/"), text.rfind("!")
    if start < 0 or end < start:
        return text
    fixed: str = with_crc(text[start : end + 1])
    return fixed


# A mutation's arguments to `mutate`.
MUTATION = st.tuples(
    st.sampled_from(["char", "delete_char", "drop", "duplicate", "swap", "insert", "lone_lf"]),
    st.integers(0, 200),
    st.integers(0, 200),
    st.sampled_from(MUTATION_CHARS),
    st.sampled_from(TRICKY_LINES),
)


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
