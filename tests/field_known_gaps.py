"""What the field corpus shows to fail today, per file and value, and why.

`tests/test_field_corpus.py` fails on any problem not listed here and on any listed one that no
longer occurs: when a fix lands (issue 13: units from the line, zeros shown), remove its entries.
Labels are dsmr_parser value names (`NAME@channel` on M-Bus devices, `obis CODE` for lines no
specification names).
"""

from __future__ import annotations

UNIT = "unit fixed per description (kWh, kW, kvarh, kvar) whatever the line says (issue 13, 1)"
ZERO = "a register that reads 0 shows unknown (issue 13, item 2)"
UNIT_AND_ZERO = f"{UNIT}; {ZERO}"
PRECISION = "rounded to 3 decimals (DEFAULT_PRECISION, as core does); the Q3D sends 7"
SAME_ID = (
    "the source anonymised both gas meters' identifiers to one value: core's unique id (the"
    " identifier) makes them one entity, which shows channel 1"
)
KNOWN_GAPS: dict[str, dict[str, str]] = {
    "nl-iskra-am550t-dsmr5-gas.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-iskra-am550e-1ph-dsmr5-gas.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-iskra-am550e-1ph-dsmr5-gas-channel2.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
        "MBUS_METER_READING@1": ZERO,
    },
    "nl-iskra-mt382-dsmr3-gas-2c.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
    },
    "nl-landisgyr-e350-zcf110-dsmr42-gas.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-landisgyr-e350-dsmr40-single-tariff.txt": {
        "ELECTRICITY_USED_TARIFF_2": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-landisgyr-e350-dsmr3.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-kaifa-ma105-dsmr40-gas.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-kaifa-dsmr42-3ph.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-kaifa-dsmr42-gas.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "nl-kaifa-dsmr42-1ph.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_1": ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "be-sagemcom-t211-gas-water.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "be-sagemcom-t211-gas-unused.txt": {
        "MBUS_METER_READING@1": ZERO,
    },
    "be-sagemcom-t211-two-gas-peak.txt": {
        "MBUS_METER_READING@2": SAME_ID,
    },
    "se-kamstrup-omnia.txt": {
        "ELECTRICITY_EXPORTED_TOTAL": ZERO,
        "ELECTRICITY_REACTIVE_IMPORTED_TOTAL": ZERO,
        "ELECTRICITY_REACTIVE_EXPORTED_TOTAL": ZERO,
    },
    "se-landisgyr-e360.txt": {
        "ELECTRICITY_EXPORTED_TOTAL": ZERO,
    },
    "at-sagemcom-t210dr-plain.txt": {
        "ELECTRICITY_IMPORTED_TOTAL": UNIT,
        "ELECTRICITY_USED_TARIFF_1": UNIT,
        "ELECTRICITY_USED_TARIFF_2": UNIT,
        "ELECTRICITY_DELIVERED_TARIFF_1": UNIT,
        "ELECTRICITY_DELIVERED_TARIFF_2": UNIT,
        "CURRENT_ELECTRICITY_USAGE": UNIT,
        "CURRENT_ELECTRICITY_DELIVERY": UNIT,
    },
    "at-sagemcom-t210dr-plain-2.txt": {
        "ELECTRICITY_IMPORTED_TOTAL": UNIT,
        "ELECTRICITY_USED_TARIFF_1": UNIT,
        "ELECTRICITY_USED_TARIFF_2": UNIT,
        "ELECTRICITY_DELIVERED_TARIFF_1": UNIT,
        "ELECTRICITY_DELIVERED_TARIFF_2": UNIT_AND_ZERO,
        "CURRENT_ELECTRICITY_USAGE": UNIT,
        "CURRENT_ELECTRICITY_DELIVERY": UNIT,
    },
    "at-elster-dsmr5.txt": {
        "ELECTRICITY_DELIVERED_TARIFF_2": ZERO,
    },
    "at-sagemcom-t210dr-encrypted.hex": {
        "ELECTRICITY_IMPORTED_TOTAL": UNIT,
        "ELECTRICITY_USED_TARIFF_1": UNIT,
        "ELECTRICITY_USED_TARIFF_2": UNIT,
        "CURRENT_ELECTRICITY_USAGE": UNIT,
        "ELECTRICITY_REACTIVE_EXPORTED_TOTAL": UNIT,
        "ELECTRICITY_REACTIVE_EXPORTED_TARIFF_1": UNIT,
        "ELECTRICITY_REACTIVE_EXPORTED_TARIFF_2": UNIT,
        "CURRENT_REACTIVE_IMPORTED": UNIT,
        "ELECTRICITY_EXPORTED_TOTAL": UNIT,
        "ELECTRICITY_DELIVERED_TARIFF_1": UNIT_AND_ZERO,
        "ELECTRICITY_DELIVERED_TARIFF_2": UNIT,
        "CURRENT_ELECTRICITY_DELIVERY": UNIT,
        "ELECTRICITY_REACTIVE_IMPORTED_TOTAL": UNIT,
        "ELECTRICITY_REACTIVE_IMPORTED_TARIFF_1": UNIT_AND_ZERO,
        "ELECTRICITY_REACTIVE_IMPORTED_TARIFF_2": UNIT,
        "CURRENT_REACTIVE_EXPORTED": UNIT,
    },
    "de-easymeter-q3d-a1004.txt": {
        "ELECTRICITY_IMPORTED_TOTAL": PRECISION,
        "INSTANTANEOUS_ACTIVE_POWER_L1_POSITIVE": UNIT,
        "INSTANTANEOUS_ACTIVE_POWER_L2_POSITIVE": UNIT,
        "INSTANTANEOUS_ACTIVE_POWER_L3_POSITIVE": UNIT,
        "CURRENT_ELECTRICITY_USAGE": UNIT,
    },
    "de-easymeter-q3d-b1024.txt": {
        "ELECTRICITY_IMPORTED_TOTAL": PRECISION,
        "ELECTRICITY_EXPORTED_TOTAL": PRECISION,
        "INSTANTANEOUS_ACTIVE_POWER_L1_POSITIVE": UNIT,
        "INSTANTANEOUS_ACTIVE_POWER_L2_POSITIVE": UNIT,
        "INSTANTANEOUS_ACTIVE_POWER_L3_POSITIVE": UNIT,
        "CURRENT_ELECTRICITY_USAGE": UNIT,
    },
}

# Recordings the config flow cannot identify (test_validation): no version token reads them
# with the meter's identifier.
EST5_PLAIN = (
    "an unencrypted Austrian Sagemcom T210-D-r sends no 0-0:96.1.1 equipment identifier; DSMR 5 "
    "needs one (as in core) and the version without one (SAGEMCOM_T210_D_R) wants encryption"
)
NOT_IDENTIFIED: dict[str, str] = {
    "at-sagemcom-t210dr-plain.txt": EST5_PLAIN,
    "at-sagemcom-t210dr-plain-2.txt": EST5_PLAIN,
}
