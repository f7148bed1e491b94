"""The field corpus (tests/fixtures/field): telegrams captured from real meters, and how to read them.

The table in SOURCES.md is the one list of recordings: its *file* and *version* columns say which
file holds a telegram and which dsmr_parser version token reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
import re
from typing import Any

from dsmr_parser.clients.protocol import _create_dsmr_protocol

from dsmr_sim.dlms import decrypt
from dsmr_sim.replay import Replay, read_recording, split_frames

FIELD = Path(__file__).parent / "fixtures" / "field"
SOURCES = FIELD / "SOURCES.md"
# dsmr_parser's own test keys for the Austrian frame it builds (see SOURCES.md).
KEYS = {
    "at-sagemcom-t210dr-encrypted.hex": (
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    )
}
_ROW = re.compile(r"^\| *([\w.-]+\.(?:txt|hex)) *\|([^|]*)\|([^|]*)\| *([\w.+]+) *\|")


@dataclass(frozen=True)
class Recording:
    """One telegram of the corpus: its file, its meter, and the version that reads it."""

    name: str
    meter: str
    country: str
    version: str

    @property
    def path(self) -> Path:
        """The file."""
        return FIELD / self.name

    @property
    def key(self) -> str | None:
        """The encryption key (encrypted frames only)."""
        return KEYS[self.name][0] if self.name in KEYS else None

    @property
    def auth_key(self) -> str | None:
        """The authentication key (encrypted frames only)."""
        return KEYS[self.name][1] if self.name in KEYS else None

    @cached_property
    def frame(self) -> bytes:
        """The recorded bytes (one telegram, with what followed it on the line)."""
        (frame,) = split_frames(read_recording(self.path))
        return frame

    @property
    def text(self) -> str:
        """The telegram's text (decrypted for an encrypted frame)."""
        if self.key is None:
            return self.frame.decode("latin-1")
        return decrypt(self.frame, bytes.fromhex(self.key)).decode("latin-1")

    def specification(self) -> dict[str, Any]:
        """dsmr_parser's telegram specification for the version."""
        factory, _ = _create_dsmr_protocol(self.version, None, object)
        spec: dict[str, Any] = factory.args[1].telegram_specification
        return spec

    def replay(self) -> Replay:
        """A simulated meter that sends this telegram as recorded."""
        return Replay(self.version, [self.frame], key=self.key, auth_key=self.auth_key)


def load() -> list[Recording]:
    """Every recording listed in SOURCES.md, in its order."""
    rows = []
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        if (found := _ROW.match(line)) is not None:
            name, meter, country, version = (part.strip() for part in found.groups())
            rows.append(Recording(name, meter, country, version))
    return rows


CORPUS = load()
