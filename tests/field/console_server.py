"""The reader's technician console behind a TCP socket: the real firmware Runtime and Console
(firmware/runtime) on the fake hardware of tests/runtime/fakes.py, stepped with a fake clock.
What the WebAssembly board cannot run (asyncio with hardware), this CPython server does, so
`socket://127.0.0.1:PORT` answers as a reader's USB serial port. With serve=False it is the
firmware of a simulated ESP32 (tools/sim/esp_rom.py's `app`): bytes in through feed()."""
from __future__ import annotations

import select
import socket
import threading
from pathlib import Path

from firmware.runtime.app import Runtime
from firmware.runtime.safemode import BootGuard
from firmware.runtime.settings import Settings
from tests.runtime.fakes import Hw

LOG_LINE = "# link: mqtt up\n"


class ConsoleServer:
    def __init__(self, tmp: Path, serve: bool = True):
        self.hw = Hw()
        self.tmp = tmp
        s = Settings(str(tmp / "settings.json"))
        for k, v in {"ssid": "home", "password": "secret12", "host": "broker.local"}.items():
            s.set(k, v)
        s.save()
        self.now = 0
        self.boots = 0
        self.transcript: list[str] = []  # everything the box printed, to look for secrets
        self._boot()
        self._stop = threading.Event()
        if not serve:
            self.srv = None
            return
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _boot(self) -> None:
        """Power on (or reset): a new Runtime from what the box keeps on flash."""
        self.boots += 1
        self.resets_seen = self.hw.resets
        guard = BootGuard(str(self.tmp / "boots"))
        guard.boot()
        self.rt = Runtime(self.hw, Settings(str(self.tmp / "settings.json")), guard,
                          journal_path=str(self.tmp / "j"),
                          planning_path=str(self.tmp / "planning.json"), start=self.now)
        self.step(2000)  # Wi-Fi and the broker come up

    def step(self, ms: int) -> None:
        for _ in range(ms // 50):
            if self.hw.resets != self.resets_seen:  # the firmware asked for a reset
                self._boot()
            self.now += 50
            self.rt.reader_step(self.now)
            if self.now % 100 == 0:
                self.rt.net_step(self.now)
            self.rt.console_step(self.now)
            if self.now % 1000 == 0:
                self.rt.main_step(self.now)
            self.hw.run_network(self.rt, 50)  # the MQTT client's task, on the fake clock

    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.srv], [], [], 0.05)[0]:
                continue
            conn, _ = self.srv.accept()
            with conn:
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            if select.select([conn], [], [], 0.02)[0]:
                try:
                    data = conn.recv(1024)
                except OSError:
                    return
                if not data:
                    return
                self.hw.serial.inbuf += data
            self.step(50)
            if self.hw.serial.out:
                out = "".join(self.hw.serial.out)
                self.hw.serial.out.clear()
                self.transcript.append(out)
                conn.sendall((LOG_LINE + out).encode())

    def unsent(self, n: int) -> None:
        """Put n clock-ins in the journal that the fleet does not ack (it is unreachable)."""
        self.hw.broker.fleet_acks = False
        for i in range(n):
            self.rt.core.journal.append(b'{"k":"tap","n":%d}' % i)

    def feed(self, data: bytes) -> bytes:
        """Bytes on the box's USB serial port; what it prints within a second of its time."""
        self.hw.serial.inbuf += data
        out = []
        for _ in range(20):
            self.step(50)
            out += self.hw.serial.out
            self.hw.serial.out.clear()
            if out and out[-1].endswith("\n") and not self.hw.serial.inbuf:
                break
        return "".join(out).encode()

    def close(self) -> None:
        self._stop.set()
        if self.srv is not None:
            self._thread.join(timeout=2)
            self.srv.close()
        self.hw.close()  # the MQTT client's task and its event loop
