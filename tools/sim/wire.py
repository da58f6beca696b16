"""Serving a byte-stream simulator as a serial port: on a raw TCP socket (pyserial's
`socket://127.0.0.1:PORT`), on an RFC 2217 server (`rfc2217://127.0.0.1:PORT`: a TCP serial
port that also carries the line speed and the DTR/RTS lines, as esp_rfc2217_server or ser2net
do for a real board) or on a pseudo-terminal. A simulator subclasses `WireSim` and implements
`feed(data) -> reply bytes`; `on_connect()` runs when a new client arrives, `set_lines(dtr,
rts)` when the client moves its modem lines (RFC 2217 only: a raw socket carries none and a
pty refuses the ioctl, as esptool warns).

The line speed is modelled where the seam shows it: a pty's termios (what the client set with
pyserial) and RFC 2217's SET-BAUDRATE. When the client's speed differs from the chip's
(`baud`), bytes go through `uart_transfer`, a bit-level UART model: start bit, 8 data bits,
stop bit sampled at the receiver's own rate, a framing error read as 0x00, as Linux delivers
it. So a wrong baud gives garbage, as on a real cable. A raw TCP socket carries no speed: there
the bytes pass as they are.
"""
from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
import threading
import tty
from collections.abc import Callable

import serial.rfc2217

TCGETS2, BOTHER = 0x802C542A, 0o010000
_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios)
           if n.startswith("B") and n[1:].isdigit()}


def uart_transfer(data: bytes, tx: int | None, rx: int | None) -> bytes:
    """What a UART receiving at `rx` baud reads from bytes sent back to back at `tx` baud."""
    if not data or tx is None or rx is None or abs(tx - rx) <= rx * 0.03:
        return data  # UARTs tolerate a few per cent
    bits: list[int] = []
    for b in data:
        bits.append(0)  # start bit
        bits.extend((b >> i) & 1 for i in range(8))  # LSB first
        bits.append(1)  # stop bit
    t_bit, r_bit = 1.0 / tx, 1.0 / rx

    def level(t: float) -> int:
        i = int(t / t_bit)
        return bits[i] if i < len(bits) else 1  # an idle line is high

    out = bytearray()
    j, ready = 0, 0.0
    while True:
        j = max(j, int(ready / t_bit + 0.999999))
        # the next falling edge the receiver can see: a start of a 0 after a 1
        while j < len(bits) and not (bits[j] == 0 and (j == 0 or bits[j - 1] == 1)):
            j += 1
        if j >= len(bits):
            return bytes(out)
        edge = j * t_bit
        byte = sum(level(edge + (1.5 + k) * r_bit) << k for k in range(8))
        stop = level(edge + 9.5 * r_bit)
        out.append(byte if stop else 0)  # a framing error reads as NUL
        ready = edge + 9.5 * r_bit
        j += 1


def pty_baud(fd: int) -> int | None:
    """The speed the client set on the pty (both ends share one termios)."""
    try:
        speed = termios.tcgetattr(fd)[5]
    except termios.error:
        return None
    if speed != BOTHER:
        return _SPEEDS.get(speed)
    buf = bytearray(44)  # struct termios2: 4 flags, c_line, 19 c_cc, c_ispeed, c_ospeed
    try:
        fcntl.ioctl(fd, TCGETS2, buf)
    except OSError:
        return None
    return struct.unpack_from("<I", buf, 40)[0]


class WireSim:
    name = "wire-sim"
    label = "wire"  # "<label> simulator on <where>"
    chunk = 4096
    baud = 115200  # the chip's UART speed
    # True: a second client is hung up on while one is served (a serial server with a client);
    # False: it waits its turn in the listen backlog.
    refuse_second_client = False

    def _init_wire(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list = []
        self._busy = False
        self.client_baud: int | None = None  # the speed the client's port is set to, if known
        self._next_baud: int | None = None

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def on_connect(self) -> None:
        pass

    def on_disconnect(self) -> None:
        pass

    def set_lines(self, dtr: bool, rts: bool) -> None:
        """The client moved DTR or RTS (RFC 2217). Not wired by default."""

    def line_speed(self, client: int | None) -> int:
        """The chip's UART speed for what arrives now (the ESP ROM measures the client's)."""
        return self.baud

    def change_baud(self, baud: int) -> None:
        """Switch the chip's UART to `baud` once the current answer has left."""
        self._next_baud = baud

    def serve_tcp(self, host: str = "127.0.0.1") -> int:
        """Listen on a free port; one client at a time. Returns the port."""
        return self._listen(host, rfc2217=False)

    def serve_rfc2217(self, host: str = "127.0.0.1") -> int:
        """An RFC 2217 serial server on a free port (rfc2217://host:PORT); one client at a
        time. The client's baud rate and its DTR/RTS reach the simulator."""
        return self._listen(host, rfc2217=True)

    def serve_pty(self) -> str:
        """A pseudo-terminal in raw mode; returns the path pyserial opens."""
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        self._closers += [lambda: os.close(master), lambda: os.close(slave)]
        self._start(self._serve, lambda n: os.read(master, n), lambda b: os.write(master, b),
                    master, lambda: pty_baud(slave))
        return path

    def serve_forever(self, pty: bool = False, rfc2217: bool = False) -> None:
        """For `python -m tools.sim....`: serve, say where, until Ctrl-C."""
        import time

        if pty:
            where = self.serve_pty()
        elif rfc2217:
            where = "rfc2217://127.0.0.1:%d" % self.serve_rfc2217()
        else:
            where = "socket://127.0.0.1:%d" % self.serve_tcp()
        print(self.label, "simulator on", where, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for c in self._closers:
            try:
                c()
            except OSError:
                pass
        self._closers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name=self.name)
        self._threads.append(t)
        t.start()

    def _listen(self, host: str, rfc2217: bool) -> int:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, 0))
        srv.listen(4)
        self._closers.append(srv.close)
        self._start(self._accept_loop, srv, rfc2217)
        return srv.getsockname()[1]

    def _accept_loop(self, srv: socket.socket, rfc2217: bool) -> None:
        while not self._stop.is_set():
            if not select.select([srv], [], [], 0.05)[0]:
                continue
            conn, _ = srv.accept()
            if not self.refuse_second_client:
                self._conn(conn, rfc2217)
            elif self._busy:
                conn.close()
            else:
                self._busy = True
                self._start(self._conn, conn, rfc2217)

    def _conn(self, conn: socket.socket, rfc2217: bool) -> None:
        try:
            with conn:
                self.on_connect()
                if rfc2217:
                    self._serve_rfc2217(conn)
                else:  # a raw socket carries no line speed: bytes pass unchanged
                    self._serve(conn.recv, conn.sendall, conn, lambda: None)
        finally:
            self.on_disconnect()
            self._busy = False

    def _serve_rfc2217(self, conn: socket.socket) -> None:
        port = _Rfc2217Lines(self)
        lock = threading.Lock()

        class _Out:
            @staticmethod
            def write(data: bytes) -> None:
                with lock:
                    conn.sendall(data)

        manager = serial.rfc2217.PortManager(port, _Out)

        def recv(n: int) -> bytes | None:
            raw = conn.recv(n)
            if not raw:
                return b""
            return b"".join(manager.filter(raw)) or None  # None: only Telnet / RFC 2217

        def send(data: bytes) -> None:
            _Out.write(b"".join(manager.escape(data)))

        self._serve(recv, send, conn, lambda: port.baudrate)

    def _serve(self, recv, send, waitable, client_baud: Callable[[], int | None]) -> None:
        while not self._stop.is_set():
            if not select.select([waitable], [], [], 0.05)[0]:
                continue
            try:
                data = recv(self.chunk)
            except OSError:
                return
            if data is None:
                continue
            if not data:
                return
            client = self.client_baud = client_baud()
            chip = self.line_speed(client)
            reply = self.feed(uart_transfer(data, client, chip))
            if reply:
                try:
                    send(uart_transfer(reply, chip, client))
                except OSError:
                    return
            if self._next_baud is not None:
                self.baud, self._next_baud = self._next_baud, None


class _Rfc2217Lines:
    """The "serial port" pyserial's RFC 2217 PortManager drives: the client's settings land
    here, DTR and RTS go to the simulator."""

    bytesize, parity, stopbits, xonxoff, rtscts, break_condition = 8, "N", 1, False, False, False
    cts = dsr = ri = cd = False

    def __init__(self, sim: WireSim) -> None:
        self.sim = sim
        self.baudrate = 115200
        self._dtr = self._rts = False

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._dtr = bool(value)
        self.sim.set_lines(self._dtr, self._rts)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._rts = bool(value)
        self.sim.set_lines(self._dtr, self._rts)

    def reset_input_buffer(self) -> None:
        pass

    def reset_output_buffer(self) -> None:
        pass
