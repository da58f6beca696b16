"""A simulated PN532 on a loopback TCP port, reached through pyserial like a real serial port."""
import pytest
import serial

from firmware.drivers.pn532 import PN532
from firmware.drivers.pn532_uart import PN532UART
from tools.sim.pn532 import PN532Sim


@pytest.fixture
def sim():
    s = PN532Sim()
    yield s
    s.close()


@pytest.fixture
def port(sim):
    ser = serial.serial_for_url("socket://127.0.0.1:%d" % sim.serve_tcp(), timeout=0)
    yield ser
    ser.close()


@pytest.fixture
def reader(port):
    r = PN532(PN532UART(port), timeout_ms=500, ack_timeout_ms=100, retries=2)
    r.begin()
    return r
