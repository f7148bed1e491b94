"""decryption.py: the plain telegram inside a DLMS frame, as dsmr_parser decrypts it."""

from __future__ import annotations

from dsmr_parser import telegram_specifications
from dsmr_parser.exceptions import DecryptionError
import pytest

from custom_components.dsmr.decryption import decrypt
from dsmr_sim.meter import Meter

KEY = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
SPECS = {
    "MSn": telegram_specifications.MSN,
    "SAGEMCOM_T210_D_R": telegram_specifications.SAGEMCOM_T210_D_R,
}


def _frame(meter: Meter) -> tuple[str, str]:
    """One encrypted frame of `meter` (hex, as the reader hands it on) and its plain telegram."""
    assert meter.encryptor is not None
    plain = meter.telegram()
    return meter.encryptor.encrypt(plain.encode()).hex(), plain


@pytest.mark.parametrize("version", SPECS)
@pytest.mark.parametrize("authenticated", [True, False])
def test_frames_decrypt_to_the_telegram_the_meter_encrypted(
    version: str, authenticated: bool
) -> None:
    """Each frame gives its telegram, CRC line included, with or without the GCM tag checked."""
    meter = Meter(version, seed=3, key=KEY)
    for _ in range(3):
        frame, plain = _frame(meter)
        auth = meter.auth_key_hex if authenticated else None
        assert decrypt(SPECS[version], frame, KEY, auth) == plain
        meter.step(1.0)


@pytest.mark.parametrize("version", SPECS)
def test_a_wrong_key_raises_with_the_tag_checked(version: str) -> None:
    """With the authentication key the tag is checked: a wrong key raises, it returns nothing."""
    meter = Meter(version, seed=3, key=KEY)
    frame, _ = _frame(meter)
    with pytest.raises(DecryptionError):
        decrypt(SPECS[version], frame, "00" * 16, meter.auth_key_hex)
