"""M-Bus sub-meters stay bounded whatever the meter sends ("Bounded under any stream", item 2).

A real bridge (real TCP) sends hand-made telegrams with valid CRCs. A sub-meter's device is made
once two published telegrams in a row carried its identifier on its channel; the entry remembers
one sub-meter per channel; and no more than MAX_SUBMETERS are made per entry, past which a
repair issue says so. Each test was seen failing on the code before (figures in its docstring)
but the two guards that say so: a sub-meter known already, or announced, waits for nothing.
"""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.dsmr.const import CONF_MBUS_DEVICES, DOMAIN
from custom_components.dsmr.submeters import MAX_SUBMETERS

from .helpers import RawBridge, wait_for
from .telegrams import ELECTRICITY_ID, GAS_ID, WATER_ID, dsmr5

GAS = "sensor.gas_meter_gas_consumption"
WATER = "sensor.water_meter_water_consumption"
# M-Bus device type (EN 13757-3, three digits as sent) and unit of channels 1-9 in the cap test.
KINDS = [
    ("003", "m3"),  # gas
    ("007", "m3"),  # water
    ("004", "GJ"),  # heat
    ("006", "m3"),  # warm water
    ("010", "GJ"),  # cooling (outlet)
    ("011", "GJ"),  # cooling (inlet)
    ("012", "GJ"),  # heat (inlet)
    ("013", "GJ"),  # heat / cooling
    ("003", "m3"),  # a second gas meter
]


def mbus_id(text: str) -> str:
    """An M-Bus equipment identifier as meters send it: the text in hex ASCII."""
    return text.encode().hex().upper()


def channel(n: int, ident: str, value: float, *, kind: str = "003", unit: str = "m3") -> list[str]:
    """The lines of M-Bus channel `n`: type, identifier, reading."""
    return [
        f"0-{n}:24.1.0({kind})",
        f"0-{n}:96.1.0({ident})",
        f"0-{n}:24.2.1(240115120000W)({value:09.3f}*{unit})",
    ]


def frame(number: int, *mbus: list[str]) -> bytes:
    """Telegram `number` of the electricity meter (its power moves), with the M-Bus lines."""
    minutes, seconds = divmod(number, 60)
    lines = [
        f"1-0:1.8.1({1000 + number / 1000:010.3f}*kWh)",
        f"1-0:1.7.0({0.1 + number % 7 / 10:06.3f}*kW)",
    ]
    stamp = f"2401151{minutes // 60 % 10}{minutes % 60:02d}{seconds:02d}W"
    return dsmr5(*lines, *(line for c in mbus for line in c), stamp=stamp).encode()


async def bridge_entry(
    hass: HomeAssistant, servers: list[Any], window: float = 0, **data: Any
) -> tuple[RawBridge, MockConfigEntry]:
    """A loaded DSMR 5 entry reading a raw bridge, with `window` seconds between publishes."""
    bridge = await RawBridge().start()
    servers.append(bridge)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=ELECTRICITY_ID,
        title="Meter in the hall",
        data={
            "host": "127.0.0.1",
            "port": bridge.port,
            "dsmr_version": "5",
            "protocol": "dsmr_protocol",
            "serial_id": ELECTRICITY_ID,
            "serial_id_gas": None,
            **data,
        },
        options={"time_between_update": window},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    return bridge, entry


async def deliver(
    hass: HomeAssistant, bridge: RawBridge, entry: MockConfigEntry, data: bytes
) -> None:
    """Send one telegram and wait until it is read and what it made is registered."""
    stats = entry.runtime_data.coordinator.counters
    before = stats.telegrams
    await bridge.send(data)
    await wait_for(lambda: stats.telegrams == before + 1)
    await hass.async_block_till_done()


def device_names(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    """The names of the entry's devices, sorted."""
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return sorted(str(d.name) for d in devices)


def remembered_channels(entry: MockConfigEntry) -> list[int]:
    """The channels of the sub-meters the entry remembers, in its order."""
    return [k["channel"] for k in entry.data.get(CONF_MBUS_DEVICES, [])]


def register_gas_meter(hass: HomeAssistant, entry: MockConfigEntry, ident: str) -> None:
    """A gas meter's device and reading in the registries, as core (or the code before) left it."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, ident)}, name="Gas Meter"
    )
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        ident,
        suggested_object_id="gas_meter_gas_consumption",
        config_entry=entry,
        device_id=device.id,
        original_device_class="gas",
        translation_key="gas_meter_reading",
        unit_of_measurement="m³",
    )


def state(hass: HomeAssistant, entity_id: str) -> str | None:
    """The entity's state (None: no state)."""
    found = hass.states.get(entity_id)
    return None if found is None else found.state


def unique_id_of(hass: HomeAssistant, entity_id: str) -> str | None:
    """The unique id of an entity in the registry (None: not there)."""
    reg = er.async_get(hass).async_get(entity_id)
    return None if reg is None else reg.unique_id


async def test_a_new_identifier_in_every_telegram_makes_no_devices(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """200 telegrams whose channel 1 names another sub-meter each time, and a steady water meter.

    Before: 202 devices (the meter, the water meter, one gas meter per telegram), 201 records.
    """
    caplog.set_level(logging.DEBUG, logger="custom_components.dsmr")
    bridge, entry = await bridge_entry(hass, servers)
    churned = [mbus_id(f"G{n:016d}") for n in range(200)]
    for n, ident in enumerate(churned):
        water = channel(2, WATER_ID, 100 + n / 1000, kind="007")
        await deliver(hass, bridge, entry, frame(n, channel(1, ident, 10 + n / 1000), water))
    names = device_names(hass, entry)
    channels = remembered_channels(entry)
    assert len(names) <= 3, f"{len(names)} devices, {len(channels)} records"
    assert names == ["Electricity Meter", "Water Meter"]
    assert len(channels) == len(set(channels)), channels
    assert channels == [2]
    assert unique_id_of(hass, WATER) == WATER_ID
    assert float(str(state(hass, WATER))) == pytest.approx(100.199)
    assert not any(ident in caplog.text for ident in [*churned, WATER_ID])


async def test_a_gas_meter_appears_after_its_second_telegram(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """A gas meter on channel 1: its device after the second telegram, with core's unique id.

    Before: the device came with the first telegram.
    """
    bridge, entry = await bridge_entry(hass, servers)
    await deliver(hass, bridge, entry, frame(1, channel(1, GAS_ID, 12.345)))
    assert device_names(hass, entry) == ["Electricity Meter"]
    assert hass.states.get(GAS) is None
    assert CONF_MBUS_DEVICES not in entry.data
    await deliver(hass, bridge, entry, frame(2, channel(1, GAS_ID, 12.346)))
    assert device_names(hass, entry) == ["Electricity Meter", "Gas Meter"]
    assert unique_id_of(hass, GAS) == GAS_ID  # core's: the bare M-Bus identifier
    assert state(hass, GAS) == "12.346"
    # The unit as Home Assistant writes it (a record of the unit as sent, "m3", is read too).
    assert entry.data[CONF_MBUS_DEVICES] == [{"channel": 1, "type": 3, "id": GAS_ID, "unit": "m³"}]
    # At the next start it is there before any telegram, and shows the first one published.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    assert hass.states.get(GAS) is not None
    await deliver(hass, bridge, entry, frame(3, channel(1, GAS_ID, 12.347)))
    assert state(hass, GAS) == "12.347"
    assert device_names(hass, entry) == ["Electricity Meter", "Gas Meter"]


async def test_a_channel_announced_before_shows_its_first_reading(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """A water meter announced (type and identifier) before its first reading: no wait then.

    Its identifier was in the previous publish already. (Held before too: a guard.)
    """
    bridge, entry = await bridge_entry(hass, servers)
    announced = channel(2, WATER_ID, 0, kind="007")[:2]
    await deliver(hass, bridge, entry, frame(1, announced))
    assert device_names(hass, entry) == ["Electricity Meter"]
    await deliver(hass, bridge, entry, frame(2, channel(2, WATER_ID, 456.789, kind="007")))
    assert device_names(hass, entry) == ["Electricity Meter", "Water Meter"]
    assert state(hass, WATER) == "456.789"


@pytest.mark.parametrize("known_by", ["an_earlier_release", "core"])
async def test_a_known_gas_meter_needs_no_second_telegram(
    hass: HomeAssistant, servers: list[Any], known_by: str
) -> None:
    """A sub-meter the entry remembers, or whose entity core left, shows at the first publish.

    An earlier release remembered a channel without its unit (it had no reading then): no
    entity is restored for it, the first telegram with a reading makes it. Core's entity is
    restored. (Both held before as well: a guard that the wait is for unknown sub-meters only.)
    """
    data: dict[str, Any] = {}
    if known_by == "an_earlier_release":
        data[CONF_MBUS_DEVICES] = [{"channel": 1, "type": 3, "id": GAS_ID, "unit": None}]
    bridge, entry = await bridge_entry(hass, servers, **data)
    if known_by == "core":
        await hass.config_entries.async_unload(entry.entry_id)
        register_gas_meter(hass, entry, GAS_ID)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    await deliver(hass, bridge, entry, frame(1, channel(1, GAS_ID, 12.345)))
    assert device_names(hass, entry) == ["Electricity Meter", "Gas Meter"]
    assert unique_id_of(hass, GAS) == GAS_ID
    assert state(hass, GAS) == "12.345"


async def test_a_replaced_gas_meter_replaces_its_record(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """A new gas meter on channel 1: one record for the channel, the old device stays.

    Before: the entry kept both records.
    """
    bridge, entry = await bridge_entry(hass, servers)
    for n in range(2):
        await deliver(hass, bridge, entry, frame(n, channel(1, GAS_ID, 12 + n / 1000)))
    new = mbus_id("G0039001652059999")
    for n in range(2, 4):
        await deliver(hass, bridge, entry, frame(n, channel(1, new, 0.5 + n / 1000)))
    assert entry.data[CONF_MBUS_DEVICES] == [{"channel": 1, "type": 3, "id": new, "unit": "m³"}]
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert sorted(ident for d in devices for _, ident in d.identifiers) == sorted(
        [ELECTRICITY_ID, GAS_ID, new]
    )  # the user deletes the old one from its device page
    assert unique_id_of(hass, GAS) == GAS_ID
    assert unique_id_of(hass, f"{GAS}_2") == new
    assert state(hass, f"{GAS}_2") == "0.503"


async def test_a_window_publishes_a_sub_meter_two_telegrams_named(
    hass: HomeAssistant, servers: list[Any]
) -> None:
    """With a 30 s window a new sub-meter waits for the publish after two telegrams named it.

    A connection's first two telegrams are published at once (the gas meter comes with the
    second); a water meter that two telegrams of one window name comes with that window's
    publish, not before. Before: the device came with the first telegram.
    """
    bridge, entry = await bridge_entry(hass, servers, window=30)
    coordinator = entry.runtime_data.coordinator
    gas = channel(1, GAS_ID, 12.345)
    await deliver(hass, bridge, entry, frame(1, gas))  # published at once
    assert device_names(hass, entry) == ["Electricity Meter"]
    await deliver(hass, bridge, entry, frame(2, gas))  # a connection's second: at once too
    assert coordinator.published == 2
    assert device_names(hass, entry) == ["Electricity Meter", "Gas Meter"]
    water = channel(2, WATER_ID, 1.5, kind="007")
    await deliver(hass, bridge, entry, frame(3, gas, water))  # in the window
    await deliver(hass, bridge, entry, frame(4, gas, water))  # in the window too
    assert coordinator.published == 2
    assert device_names(hass, entry) == ["Electricity Meter", "Gas Meter"]
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
    await wait_for(lambda: coordinator.published == 3)
    await hass.async_block_till_done()
    assert device_names(hass, entry) == ["Electricity Meter", "Gas Meter", "Water Meter"]


async def test_no_more_sub_meters_than_the_cap(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Nine steady sub-meters (channels 1-9), then channel 1 changes every second telegram.

    Eight devices are made, then a repair issue and one warning; nothing more after it.
    Before: 9 sub-meter devices from the steady channels, then one more per change (19 after
    the 20 telegrams), as many records.
    """
    caplog.set_level(logging.DEBUG, logger="custom_components.dsmr")
    bridge, entry = await bridge_entry(hass, servers)
    steady = [mbus_id(f"S{n:016d}") for n in range(1, 10)]

    def lines(n: int, first: str) -> list[list[str]]:
        idents = [first, *steady[1:]]
        return [
            channel(c, ident, c + n / 1000, kind=kind, unit=unit)
            for c, (ident, (kind, unit)) in enumerate(zip(idents, KINDS, strict=True), start=1)
        ]

    for n in range(2):
        await deliver(hass, bridge, entry, frame(n, *lines(n, steady[0])))
    submeters = len(device_names(hass, entry)) - 1
    assert submeters == MAX_SUBMETERS == 8, f"{submeters} sub-meter devices"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"too_many_submeters_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "too_many_submeters"
    assert issue.translation_placeholders == {"title": "Meter in the hall", "max": "8"}
    assert issue.severity is ir.IssueSeverity.WARNING
    churned = [mbus_id(f"C{n:016d}") for n in range(10)]
    for n, ident in enumerate(churned):
        for repeat in range(2):  # each identifier twice in a row: each would be confirmed
            number = 2 + 2 * n + repeat
            await deliver(hass, bridge, entry, frame(number, *lines(number, ident)))
    submeters = len(device_names(hass, entry)) - 1
    assert submeters == MAX_SUBMETERS, f"{submeters} sub-meter devices after the changes"
    channels = remembered_channels(entry)
    assert sorted(channels) == list(range(1, 9))
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.dsmr") and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Meter in the hall" in warnings[0].getMessage()
    assert not any(ident in caplog.text for ident in [*steady, *churned])
    # A new start looks again: the issue goes, and comes back once the cap is met again.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue.issue_id) is None
    await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    for n in range(2):
        await deliver(hass, bridge, entry, frame(30 + n, *lines(30 + n, steady[0])))
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue.issue_id) is not None
    assert len(device_names(hass, entry)) - 1 == MAX_SUBMETERS


async def test_an_entry_filled_by_an_earlier_release_is_told_at_start(
    hass: HomeAssistant, servers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """12 gas meters on channel 1, remembered and registered as the code before left them.

    The entry keeps one record per channel (the latest); the devices stay for the user to
    delete, and the repair issue says so at once. Before: 12 records kept, no issue.
    """
    caplog.set_level(logging.DEBUG, logger="custom_components.dsmr")
    churned = [mbus_id(f"G{n:016d}") for n in range(12)]
    records = [{"channel": 1, "type": 3, "id": ident, "unit": "m3"} for ident in churned]
    bridge, entry = await bridge_entry(hass, servers)
    await hass.config_entries.async_unload(entry.entry_id)
    for ident in churned:
        register_gas_meter(hass, entry, ident)
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_MBUS_DEVICES: records})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.data[CONF_MBUS_DEVICES] == records[-1:]
    assert len(device_names(hass, entry)) == 13  # restored: the user deletes stale ones
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"too_many_submeters_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"title": "Meter in the hall", "max": "8"}
    await wait_for(lambda: entry.runtime_data.connection.connected and bridge.client_count == 1)
    for n in range(2):
        await deliver(hass, bridge, entry, frame(n, channel(2, WATER_ID, 1 + n, kind="007")))
    assert "Water Meter" not in device_names(hass, entry)
    ours = [r for r in caplog.records if r.name.startswith("custom_components.dsmr")]
    assert len([r for r in ours if r.levelno >= logging.WARNING]) == 1
    assert not any(ident in caplog.text for ident in churned)
