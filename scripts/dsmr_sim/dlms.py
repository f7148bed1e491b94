"""DLMS general-global-cipher framing for encrypted meters (Luxembourg Smarty, Austrian Sagemcom).

Frame: ``0xDB`` · system-title length · system title (8 bytes) · ``0x82`` + 2-byte length ·
security control byte (``0x30``: authenticated and encrypted, suite 0) · 4-byte invocation
counter · AES-128-GCM ciphertext of the plain telegram · 12-byte GCM tag.
IV = system title + invocation counter; AAD = security control byte + authentication key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "GENERAL_GLOBAL_CIPHER_TAG",
    "LUXMETERING_AUTHENTICATION_KEY",
    "SECURITY_CONTROL",
    "DlmsEncryptor",
    "decrypt",
    "parse_key",
]

GENERAL_GLOBAL_CIPHER_TAG = 0xDB
SECURITY_CONTROL = 0x30
TAG_LENGTH = 12
#: The fixed, public authentication key of all Luxembourg Smarty meters (P1 spec 1.1.3, 3.2.5).
LUXMETERING_AUTHENTICATION_KEY = "00112233445566778899AABBCCDDEEFF"


def parse_key(text: str, what: str = "key") -> bytes:
    """Parse a 16-byte AES key given as 32 hex digits."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{what} must be 32 hex digits") from None
    if len(key) != 16:
        raise ValueError(f"{what} must be 32 hex digits (16 bytes), got {len(key)} bytes")
    return key


class DlmsEncryptor:
    """Wraps plain telegrams into general-global-cipher APDUs, one invocation counter each."""

    def __init__(
        self,
        key: bytes,
        auth_key: bytes,
        system_title: bytes,
        invocation_counter: int = 1,
    ) -> None:
        """Keys are 16 bytes, the system title 8 bytes; the counter increments per frame."""
        if len(key) != 16 or len(auth_key) != 16:
            raise ValueError("encryption and authentication keys are 16 bytes")
        if len(system_title) != 8:
            raise ValueError("the system title is 8 bytes")
        self._aead = AESGCM(key)
        self.auth_key = auth_key
        self.system_title = system_title
        self.invocation_counter = invocation_counter

    def encrypt(self, plain: bytes) -> bytes:
        """Return the complete frame for ``plain`` and advance the invocation counter."""
        counter = self.invocation_counter
        self.invocation_counter = (counter + 1) & 0xFFFFFFFF
        iv = self.system_title + counter.to_bytes(4, "big")
        aad = bytes([SECURITY_CONTROL]) + self.auth_key
        sealed = self._aead.encrypt(iv, plain, aad)
        # GCM tags may be truncated by keeping their leading bytes; DLMS uses 12 of 16.
        ciphered = sealed[:-16] + sealed[-16:][:TAG_LENGTH]
        content = bytes([SECURITY_CONTROL]) + counter.to_bytes(4, "big") + ciphered
        return (
            bytes([GENERAL_GLOBAL_CIPHER_TAG, len(self.system_title)])
            + self.system_title
            + b"\x82"
            + len(content).to_bytes(2, "big")
            + content
        )


def decrypt(frame: bytes, key: bytes) -> bytes:
    """The plain telegram inside a frame, without checking its tag (as with no auth key).

    GCM encrypts with AES-CTR from counter block IV || 00000002, so the ciphertext (the frame's
    content after the security byte and counter, minus the 12-byte tag) decrypts with CTR.
    """
    title_end = 2 + frame[1]
    system_title = frame[2:title_end]
    content = frame[title_end + 3 :]
    counter = content[1:5]
    ciphertext = content[5:-TAG_LENGTH]
    decryptor = Cipher(
        algorithms.AES(key), modes.CTR(system_title + counter + b"\x00\x00\x00\x02")
    ).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()
