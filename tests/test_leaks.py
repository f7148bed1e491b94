"""The session's secret check (tests/leaks.py) finds what leaks, and only that."""

from __future__ import annotations

import logging

from dsmr_sim.meter import Meter

from .leaks import HANDLER, HARNESS_STORAGE, SecretLog, meter_secrets

KEY = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"


def record(message: str, *args: object, name: str = "custom_components.dsmr") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_finds_keys_and_identifiers_in_any_form() -> None:
    meter = Meter("5B", seed=80, mbus=("gas",))
    check = SecretLog()
    check.add([*meter_secrets(meter), KEY])
    ident = meter.render().values["BELGIUM_EQUIPMENT_IDENTIFIER"]
    gas = meter.render().values["MBUS_EQUIPMENT_IDENTIFIER@1"]
    check.emit(record("key %s", KEY.lower()))
    check.emit(record("meter %s", ident))
    check.emit(record(f"meter {meter.equipment_id} (as text)"))
    check.emit(record("gas meter %s", gas))
    with_traceback = record("failed")
    error = ValueError(f"a line quoting {ident}")
    with_traceback.exc_info = (ValueError, error, None)
    check.emit(with_traceback)
    assert check.found == 5
    assert len(check.leaks) == 5  # five kinds of record, each listed once
    assert all(ident not in leak and KEY not in leak.upper() for leak in check.leaks.values())


def test_lets_the_rest_pass() -> None:
    meter = Meter("5", seed=81)
    check = SecretLog()
    check.add(meter_secrets(meter))
    check.emit(record("Cannot open %s: %s", "socket://127.0.0.1:23", "refused"))
    check.emit(record("what the meter sent: %s", meter.telegram(), name="dsmr_sim.tcp"))
    # The test harness's storage logs the data it is given (Home Assistant's: the file name).
    flows = {"flows": {f"mbus {meter.equipment_id}": {}}}
    check.emit(record("Writing data to %s: %s", "dsmr.x", flows, name=HARNESS_STORAGE))
    assert check.found == 0
    assert check.seen == 1  # the simulator's and the harness storage's records are not counted
    check.emit(record("Stored %s", flows, name=HARNESS_STORAGE))  # anything else it says is
    assert check.found == 1


def test_every_simulated_meter_is_known_to_the_session_check() -> None:
    meter = Meter("MSn", seed=82, key=KEY)
    HANDLER.read_meters()  # as before every record it checks
    assert {s.upper() for s in meter_secrets(meter)} <= HANDLER.secrets
    assert KEY in HANDLER.secrets
