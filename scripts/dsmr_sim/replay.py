"""A meter that sends recorded telegrams: bytes captured from a real meter, as they were.

A recording is a file holding one or more telegrams as the meter sent them: plain text
(``/`` … ``!CRC`` and whatever the line carried between telegrams), the raw bytes of DLMS
frames (encrypted meters), or those frames as hexadecimal text (``.hex``, whitespace ignored).
The server sends them in turn, round and round, each exactly as recorded::

    meter = Replay.from_file("tests/fixtures/field/be-sagemcom-t211-gas-water.txt", "5B")
    server = TcpServer(meter)
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path

from .dlms import GENERAL_GLOBAL_CIPHER_TAG, decrypt, parse_key
from .meter import Meter
from .templates import Rendered

__all__ = ["Replay", "read_recording", "split_frames"]


def read_recording(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a recording file (a ``.hex`` file is decoded from hexadecimal)."""
    file = Path(path)
    data = file.read_bytes()
    if file.suffix == ".hex":
        return bytes.fromhex("".join(data.decode("ascii").split()))
    return data


def _dlms_frames(data: bytes) -> list[bytes]:
    """Cut general-global-cipher frames by their own length fields."""
    frames: list[bytes] = []
    start = 0
    while start < len(data):
        if data[start] != GENERAL_GLOBAL_CIPHER_TAG:
            raise ValueError(f"byte {start}: expected a DLMS frame (0xDB), got {data[start]:#04x}")
        title_end = start + 2 + data[start + 1]
        if data[title_end] != 0x82:
            raise ValueError(f"byte {title_end}: expected a two-byte length (0x82)")
        end = title_end + 3 + int.from_bytes(data[title_end + 1 : title_end + 3], "big")
        if end > len(data):
            raise ValueError(f"byte {start}: the frame runs past the end of the recording")
        frames.append(data[start:end])
        start = end
    return frames


def split_frames(data: bytes) -> list[bytes]:
    """The telegrams of a recording, each with the bytes that followed it on the line.

    Plain telegrams are cut at every ``/`` that starts a line (bytes before the first one are
    kept with it); DLMS frames (first byte 0xDB) by their length fields.
    """
    if not data:
        raise ValueError("the recording is empty")
    if data[0] == GENERAL_GLOBAL_CIPHER_TAG:
        return _dlms_frames(data)
    starts = [0] + [i + 1 for i in range(len(data) - 1) if data[i] == 0x0A and data[i + 1] == 0x2F]
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


class Replay(Meter):
    """A meter of ``version`` that sends ``frames`` (bytes as recorded) in turn, round and round.

    Each :meth:`step` moves to the next frame; :meth:`telegram` is the current one as text
    (decrypted with ``key`` for encrypted versions) and :meth:`payload` its recorded bytes.
    A fault that changes the text (e.g. ``bad_crc``) sends the changed text instead,
    encrypted again with ``key`` (and ``auth_key``) for encrypted versions.
    """

    def __init__(
        self,
        version: str,
        frames: Sequence[bytes],
        *,
        key: str | bytes | None = None,
        auth_key: str | bytes | None = None,
    ) -> None:
        """Replay ``frames``; encrypted versions need ``key`` (32 hex digits)."""
        super().__init__(version, mbus=(), key=key, auth_key=auth_key)
        if not frames:
            raise ValueError("nothing to replay")
        self.frames = tuple(frames)
        self._key = (
            None if key is None else key if isinstance(key, bytes) else parse_key(key, "key")
        )
        self._index = 0
        self._next = 0

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        version: str,
        *,
        key: str | bytes | None = None,
        auth_key: str | bytes | None = None,
    ) -> Replay:
        """Replay the telegrams recorded in ``path`` (see :func:`read_recording`)."""
        return cls(version, split_frames(read_recording(path)), key=key, auth_key=auth_key)

    @property
    def frame(self) -> bytes:
        """The recorded bytes of the current telegram."""
        return self.frames[self._index]

    def step(self, seconds: float) -> None:
        """Move to the next recorded telegram (time has no other meaning here)."""
        self._index = self._next % len(self.frames)
        self._next = self._index + 1

    def render(self) -> Rendered:
        """The current telegram as text; what it carries is for dsmr_parser to say."""
        return Rendered(text=self.telegram())

    def telegram(self) -> str:
        """The current telegram as text (decrypted for encrypted versions)."""
        if self.encryptor is None:
            return self.frame.decode("latin-1")
        assert self._key is not None
        return decrypt(self.frame, self._key).decode("latin-1")

    def wrap(self, text: str) -> bytes:
        """The recorded bytes for the current telegram; other text as the meter would send it."""
        if text == self.telegram():
            return self.frame
        if self.encryptor is None:
            return text.encode("latin-1")
        return super().wrap(text)
