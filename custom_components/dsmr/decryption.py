"""Encrypted telegrams (Luxembourg, Austria): the plain telegram inside a DLMS frame.

Decryption is dsmr_parser's own code, reached through its public `TelegramParser.parse`: the
parser below stops where dsmr_parser would go on to check the decrypted telegram's CRC, and
hands the plain text to `CachingTelegramParser` (parser.py), which checks and parses it.
"""

from __future__ import annotations

from typing import Any

from dsmr_parser.parsers import TelegramParser


class Decryptor(TelegramParser):  # type: ignore[misc]
    """dsmr_parser's own decryption: its `parse`, stopped where it would validate the CRC."""

    def __init__(self, telegram_specification: dict[str, Any]) -> None:
        super().__init__({**telegram_specification, "objects": [], "checksum_support": True})
        self._plain: list[str] = []

    def validate_checksum(self, telegram: str) -> None:
        """Receive the decrypted telegram (dsmr_parser calls this right after decrypting)."""
        self._plain.append(telegram)

    def decrypt(self, data: str, encryption_key: str, authentication_key: str | None) -> str:
        """Return the plain telegram inside a DLMS frame; raise as dsmr_parser raises."""
        self._plain.clear()
        super().parse(data, encryption_key, authentication_key)
        return self._plain.pop()


def decrypt(
    telegram_specification: dict[str, Any],
    data: str,
    encryption_key: str,
    authentication_key: str | None,
) -> str:
    """The plain telegram inside an encrypted frame (hex), as dsmr_parser decrypts it."""
    return Decryptor(telegram_specification).decrypt(data, encryption_key, authentication_key)
