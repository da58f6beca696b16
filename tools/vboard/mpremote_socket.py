"""mpremote, unchanged, with TCP_NODELAY on pyserial's socket:// ports.

    python -m tools.vboard.mpremote_socket connect socket://127.0.0.1:7777 fs ls

Plain `mpremote connect socket://...` works too, but pyserial leaves Nagle's algorithm on:
mpremote sends a command and its Ctrl-D as two small writes, and the second one waits for
the board's delayed ACK (about 40 ms on Linux) on every exec. A file copy is a few hundred
execs, so this wrapper is about ten times faster. The protocol is mpremote's own code.
"""
from __future__ import annotations

import socket
import sys

from serial.urlhandler import protocol_socket


class _NoDelaySerial(protocol_socket.Serial):
    def open(self) -> None:
        super().open()
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main() -> int:
    protocol_socket.Serial = _NoDelaySerial  # serial_for_url looks the class up at call time
    from mpremote.main import main as mpremote_main

    return mpremote_main()


if __name__ == "__main__":
    sys.exit(main())
