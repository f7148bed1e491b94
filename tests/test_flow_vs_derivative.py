"""Our gas flow beside Home Assistant's Derivative helper, as the README suggested it (1 h window).

The same simulated day feeds both: the gas reading as our sensor publishes it (a state change
when a new capture carries a new value, in the update window after the telegram) into the real
`derivative` integration, and the captures themselves into `update_flow`. Home Assistant's
clock is the meter's (frozen and moved telegram by telegram). Home Assistant restarts once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.dsmr.p1.flow_rate import FlowState, update_flow
from dsmr_sim import Meter

from .simulated import mbus_readings

SOURCE = "sensor.gas_meter_gas_consumption"
DERIVED = "sensor.gas_flow_derivative"
ATTRIBUTES = {"unit_of_measurement": "m³", "device_class": "gas", "state_class": "total_increasing"}
WINDOW_S = 30  # our default update window: a change is published at the window's end
DOWN = (datetime(2024, 1, 16, 8, 0, tzinfo=UTC), datetime(2024, 1, 16, 14, 0, tzinfo=UTC))


def published(now: datetime) -> datetime:
    seconds = -(-int(now.timestamp()) // WINDOW_S) * WINDOW_S
    return datetime.fromtimestamp(seconds, UTC)


async def test_derivative_helper_sticks_and_spikes_where_our_flow_does_not(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    meter = Meter(
        "5",
        seed=1,
        start=datetime(2024, 1, 16, 0, 0),
        mbus=("gas",),
        appliances=True,
        mbus_interval=300,
    )
    freezer.move_to(meter.now)
    helper = MockConfigEntry(
        domain="derivative",
        title="Gas flow derivative",
        options={
            "name": "Gas flow derivative",
            "source": SOURCE,
            "round": 3.0,
            "time_window": {"hours": 1},
            "unit_time": "h",
        },
    )
    helper.add_to_hass(hass)
    assert await hass.config_entries.async_setup(helper.entry_id)

    ours: FlowState | None = None
    stored: dict[str, object] = {}
    shown = None
    timeline: list[tuple[datetime, float | None, float | None]] = []  # (time, ours, helper's)
    for reading in mbus_readings(meter, 22 * 3600, step=10):
        now = reading.now
        if DOWN[0] <= now < DOWN[1]:  # Home Assistant is down: nothing runs, nothing is shown
            if ours is not None:
                stored, ours, shown = ours.as_dict(), None, None
                assert await hass.config_entries.async_unload(helper.entry_id)
                hass.states.async_remove(SOURCE)
            continue
        if stored and ours is None:  # started again: our state and the gas reading restored
            freezer.move_to(now - timedelta(seconds=20))  # before the first telegram
            ours = FlowState.from_dict(stored)
            stored = {}
            assert await hass.config_entries.async_setup(helper.entry_id)
            assert ours.last is not None
            shown = ours.last.value
            hass.states.async_set(SOURCE, str(shown), ATTRIBUTES)
        ours = update_flow(ours, reading.at, reading.value, now)
        if reading.value != shown:
            freezer.move_to(published(now))
            shown = reading.value
            hass.states.async_set(SOURCE, str(shown), ATTRIBUTES)
            await hass.async_block_till_done()
        state = hass.states.get(DERIVED)
        helper_m3h = (
            float(state.state) if state and state.state not in {"unknown", "unavailable"} else None
        )
        timeline.append((now, ours.m3h, helper_m3h))

    state = hass.states.get(DERIVED)
    assert state is not None and state.attributes["unit_of_measurement"] == "m³/h"
    exact = [o for _, o, _ in timeline if o is not None]
    assert max(exact) > 0.5  # the boiler burned

    # 1. Gas stops: ours is 0 one capture later; the helper holds its last value until the
    #    next change, for hours at night.
    stuck = sum(10 for _, o, h in timeline if o == 0 and h is not None and h >= 0.1)
    assert stuck >= 3 * 3600

    # 2. Gas starts after a rest of an hour or more: the helper spreads the first capture's
    #    volume over the whole rest (a fraction of the flow); ours is the flow of that
    #    capture's 5 minutes.
    starts = []
    resting_since = None
    for t, o, h in timeline:
        if o == 0:
            resting_since = resting_since or t
        elif o is not None and o > 0.1:
            if resting_since and t - resting_since >= timedelta(hours=1) and h is not None:
                starts.append((o, h))
            resting_since = None
    assert starts and all(h < 0.25 * o for o, h in starts), starts

    # 3. After the restart the helper's first value carries the gas of six hours as if it had
    #    flowed in the hour before: a spike above any flow of the day. Ours is unknown until the
    #    first full interval after the restart, then exact again.
    after = [(t, o, h) for t, o, h in timeline if DOWN[1] <= t < DOWN[1] + timedelta(hours=1)]
    spike = max(h for _, _, h in after if h is not None)
    assert spike > 2 * max(exact)
    assert after[0][1] is None
    assert any(o is not None for _, o, _ in after)
    assert await hass.config_entries.async_unload(helper.entry_id)
