"""The simulated meter: a :class:`~dsmr_sim.house.House` seen through one version's telegram."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
import re
from typing import Any
from zoneinfo import ZoneInfo

from .crc import with_crc
from .dlms import LUXMETERING_AUTHENTICATION_KEY, DlmsEncryptor, parse_key
from .house import House
from .records import MBUS_KINDS
from .templates import (
    Rendered,
    TemplateContext,
    render_smarty,
    render_v2_2,
    render_v4,
    render_v5,
)
from .templates_intl import (
    render_austria,
    render_belgium,
    render_eon_hungary,
    render_iskra_ie,
    render_q3d,
    render_sweden,
)
from .versions import VersionInfo, get_version

__all__ = ["DEFAULT_START", "Meter"]

#: Local wall-clock start used when none is given (a winter weekday at noon).
DEFAULT_START = datetime(2024, 1, 15, 12, 0, 0)

_RENDER: dict[str, Callable[[House, TemplateContext], Rendered]] = {
    "2.2": render_v2_2,
    "4": render_v4,
    "4+": render_v5,
    "5": render_v5,
    "5B": render_belgium,
    "5L": render_smarty,
    "5S": render_sweden,
    "Q3D": render_q3d,
    "5EONHU": render_eon_hungary,
    "ISKRA_IE": render_iskra_ie,
    "MSn": render_smarty,
    "SAGEMCOM_T210_D_R": render_austria,
}
_P1_VERSION = {"4": "42", "4+": "42", "5L": "42", "MSn": "42"}
_ID_LETTER = {"gas": "G", "water": "W", "warm_water": "V", "heat": "H", "heat_inlet": "I"}
#: An extra line: an OBIS code (A-B:C.D.E) and one or more "(...)" groups, printable ASCII.
_EXTRA_LINE = re.compile(
    r"[0-9]{1,3}-[0-9]{1,3}:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
    r"(?:\([\x20\x22-\x27\x2a-\x7e]*\))+"  # printable ASCII but "!", "(" and ")"
)


def _key(value: str | bytes, what: str) -> bytes:
    return value if isinstance(value, bytes) else parse_key(value, what)


def _check_extra_lines(lines: Sequence[str]) -> tuple[str, ...]:
    for line in lines:
        if not _EXTRA_LINE.fullmatch(line):
            raise ValueError(
                f"extra line {line!r}: expected an OBIS code and (value) groups, "
                "e.g. 1-0:3.8.0(000123.456*kvarh)"
            )
    return tuple(lines)


def with_extra_lines(rendered: Rendered, lines: Sequence[str]) -> Rendered:
    """``rendered`` with ``lines`` added last before the ``!`` (and the CRC recomputed)."""
    if not lines:
        return rendered
    text = rendered.text
    bang = text.rindex("!")
    body = text[:bang] + "".join(f"{line}\r\n" for line in lines) + "!"
    text = with_crc(body) if text[bang + 1 :].strip() else f"{body}\r\n"
    extra = {line[: line.index("(")]: line[line.index("(") :] for line in lines}
    return replace(rendered, text=text, extra=extra)


class Meter:
    """A smart meter of one version, with a deterministic house behind it.

    ``Meter("5B", seed=1, mbus=("gas", "water"))`` is a Belgian meter with a gas meter on
    M-Bus channel 1 and a water meter on channel 2. Encrypted versions (``MSn``,
    ``SAGEMCOM_T210_D_R``) need ``key`` (32 hex digits); ``auth_key`` defaults to the public
    Luxmetering key. Nothing reads the wall clock: time moves only through :meth:`step`.

    ``extra_lines`` are sent as they are, last before the ``!`` (inside the CRC and the
    encryption): lines no specification names, as real meters send some, e.g.
    ``["1-0:3.8.0(000123.456*kvarh)", "0-0:96.50.1(Xemex)"]``. They can be changed between
    telegrams through the :attr:`extra_lines` attribute.
    """

    def __init__(
        self,
        version: str = "5",
        *,
        seed: int = 0,
        start: datetime | None = None,
        timezone: str | None = None,
        mbus: Sequence[str] | None = None,
        equipment_id: str | None = None,
        mbus_ids: Sequence[str] | None = None,
        text_message: str = "",
        header: str | None = None,
        key: str | bytes | None = None,
        auth_key: str | bytes | None = None,
        system_title: str | bytes | None = None,
        invocation_counter: int = 1,
        solar_kwp: float = 4.0,
        extra_lines: Sequence[str] = (),
    ) -> None:
        """Configure the meter; see the class docstring for the common arguments."""
        self.info: VersionInfo = get_version(version)
        self._extra_lines = _check_extra_lines(extra_lines)
        self.tz = ZoneInfo(timezone or self.info.timezone)
        start = start or DEFAULT_START
        start = start.replace(tzinfo=self.tz) if start.tzinfo is None else start.astimezone(self.tz)
        kinds = tuple(self.info.mbus_default if mbus is None else mbus)
        self._check_mbus(kinds)
        self.seed = seed
        digits = f"{(seed * 7919 + 4046395507) % 10**10:010d}"
        self.equipment_id = equipment_id or f"{self.info.id_prefix or 'E'}{digits}"
        ids = list(mbus_ids or ())
        for n, kind in enumerate(kinds[len(ids) :], start=len(ids) + 1):
            ids.append(f"{_ID_LETTER.get(kind, 'C')}{n}{digits}")
        self.house = House(
            seed=seed,
            start=start,
            tz=self.tz,
            tariff_scheme=self.info.tariff_scheme,
            mbus=tuple(zip(kinds, ids, strict=False)),
            solar_kwp=solar_kwp,
        )
        self.context = TemplateContext(
            token=self.info.token,
            header=header or self.info.header,
            equipment_id=self.equipment_id,
            text_message=text_message,
            p1_version=_P1_VERSION.get(self.info.token, "50"),
        )
        #: Called with the meter after every :meth:`step` (e.g. to save its registers).
        self.on_step: Callable[[Meter], None] | None = None
        self.encryptor: DlmsEncryptor | None = None
        #: Keys as 32 upper-case hex digits (empty for plain meters), for readers under test.
        self.key_hex = self.auth_key_hex = ""
        if self.info.encrypted:
            if key is None:
                raise ValueError(f"version {version} is encrypted: give key= (32 hex digits)")
            enc_key = _key(key, "key")
            mac_key = _key(auth_key or LUXMETERING_AUTHENTICATION_KEY, "auth_key")
            self.key_hex, self.auth_key_hex = enc_key.hex().upper(), mac_key.hex().upper()
            title = system_title or b"SAG" + (seed % 2**40).to_bytes(5, "big")
            self.encryptor = DlmsEncryptor(
                enc_key,
                mac_key,
                title if isinstance(title, bytes) else bytes.fromhex(title),
                invocation_counter,
            )
        elif key is not None or auth_key is not None:
            raise ValueError(f"version {version} is not encrypted; key/auth_key do not apply")

    def _check_mbus(self, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            if kind not in MBUS_KINDS:
                raise ValueError(f"unknown M-Bus kind {kind!r}; known: {', '.join(MBUS_KINDS)}")
        if len(kinds) > self.info.mbus_channels:
            raise ValueError(
                f"version {self.info.token} has {self.info.mbus_channels} M-Bus channel(s)"
            )
        if self.info.token == "2.2" and any(kind != "gas" for kind in kinds):
            raise ValueError("DSMR 2.2 telegrams carry a gas meter only")

    # --- properties -----------------------------------------------------------------------

    @property
    def version(self) -> str:
        """The Home Assistant version token, e.g. ``"5B"``."""
        return self.info.token

    @property
    def extra_lines(self) -> tuple[str, ...]:
        """Lines no specification names, sent last before the ``!``."""
        return self._extra_lines

    @extra_lines.setter
    def extra_lines(self, lines: Sequence[str]) -> None:
        self._extra_lines = _check_extra_lines(lines)

    @property
    def now(self) -> datetime:
        """Simulated local time."""
        return self.house.now

    @property
    def encrypted(self) -> bool:
        """Whether telegrams go out as DLMS frames."""
        return self.encryptor is not None

    def telegram_specification(self) -> dict[str, Any]:
        """The matching ``dsmr_parser.telegram_specifications`` dictionary."""
        from dsmr_parser import telegram_specifications

        spec: dict[str, Any] = getattr(telegram_specifications, self.info.spec_name)
        return spec

    # --- behaviour ------------------------------------------------------------------------

    def step(self, seconds: float) -> None:
        """Advance simulated time (and every register) by ``seconds``; then call :attr:`on_step`."""
        self.house.step(seconds)
        if self.on_step is not None:
            self.on_step(self)

    def step_to(self, when: datetime) -> None:
        """Advance simulated time to ``when`` (aware); a time in the past leaves the meter as is."""
        self.step(max((when - self.house.utc).total_seconds(), 0.0))

    def render(self) -> Rendered:
        """Render the current state: plain telegram text plus the values it carries."""
        rendered = _RENDER[self.info.token](self.house, self.context)
        return with_extra_lines(rendered, self._extra_lines)

    def telegram(self) -> str:
        """The current plain-text telegram (inside the encryption for encrypted versions)."""
        return self.render().text

    def wrap(self, text: str) -> bytes:
        """Turn a plain telegram into what goes on the wire (a DLMS frame when encrypted)."""
        raw = text.encode("ascii")
        return self.encryptor.encrypt(raw) if self.encryptor else raw

    def payload(self) -> bytes:
        """The bytes a real meter would send now."""
        return self.wrap(self.telegram())
