"""What the field corpus shows to fail today, per file and value, and why.

`tests/test_field_corpus.py` fails on any problem not listed here and on any listed one that no
longer occurs: when a fix lands, remove its entries.
Labels are dsmr_parser value names (`NAME@channel` on M-Bus devices, `obis CODE` for lines no
specification names).
"""

from __future__ import annotations

SAME_ID = (
    "the source anonymised both gas meters' identifiers to one value: core's unique id (the"
    " identifier) makes them one entity, which shows channel 1"
)
KNOWN_GAPS: dict[str, dict[str, str]] = {
    "be-sagemcom-t211-two-gas-peak.txt": {
        "MBUS_METER_READING@2": SAME_ID,
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
