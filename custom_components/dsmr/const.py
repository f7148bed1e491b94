"""Constants for the DSMR integration."""

from __future__ import annotations

import logging
from typing import Final

from homeassistant.const import (
    Platform,
    UnitOfApparentPower,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfReactiveEnergy,
    UnitOfReactivePower,
    UnitOfTime,
    UnitOfVolume,
)

DOMAIN: Final = "dsmr"
LOGGER = logging.getLogger(__package__)
PLATFORMS: Final = [Platform.BINARY_SENSOR, Platform.SENSOR]

# Config entry data keys (identical to Home Assistant core's dsmr, so its entries load unchanged).
CONF_DSMR_VERSION: Final = "dsmr_version"
CONF_PROTOCOL: Final = "protocol"
CONF_SERIAL_ID: Final = "serial_id"
CONF_SERIAL_ID_GAS: Final = "serial_id_gas"
CONF_ENCRYPTION_KEY: Final = "encryption_key"
CONF_AUTHENTICATION_KEY: Final = "authentication_key"
CONF_TIME_BETWEEN_UPDATE: Final = "time_between_update"
CONF_WATCHDOG_TIMEOUT: Final = "watchdog_timeout"
# YAML-era keys (core's YAML import stored them in entries; we honour them again).
CONF_RECONNECT_INTERVAL: Final = "reconnect_interval"
CONF_PRECISION: Final = "precision"
# Our own additions to entry data; core ignores unknown keys, so a rollback keeps working.
CONF_MBUS_DEVICES: Final = "mbus_devices"
# OBIS codes no specification names, seen before: [{"code": "1-0:3.8.0", "unit": "kvarh"}].
CONF_GENERIC_OBIS: Final = "generic_obis"
CONF_SOURCE_YAML: Final = "yaml"
# Options: the lowest monthly peak worth a warning (kW; capacity tariff, Belgian meters).
CONF_PEAK_THRESHOLD: Final = "peak_threshold"

DSMR_PROTOCOL: Final = "dsmr_protocol"
RFXTRX_DSMR_PROTOCOL: Final = "rfxtrx_dsmr_protocol"

DEFAULT_DSMR_VERSION: Final = "2.2"
DEFAULT_PORT: Final = "/dev/ttyUSB0"
DEFAULT_RECONNECT_INTERVAL: Final = 30
DEFAULT_TIME_BETWEEN_UPDATE: Final = 30
# First reconnect attempt after this many seconds, doubling up to the reconnect interval.
FIRST_RETRY_DELAY: Final = 1.0
# No bytes for this long on an open connection (serial or TCP): close it and reconnect.
DEFAULT_WATCHDOG_TIMEOUT: Final = 60
# How long the config flow listens for a telegram before it gives up.
VALIDATION_TIMEOUT: Final = 30

DEVICE_NAME_ELECTRICITY: Final = "Electricity Meter"
DEVICE_NAME_GAS: Final = "Gas Meter"
DEVICE_NAME_WATER: Final = "Water Meter"
DEVICE_NAME_HEAT: Final = "Heat Meter"
DEVICE_NAME_COOLING: Final = "Cooling Meter"

# Chosen in the flow or YAML to have the version detected from the meter's own telegram.
VERSION_AUTO: Final = "auto"
# Version tokens as stored in config entries (core's tokens), in the order the UI lists them.
# Their labels are translated: strings.json, selector.dsmr_version.options.
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


def version_option(version: str) -> str:
    """A version's option in the flow's selector: '5B' -> '5b', '2.2' -> '2_2', '4+' -> '4_plus'.

    Selector options are translation keys (lower-case letters, digits, '_' and '-' only), so
    the stored tokens cannot be options themselves. Options map back with VERSION_BY_OPTION.
    """
    return version.lower().replace(".", "_").replace("+", "_plus")


VERSION_BY_OPTION: Final[dict[str, str]] = {
    version_option(version): version for version in (VERSION_AUTO, *DSMR_VERSIONS)
}
ENCRYPTED_DSMR_VERSIONS: Final = frozenset({"MSn", "SAGEMCOM_T210_D_R"})
DSMR_VERSIONS_WITHOUT_EQUIPMENT_ID: Final = frozenset({"5S", "SAGEMCOM_T210_D_R"})
# Versions whose tariff indicator uses 1 = normal, 2 = low (the opposite of the Dutch meaning).
SWAPPED_TARIFF_VERSIONS: Final = frozenset({"5B", "5EONHU"})

# Name of the dsmr_parser.obis_references constant holding the meter's equipment identifier.
EQUIPMENT_IDENTIFIER_OBIS: Final[dict[str, str]] = {
    "5B": "BELGIUM_EQUIPMENT_IDENTIFIER",
    "5L": "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "MSn": "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "5EONHU": "LUXEMBOURG_EQUIPMENT_IDENTIFIER",
    "Q3D": "Q3D_EQUIPMENT_IDENTIFIER",
    # Iskra IE.5/IE.7 (Belgium) sends its own identifier on 0-0:96.1.0, where DSMR 2.2/4 put
    # the gas meter's.
    "ISKRA_IE": "EQUIPMENT_IDENTIFIER_GAS",
}
DEFAULT_EQUIPMENT_IDENTIFIER_OBIS: Final = "EQUIPMENT_IDENTIFIER"

# EN 13757-3 M-Bus device types we turn into sub-meter devices.
MBUS_TYPE_GAS: Final = 3
MBUS_TYPE_HEAT: Final = 4
MBUS_TYPE_WARM_WATER: Final = 6
MBUS_TYPE_WATER: Final = 7
MBUS_TYPE_COOLING_OUTLET: Final = 10
MBUS_TYPE_COOLING_INLET: Final = 11
MBUS_TYPE_HEAT_INLET: Final = 12
MBUS_TYPE_HEAT_COOLING: Final = 13

# Units as meters print them -> Home Assistant's constant for exactly that unit (see units.py;
# a unit not listed here is shown as the meter writes it).
METER_UNITS: Final[dict[str, str]] = {
    "Wh": UnitOfEnergy.WATT_HOUR,
    "kWh": UnitOfEnergy.KILO_WATT_HOUR,
    "MWh": UnitOfEnergy.MEGA_WATT_HOUR,
    "GJ": UnitOfEnergy.GIGA_JOULE,
    "MJ": UnitOfEnergy.MEGA_JOULE,
    "varh": UnitOfReactiveEnergy.VOLT_AMPERE_REACTIVE_HOUR,
    "kvarh": UnitOfReactiveEnergy.KILO_VOLT_AMPERE_REACTIVE_HOUR,
    "W": UnitOfPower.WATT,
    "kW": UnitOfPower.KILO_WATT,
    "MW": UnitOfPower.MEGA_WATT,
    "var": UnitOfReactivePower.VOLT_AMPERE_REACTIVE,
    "kvar": UnitOfReactivePower.KILO_VOLT_AMPERE_REACTIVE,
    "VA": UnitOfApparentPower.VOLT_AMPERE,
    "kVA": UnitOfApparentPower.KILO_VOLT_AMPERE,
    "V": UnitOfElectricPotential.VOLT,
    "A": UnitOfElectricCurrent.AMPERE,
    "Hz": UnitOfFrequency.HERTZ,
    "s": UnitOfTime.SECONDS,
    "m3": UnitOfVolume.CUBIC_METERS,
}

# Sharing the meter (re-broadcast, see sharing.py): flat option keys; the options form shows
# them in one section, CONF_REBROADCAST.
CONF_REBROADCAST: Final = "rebroadcast"
CONF_REBROADCAST_HOST: Final = "rebroadcast_host"
CONF_REBROADCAST_PORT: Final = "rebroadcast_port"
CONF_REBROADCAST_MAX_CLIENTS: Final = "rebroadcast_max_clients"
CONF_REBROADCAST_DECRYPTED: Final = "rebroadcast_decrypted"
# 2001 is ser2net's customary port: a bridge (or the simulator) on this host most likely holds it.
DEFAULT_REBROADCAST_PORT: Final = 2002
MAX_REBROADCAST_CLIENTS: Final = 20
