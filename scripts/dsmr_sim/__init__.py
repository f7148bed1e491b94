"""A DSMR / P1 smart meter simulator: telegrams for every version dsmr_parser supports,
served over TCP (like ser2net) and over a real pseudo-terminal, with switchable faults.

    meter = Meter("5B", seed=1, mbus=("gas", "water"))
    meter.step(60)                      # simulated time only; no wall clock
    text = meter.telegram()             # plain telegram (CRC included)
    server = TcpServer(meter)           # or PtyServer(meter, link="/tmp/ttyDSMR")
    await server.start()                # manual mode: await server.send_telegram()

    Replay.from_file("capture.txt", "5B")  # a meter that sends recorded telegrams as they were
"""

from __future__ import annotations

from .client import TelegramReader
from .crc import crc16, with_crc
from .faults import FAULT_NAMES, Faults
from .house import House
from .meter import Meter
from .records import MBUS_KINDS, MbusChannel, Peak, PowerFailure
from .replay import Replay
from .serial_pty import PtyServer
from .server import BaseServer
from .state import MeterState
from .tcp import TcpServer
from .templates import Rendered
from .versions import VERSIONS, SerialSettings, VersionInfo, get_version

__all__ = [
    "FAULT_NAMES",
    "MBUS_KINDS",
    "VERSIONS",
    "BaseServer",
    "Faults",
    "House",
    "MbusChannel",
    "Meter",
    "MeterState",
    "Peak",
    "PowerFailure",
    "PtyServer",
    "Rendered",
    "Replay",
    "SerialSettings",
    "TcpServer",
    "TelegramReader",
    "VersionInfo",
    "crc16",
    "get_version",
    "with_crc",
]
