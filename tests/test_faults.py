"""Every fault a real installation sees, over real sockets and ttys: recovered, nothing lost."""

from __future__ import annotations

from datetime import timedelta
import os
from pathlib import Path

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.dsmr import connection as connection_module
from custom_components.dsmr.const import DOMAIN
from dsmr_sim.meter import Meter
from dsmr_sim.serial_pty import PtyServer
from dsmr_sim.tcp import TcpServer

from .helpers import send, setup_meter, wait_for

POWER = "sensor.electricity_meter_power_consumption"
TARIFF_1 = "sensor.electricity_meter_energy_consumption_tarif_1"
WATCHDOG = 1  # seconds, via the watchdog_timeout option
OPTIONS = {"time_between_update": 0, "watchdog_timeout": WATCHDOG}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect after 50 ms instead of 1 s (the backoff still doubles from there)."""
    monkeypatch.setattr(connection_module, "FIRST_RETRY_DELAY", 0.05)


def power(hass: HomeAssistant) -> str:
    return hass.states.get(POWER).state


def expected_power(server: TcpServer | PtyServer) -> float:
    return float(server.last_rendered.values["CURRENT_ELECTRICITY_USAGE"])


async def test_tcp_server_restart(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=11))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    await server.stop()
    await wait_for(lambda: power(hass) == STATE_UNAVAILABLE)
    await server.start()  # same port
    await wait_for(lambda: entry.runtime_data.connection.connected, timeout=WATCHDOG + 5)
    await send(entry, server)
    assert float(power(hass)) == expected_power(server)
    assert entry.runtime_data.coordinator.counters.connects == 2
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_half_open_tcp_is_caught_by_the_watchdog(hass: HomeAssistant) -> None:
    """The bridge stops sending but never closes (no FIN): the watchdog reconnects."""
    server = TcpServer(Meter("5", seed=12))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    server.faults.set("stall")
    loop = hass.loop
    started = loop.time()
    await wait_for(lambda: power(hass) == STATE_UNAVAILABLE, timeout=WATCHDOG + 3)
    assert loop.time() - started < WATCHDOG + 1.5
    stats = entry.runtime_data.coordinator.counters
    assert stats.watchdog_timeouts == 1
    server.faults.clear()
    await wait_for(
        lambda: entry.runtime_data.connection.connected and server.client_count == 1, timeout=5
    )
    await send(entry, server)
    assert float(power(hass)) == expected_power(server)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_silent_serial_meter_and_unplug_replug(hass: HomeAssistant, tmp_path: Path) -> None:
    server = PtyServer(Meter("5", seed=13), link=tmp_path / "by-id" / "usb-P1-if00")
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    # Silent meter: the tty stays open, nothing arrives; the watchdog covers serial too.
    server.faults.set("stall")
    await wait_for(lambda: power(hass) == STATE_UNAVAILABLE, timeout=WATCHDOG + 3)
    server.faults.clear()
    await wait_for(lambda: entry.runtime_data.connection.connected, timeout=5)
    await send(entry, server)
    assert float(power(hass)) == expected_power(server)
    # Unplug: the device vanishes; replug: a new pty behind the same by-id link.
    await server.unplug()
    await wait_for(lambda: power(hass) == STATE_UNAVAILABLE, timeout=WATCHDOG + 3)
    await server.replug()
    await wait_for(lambda: entry.runtime_data.connection.connected, timeout=10)
    await send(entry, server)
    assert float(power(hass)) == expected_power(server)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


@pytest.mark.parametrize("fault", ["drip", "garbage", "truncate", "duplicate"])
async def test_stream_faults_keep_values_right(hass: HomeAssistant, fault: str) -> None:
    server = TcpServer(Meter("5B", seed=14, mbus=("gas", "water")))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    stats = entry.runtime_data.coordinator.counters
    server.faults.set(fault)
    server.faults.drip_size = 16  # 16 bytes a millisecond: still hundreds of reads a telegram
    for _ in range(3):
        if fault == "truncate":
            # A cut-off telegram has no end: it is discarded when the next one starts.
            await server.send_telegram()
        else:
            await send(entry, server)
        assert power(hass) != STATE_UNAVAILABLE
    if fault != "truncate":
        assert float(power(hass)) == expected_power(server)
    server.faults.clear()
    await send(entry, server)
    assert float(power(hass)) == expected_power(server)
    assert float(hass.states.get(TARIFF_1).state) == float(
        server.last_rendered.values["ELECTRICITY_USED_TARIFF_1"]
    )
    if fault in {"garbage", "truncate"}:
        assert stats.discarded_bytes > 0
    assert entry.runtime_data.connection.connected
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_duplicate_telegrams_write_no_state(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=15))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    await send(entry, server)  # the gas meter: named by two telegrams in a row
    before = hass.states.get(TARIFF_1)
    stats = entry.runtime_data.coordinator.counters
    writes: list[str] = []
    hass.bus.async_listen("state_changed", lambda event: writes.append(event.data["entity_id"]))
    # The same bytes again (a bridge replaying its buffer): parsed, nothing changes, nothing written.
    server._write(server.last_payload, first=False)
    await wait_for(lambda: stats.telegrams == 3)
    await hass.async_block_till_done()
    assert writes == []
    assert hass.states.get(TARIFF_1).last_updated == before.last_updated
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_unreachable_port_raises_a_repair_issue_and_clears_it(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    link = tmp_path / "ttyP1"
    server = PtyServer(Meter("5", seed=16), link=link)
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    # The adapter is unplugged: the reader keeps trying, and says so after a few attempts.
    await server.stop()
    issues = ir.async_get(hass)
    issue_id = f"unreachable_{entry.entry_id}"
    await wait_for(lambda: issues.async_get_issue(DOMAIN, issue_id) is not None, timeout=10)
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue.translation_placeholders["port"] == str(link)
    # The device shows up (e.g. re-plugged): the issue goes away by itself.
    server = PtyServer(Meter("5", seed=16), link=link)
    await server.start()
    await wait_for(lambda: issues.async_get_issue(DOMAIN, issue_id) is None, timeout=10)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_connection_errors_are_logged_once_without_traceback(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    server = TcpServer(Meter("5", seed=18))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    await server.stop()  # gone: every reconnect fails
    await wait_for(
        lambda: entry.runtime_data.coordinator.counters.connection_errors >= 4, timeout=10
    )
    ours = [r for r in caplog.records if r.name.startswith("custom_components.dsmr")]
    failures = [r for r in ours if r.levelname == "WARNING" and "Cannot open" in r.getMessage()]
    assert len(failures) == 1
    assert f"127.0.0.1:{server.port}" in failures[0].getMessage()
    assert all(r.exc_info is None for r in ours)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_hundred_reloads_leak_nothing(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=17))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    await hass.async_block_till_done()

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def tasks() -> int:
        return len([t for t in __import__("asyncio").all_tasks() if not t.done()])

    baseline_fds, baseline_tasks = fds(), tasks()
    for _ in range(100):
        assert await hass.config_entries.async_reload(entry.entry_id)
        await wait_for(lambda: entry.runtime_data.connection.connected)
    await hass.async_block_till_done()
    await wait_for(lambda: server.client_count == 1)
    assert fds() == baseline_fds
    assert tasks() == baseline_tasks
    await send(entry, server)
    assert float(power(hass)) == expected_power(server)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_health_numbers_are_written_on_their_timer_not_on_every_push(
    hass: HomeAssistant,
) -> None:
    per_minute = "sensor.electricity_meter_telegrams_per_minute"
    server = TcpServer(Meter("5", seed=18))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    er.async_get(hass).async_update_entity(per_minute, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server, 3)
    assert hass.states.get(per_minute).state == "1"  # the first push's value, at once
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done()
    assert hass.states.get(per_minute).state == "3"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()


async def test_health_entities_follow_the_faults(hass: HomeAssistant) -> None:
    server = TcpServer(Meter("5", seed=18))
    await server.start()
    entry = await setup_meter(hass, server, OPTIONS)
    registry = er.async_get(hass)
    health = {
        key: f"sensor.electricity_meter_{key}"
        for key in (
            "telegrams_per_minute",
            "skipped_telegrams",
            "last_telegram",
            "meter_clock_offset",
        )
    }
    for entity_id in health.values():
        registry.async_update_entity(entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(lambda: entry.runtime_data.connection.connected)
    await send(entry, server, 3)
    connection = "binary_sensor.electricity_meter_connection"
    assert hass.states.get(connection).state == "on"  # connection state: on every push
    # The numbers refresh on their 10 s timer, not on every telegram.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done()
    assert int(hass.states.get(health["telegrams_per_minute"]).state) == 3
    assert hass.states.get(health["skipped_telegrams"]).state == "0"
    assert hass.states.get(health["last_telegram"]).state != "unknown"
    # The simulated meter's clock (2024) is far from HA's: the offset says so.
    assert abs(float(hass.states.get(health["meter_clock_offset"]).state)) > 86_400
    server.faults.set("bad_crc")
    await server.send_telegram()
    await server.send_telegram()
    await wait_for(lambda: entry.runtime_data.coordinator.counters.crc_errors == 2)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=22))
    await hass.async_block_till_done()
    assert hass.states.get(health["skipped_telegrams"]).state == "2"
    server.faults.set("stall")
    await wait_for(lambda: hass.states.get(connection).state == "off", timeout=WATCHDOG + 3)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await server.stop()
