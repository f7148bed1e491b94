"""The meter kinds the simulator speaks, by the tokens Home Assistant's ``dsmr`` integration uses.

Serial settings mirror ``dsmr_parser.clients.settings`` (``SERIAL_SETTINGS_V2_2``, ``_V4``,
``_V5``) and the specification names are attributes of ``dsmr_parser.telegram_specifications``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VERSIONS", "SerialSettings", "VersionInfo", "get_version"]


@dataclass(frozen=True)
class SerialSettings:
    """Line settings of a P1 port: baud rate and framing (data bits, parity, stop bits)."""

    baudrate: int
    bytesize: int
    parity: str
    stopbits: int = 1

    @property
    def framing(self) -> str:
        """Framing in the usual short form, e.g. ``8N1`` or ``7E1``."""
        return f"{self.bytesize}{self.parity}{self.stopbits}"


SERIAL_V2_2 = SerialSettings(9600, 7, "E")
SERIAL_V4 = SerialSettings(115200, 7, "E")
SERIAL_V5 = SerialSettings(115200, 8, "N")


@dataclass(frozen=True)
class VersionInfo:
    """Everything version-specific that is not the telegram template itself."""

    token: str
    description: str
    spec_name: str
    serial: SerialSettings
    crc: bool
    encrypted: bool
    timezone: str
    tariff_scheme: str
    nominal_interval: float
    mbus_channels: int
    mbus_default: tuple[str, ...]
    header: str
    id_prefix: str


def _v(  # noqa: PLR0917
    token: str,
    description: str,
    spec_name: str,
    serial: SerialSettings,
    timezone: str,
    header: str,
    id_prefix: str,
    *,
    crc: bool = True,
    encrypted: bool = False,
    tariff_scheme: str = "nl",
    interval: float = 1.0,
    mbus_channels: int = 4,
    mbus_default: tuple[str, ...] = ("gas",),
) -> VersionInfo:
    return VersionInfo(
        token=token,
        description=description,
        spec_name=spec_name,
        serial=serial,
        crc=crc,
        encrypted=encrypted,
        timezone=timezone,
        tariff_scheme=tariff_scheme,
        nominal_interval=interval,
        mbus_channels=mbus_channels,
        mbus_default=mbus_default,
        header=header,
        id_prefix=id_prefix,
    )


_AMS = "Europe/Amsterdam"
_LUX = "Europe/Luxembourg"

VERSIONS: dict[str, VersionInfo] = {
    info.token: info
    for info in (
        _v(
            "2.2",
            "DSMR 2.2 (NL)",
            "V2_2",
            SERIAL_V2_2,
            _AMS,
            "/ISk5\\2MT382-1004",
            "E22",
            crc=False,
            interval=10.0,
            mbus_channels=1,
        ),
        _v("4", "DSMR 4.x (NL)", "V4", SERIAL_V4, _AMS, "/KFM5KAIFA-METER", "E04", interval=10.0),
        _v(
            "4+",
            "DSMR 5 telegram on DSMR 4 serial settings",
            "V5",
            SERIAL_V4,
            _AMS,
            "/KFM5KAIFA-METER",
            "E4P",
        ),
        _v("5", "DSMR 5.0 (NL)", "V5", SERIAL_V5, _AMS, "/ISk5\\2MT382-1000", "E05"),
        _v(
            "5B",
            "Fluvius e-MUCS H (BE)",
            "BELGIUM_FLUVIUS",
            SERIAL_V5,
            "Europe/Brussels",
            "/FLU5\\253769484_A",
            "1SAG",
            tariff_scheme="be",
        ),
        _v(
            "5L",
            "Luxembourg Smarty (unencrypted)",
            "LUXEMBOURG_SMARTY",
            SERIAL_V5,
            _LUX,
            "/Lux5\\253833635_D",
            "SAG",
        ),
        _v(
            "5S",
            "Sweden (Energiforetagen P1)",
            "SWEDEN",
            SERIAL_V5,
            "Europe/Stockholm",
            "/ELL5\\253833635_A",
            "",
            mbus_channels=0,
            mbus_default=(),
        ),
        _v(
            "Q3D",
            "EasyMeter Q3D",
            "Q3D",
            SERIAL_V5,
            "Europe/Berlin",
            "/ESY5Q3DA1004 V3.04",
            "1ESY",
            crc=False,
            mbus_channels=0,
            mbus_default=(),
        ),
        _v(
            "5EONHU",
            "E.ON Hungary",
            "EON_HUNGARY",
            SERIAL_V5,
            "Europe/Budapest",
            "/SAG5SAG-METER",
            "SAG",
            tariff_scheme="hu",
            mbus_channels=0,
            mbus_default=(),
        ),
        _v(
            "ISKRA_IE",
            "Iskra IE.5 / IE.7 (BE)",
            "ISKRA_IE",
            SERIAL_V5,
            "Europe/Brussels",
            "/ISk5\\2MIE5T-200",
            "ISK",
            mbus_channels=0,
            mbus_default=(),
        ),
        _v(
            "MSn",
            "Luxembourg Smarty (encrypted)",
            "MSN",
            SERIAL_V5,
            _LUX,
            "/Lux5\\253833635_D",
            "SAG",
            encrypted=True,
        ),
        _v(
            "SAGEMCOM_T210_D_R",
            "Sagemcom T210-D-r (AT, encrypted)",
            "SAGEMCOM_T210_D_R",
            SERIAL_V5,
            "Europe/Vienna",
            "/EST5\\253710000_A",
            "",
            encrypted=True,
            tariff_scheme="at",
            mbus_channels=0,
            mbus_default=(),
        ),
    )
}


def get_version(token: str) -> VersionInfo:
    """Return the :class:`VersionInfo` for a Home Assistant version token such as ``"5B"``."""
    try:
        return VERSIONS[token]
    except KeyError:
        known = ", ".join(VERSIONS)
        raise ValueError(f"unknown DSMR version {token!r}; known: {known}") from None
