"""Simulators for the field tools: the ESP32 ROM bootloader, the PN532, the virtual MicroPython
board, and the reader's technician console served by the real firmware Console on fake
hardware. A missing piece fails the test (never skips)."""
from __future__ import annotations

import pytest

from tools.sim.esp_rom import EspRomSim
from tools.sim.pn532 import PN532Sim


@pytest.fixture
def esp_sim():
    sim = EspRomSim()
    sim.url = f"socket://127.0.0.1:{sim.serve_tcp()}"
    yield sim
    sim.close()


@pytest.fixture
def make_esp_sim():
    sims = []

    def make(**kw):
        sim = EspRomSim(**kw)
        sim.url = f"socket://127.0.0.1:{sim.serve_tcp()}"
        sims.append(sim)
        return sim

    yield make
    for s in sims:
        s.close()


@pytest.fixture
def pn532_sim():
    sim = PN532Sim()
    sim.url = f"socket://127.0.0.1:{sim.serve_tcp()}"
    yield sim
    sim.close()


@pytest.fixture
def vboard():
    """The virtual MicroPython board (WebAssembly MicroPython behind a TCP socket)."""
    from tools.vboard import VirtualBoard, VirtualBoardError

    try:
        board = VirtualBoard().start()
    except VirtualBoardError as e:
        pytest.fail(str(e))
    yield board
    board.stop()


class CuttingProxy:
    """A TCP relay to `port` that hangs up both sides once `cut_after` bytes went towards the
    board: a USB cable pulled in the middle of a transfer."""

    def __init__(self, port: int, cut_after: int):
        import socket
        import threading

        self.target, self.cut_after, self.sent, self.cut = port, cut_after, 0, False
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import select
        import socket

        while not self.cut:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            board = socket.create_connection(("127.0.0.1", self.target))
            with client, board:
                while not self.cut:
                    ready = select.select([client, board], [], [], 0.1)[0]
                    if client in ready:
                        data = client.recv(4096)
                        if not data:
                            break
                        if self.sent + len(data) >= self.cut_after:
                            self.cut = True
                            break
                        self.sent += len(data)
                        board.sendall(data)
                    if board in ready:
                        data = board.recv(4096)
                        if not data:
                            break
                        client.sendall(data)

    def close(self):
        self.cut = True
        self.srv.close()


@pytest.fixture
def console_server(tmp_path):
    from tests.field.console_server import ConsoleServer

    server = ConsoleServer(tmp_path)
    yield server
    server.close()
