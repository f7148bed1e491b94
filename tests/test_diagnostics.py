"""The diagnostics download, as a snapshot: what it shows, and that nothing identifies the meter."""

from __future__ import annotations

import json
import re
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.dsmr.entity import readable
from dsmr_sim.crc import with_crc
from dsmr_sim.meter import Meter
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for
from .telegrams import ReplayMeter

KEY = "00112233445566778899AABBCCDDEEFF"
AUTH_KEY = "FFEEDDCCBBAA99887766554433221100"


def _identifiers(data: dict[str, Any]) -> set[str]:
    """The meter's identifiers as stored (hex), as text, and the keys."""
    found = {data["serial_id"], data.get("serial_id_gas")}
    found.update(device["id"] for device in data.get("mbus_devices", []))
    found.update(readable(ident) for ident in list(found) if ident)
    found.update(data[key] for key in ("encryption_key", "authentication_key") if key in data)
    return {ident for ident in found if ident}


@pytest.mark.parametrize(
    ("meter", "extra"),
    [
        pytest.param(Meter("5B", seed=5, mbus=("gas", "water"), text_message="Hello"), {}, id="5B"),
        pytest.param(Meter("4", seed=7), {}, id="4-gas"),
        pytest.param(
            Meter("SAGEMCOM_T210_D_R", seed=3, key=KEY, auth_key=AUTH_KEY),
            {"authentication_key": AUTH_KEY},
            id="encrypted",
        ),
    ],
)
async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
    meter: Meter,
    extra: dict[str, Any],
) -> None:
    server = TcpServer(meter)
    await server.start()
    try:
        entry = await setup_meter(hass, server, **extra)
        await send(entry, server)  # sub-meters: named by two telegrams in a row
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        # The TCP port is the test's own (a free one), not the meter's; too_fast: the pace.
        assert diagnostics == snapshot(exclude=props("port", "too_fast"))
        text = json.dumps(diagnostics).lower()
        identifiers = _identifiers(dict(entry.data))
        assert identifiers
        assert [ident for ident in identifiers if ident.lower() in text] == []
        assert server.host not in text
        # The operator's text message to the owner: redacted in the raw telegram, and parsed.
        assert "hello" not in text
        assert b"Hello".hex() not in text
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_diagnostics_hide_keys_and_identifiers(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    key = "00112233445566778899AABBCCDDEEFF"
    server = TcpServer(Meter("MSn", seed=5, key=key, mbus=("gas",)))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        await send(entry, server)  # the gas meter: named by two telegrams in a row
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        text = json.dumps(diagnostics)
        assert key not in text
        assert entry.data["serial_id"] not in text
        mbus_id = entry.data["mbus_devices"][0]["id"]
        assert mbus_id not in text
        assert diagnostics["reader"]["telegrams"] == 2
        assert diagnostics["raw_telegram"] is None  # encrypted frames are not shown
        assert await hass.config_entries.async_unload(entry.entry_id)
        await server.stop()
        # A plain meter: the raw telegram is there, without its identifiers.
        plain = TcpServer(Meter("5B", seed=5, mbus=("gas",), text_message="Hello"))
        await plain.start()
        entry = await setup_meter(hass, plain)
        await send(entry, plain)
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        raw = diagnostics["raw_telegram"]
        assert raw.startswith("/")
        assert "1-0:1.8.1(" in raw
        for ident in (entry.data["serial_id"], entry.data["mbus_devices"][0]["id"]):
            assert ident not in json.dumps(diagnostics)
        await plain.stop()
        assert diagnostics["telegram"]["CURRENT_ELECTRICITY_USAGE"]["value"] is not None
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()


async def test_diagnostics_name_the_kind_of_error_not_the_bridge(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """A bridge that refuses: diagnostics say a connection failed, not to which address."""
    server = TcpServer(Meter("5", seed=5))
    await server.start()
    entry = await setup_meter(hass, server)
    stats = entry.runtime_data.coordinator.counters
    await server.stop()  # gone: every reconnect to 127.0.0.1:port is refused
    await wait_for(lambda: stats.connection_errors >= 1, timeout=10)
    assert f"'{server.host}', {server.port}" in str(stats.last_error)  # the log names it
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["entry"]["data"]["host"] == "**REDACTED**"
    # The entry's own port number stays (alone, it locates nothing); nowhere else.
    del diagnostics["entry"]["data"]["port"]
    text = json.dumps(diagnostics)
    assert server.host not in text
    assert re.search(rf"(?<![\d.]){server.port}(?![\d.])", text) is None
    assert diagnostics["reader"]["last_error_kind"] == "connect"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_with_a_value_that_does_not_serialize(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """A value to_json() cannot take (float(Decimal('sNaN')) raises): the rest is still shown."""
    text = Meter("5", seed=5, mbus=("gas",), text_message="Hello").telegram()
    text = re.sub(r"1-0:1\.7\.0\([^)]*\)", "1-0:1.7.0(sNaN*kW)", text)
    text = re.sub(r"(0-1:24\.2\.1\([^)]*\))\([^)]*\)", r"\1(sNaN*m3)", text)
    server = TcpServer(ReplayMeter("5", with_crc(text.rpartition("!")[0] + "!")))
    await server.start()
    try:
        entry = await setup_meter(hass, server)
        latest = entry.runtime_data.coordinator.latest
        assert latest.CURRENT_ELECTRICITY_USAGE.value.is_snan()
        with pytest.raises(ValueError, match="signaling NaN"):
            latest.to_json()  # as the whole telegram, it does not serialize
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        telegram = diagnostics["telegram"]
        assert telegram["CURRENT_ELECTRICITY_USAGE"] == {"unreadable": "ValueError"}
        assert telegram["ELECTRICITY_USED_TARIFF_1"] == {"value": 4491.607, "unit": "kWh"}
        (gas,) = telegram["MBUS_DEVICES"]
        assert gas["MBUS_METER_READING"] == {"unreadable": "ValueError"}
        assert gas["MBUS_DEVICE_TYPE"] == {"value": 3, "unit": None}
        assert gas["MBUS_EQUIPMENT_IDENTIFIER"] == "**REDACTED**"
        assert telegram["EQUIPMENT_IDENTIFIER"] == "**REDACTED**"
        assert telegram["TEXT_MESSAGE"] == "**REDACTED**"
        dumped = json.dumps(diagnostics).lower()
        sent = {
            latest.EQUIPMENT_IDENTIFIER.value,
            latest.MBUS_DEVICES[0].MBUS_EQUIPMENT_IDENTIFIER.value,
        }
        identifiers = _identifiers(dict(entry.data)) | sent | {readable(i) for i in sent}
        assert [i for i in identifiers if i.lower() in dumped] == []
        assert "hello" not in dumped
        assert b"Hello".hex() not in dumped
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.stop()
