"""Constants for the DSMR integration."""

from __future__ import annotations

import logging
from typing import Final

from homeassistant.const import Platform

DOMAIN: Final = "dsmr"
LOGGER = logging.getLogger(__package__)
PLATFORMS: Final = [Platform.BINARY_SENSOR, Platform.SENSOR]

# Entry data: core dsmr's keys, so its entries load unchanged (and core loads ours).
CONF_DSMR_VERSION: Final = "dsmr_version"
CONF_PROTOCOL: Final = "protocol"
CONF_SERIAL_ID: Final = "serial_id"
CONF_SERIAL_ID_GAS: Final = "serial_id_gas"
CONF_ENCRYPTION_KEY: Final = "encryption_key"
CONF_AUTHENTICATION_KEY: Final = "authentication_key"
CONF_RECONNECT_INTERVAL: Final = "reconnect_interval"  # YAML-era keys, honoured again
CONF_PRECISION: Final = "precision"
# Our additions to entry data (core ignores unknown keys, so a rollback keeps working).
CONF_MBUS_DEVICES: Final = "mbus_devices"  # [{"channel", "type", "id", "unit"}]
CONF_GENERIC_OBIS: Final = "generic_obis"  # [{"code": "1-0:3.8.0", "unit": "kvarh"}]
CONF_AUTO_DISABLED: Final = "auto_disabled"  # unique ids disabled once as never sent
CONF_SOURCE_YAML: Final = "yaml"
# Options.
CONF_TIME_BETWEEN_UPDATE: Final = "time_between_update"
CONF_WATCHDOG_TIMEOUT: Final = "watchdog_timeout"
CONF_PEAK_THRESHOLD: Final = "peak_threshold"  # kW, Belgian meters
CONF_REBROADCAST: Final = "rebroadcast"  # sharing: flat options, one section in the form
CONF_REBROADCAST_HOST: Final = "rebroadcast_host"
CONF_REBROADCAST_PORT: Final = "rebroadcast_port"
CONF_REBROADCAST_MAX_CLIENTS: Final = "rebroadcast_max_clients"
CONF_REBROADCAST_DECRYPTED: Final = "rebroadcast_decrypted"

DSMR_PROTOCOL: Final = "dsmr_protocol"
RFXTRX_DSMR_PROTOCOL: Final = "rfxtrx_dsmr_protocol"

DEFAULT_DSMR_VERSION: Final = "2.2"
DEFAULT_PORT: Final = "/dev/ttyUSB0"
DEFAULT_RECONNECT_INTERVAL: Final = 30
DEFAULT_TIME_BETWEEN_UPDATE: Final = 30
DEFAULT_WATCHDOG_TIMEOUT: Final = 60  # s without bytes: the connection is closed and reopened
DEFAULT_REBROADCAST_PORT: Final = 2002  # 2001 is ser2net's, likely a bridge on this host
MAX_REBROADCAST_CLIENTS: Final = 20
VALIDATION_TIMEOUT: Final = 30  # s the config flow listens for a telegram

DEVICE_NAME_ELECTRICITY: Final = "Electricity Meter"
DEVICE_NAME_GAS: Final = "Gas Meter"
DEVICE_NAME_WATER: Final = "Water Meter"
DEVICE_NAME_HEAT: Final = "Heat Meter"
DEVICE_NAME_COOLING: Final = "Cooling Meter"

VERSION_AUTO: Final = "auto"  # detected from the meter's own telegram
# Version tokens as entries store them (core's), in the order the form lists them.
DSMR_VERSIONS: Final[tuple[str, ...]] = (
    "5",
    "5B",
    "5L",
    "MSn",
    "SAGEMCOM_T210_D_R",
    "5S",
    "Q3D",
    "5EONHU",
    "ISKRA_IE",
    "4+",
    "4",
    "2.2",
)
ENCRYPTED_DSMR_VERSIONS: Final = frozenset({"MSn", "SAGEMCOM_T210_D_R"})
DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID: Final = frozenset({"5S", "SAGEMCOM_T210_D_R"})


def version_option(version: str) -> str:
    """A version's option in the selector (a translation key): '5B' -> '5b', '2.2' -> '2_2'."""
    return version.lower().replace(".", "_").replace("+", "_plus")


VERSION_BY_OPTION: Final = {version_option(v): v for v in (VERSION_AUTO, *DSMR_VERSIONS)}
