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
