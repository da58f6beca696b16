"""The protocol core over the HSU transport and a scripted UART: exact bytes out, recovery."""
import time

import pytest
from tests.drivers.pn532_fakes import ScriptedUART

from firmware.drivers.pn532 import (
    ACK, ERROR_FRAME, NACK, PN532, PN532Error, PN532Timeout, build_frame,
)
from firmware.drivers.pn532_uart import WAKEUP, PN532UART

H = bytes.fromhex
FW_ANSWER = H("0000ff06fad50332010607e800")
SAM_ANSWER = build_frame(b"\x15", tfi=0xD5)


def reader(*replies, **kw):
    uart = ScriptedUART(replies)
    kw.setdefault("ack_timeout_ms", 20)
    kw.setdefault("timeout_ms", 50)
    return PN532(PN532UART(uart), **kw), uart


def test_wakeup_preamble_is_55_55_then_zeros():
    assert WAKEUP[:2] == b"\x55\x55" and set(WAKEUP[2:]) == {0} and len(WAKEUP) >= 5


def test_get_firmware_version_exact_bytes():
    r, uart = reader(ACK + FW_ANSWER)
    assert r.get_firmware_version() == (0x32, 1, 6, 7)
    assert bytes(uart.written) == H("0000ff02fed4022a00")


def test_begin_wakes_then_configures_sam_and_retries():
    r, uart = reader(ACK + SAM_ANSWER, ACK + build_frame(b"\x33", tfi=0xD5))
    r.begin()
    assert bytes(uart.written) == (WAKEUP + H("0000ff05fbd4140114010200")
                                   + H("0000ff06fad43205ff0102f300"))


def test_list_target_uid_and_none():
    uid = H("04a1b2c3d4e5f6")
    found = build_frame(H("4b0101004400") + b"\x07" + uid, tfi=0xD5)
    none = build_frame(H("4b00"), tfi=0xD5)
    r, uart = reader(ACK + found, ACK + none)
    assert r.list_target() == uid
    assert r.list_target() is None
    assert bytes(uart.written) == H("0000ff04fcd44a0100e100") * 2


def test_ntag_read_and_write_exact_bytes():
    data = bytes(range(16))
    r, uart = reader(ACK + build_frame(b"\x41\x00" + data, tfi=0xD5),
                     ACK + build_frame(b"\x41\x00", tfi=0xD5))
    assert r.ntag_read(4) == data
    r.ntag_write(4, b"abcd")
    assert bytes(uart.written) == H("0000ff05fbd440013004b700") + H(
        "0000ff09f7d44001a20461626364bb00")


def test_ntag_write_needs_four_bytes():
    r, _ = reader()
    with pytest.raises(PN532Error, match="4 bytes"):
        r.ntag_write(4, b"abc")


def test_tag_error_status_is_named():
    r, _ = reader(ACK + build_frame(b"\x41\x01", tfi=0xD5))
    with pytest.raises(PN532Error, match="status 0x01: target timeout"):
        r.ntag_read(4)


def test_garbled_answer_is_asked_again_with_nack():
    bad = bytearray(FW_ANSWER)
    bad[-2] ^= 0xFF
    r, uart = reader(ACK + bytes(bad), FW_ANSWER)
    assert r.get_firmware_version() == (0x32, 1, 6, 7)
    assert bytes(uart.written) == H("0000ff02fed4022a00") + NACK
    assert r.stats["frame_errors"] == 1 and r.stats["nacks"] == 1


def test_nack_from_chip_resends_command():
    r, uart = reader(NACK, ACK + FW_ANSWER)
    assert r.get_firmware_version()[0] == 0x32
    assert bytes(uart.written) == H("0000ff02fed4022a00") * 2
    assert r.stats["retries"] == 1 and r.stats["nacks"] == 1


def test_error_frame_resends_then_fails_clearly():
    r, _ = reader(ERROR_FRAME, ERROR_FRAME, ERROR_FRAME)
    with pytest.raises(PN532Error, match="error frame"):
        r.get_firmware_version()
    assert r.stats["error_frames"] == 3


def test_garbage_forever_gives_pn532error_with_reason():
    junk = H("0000ff02fed5151900")  # bad DCS, as an ACK
    r, _ = reader(junk, junk, junk, retries=2)
    with pytest.raises(PN532Error, match="after 3 attempts: garbled ACK"):
        r.get_firmware_version()


@pytest.mark.serial  # a bound in CPU time: alone, after the others
def test_silent_chip_times_out_bounded_and_rewakes():
    r, uart = reader(retries=2, ack_timeout_ms=30)
    t0 = time.monotonic()
    with pytest.raises(PN532Timeout, match="not answering command 0x02: no ACK within 30 ms"):
        r.get_firmware_version()
    assert time.monotonic() - t0 < 1.0
    assert r.stats["timeouts"] == 3 and r.stats["wakeups"] == 3
    assert bytes(uart.written).count(WAKEUP) == 3


def test_ack_without_answer_times_out():
    r, _ = reader(ACK)
    with pytest.raises(PN532Timeout, match="acknowledged but sent no answer"):
        r.get_firmware_version()


def test_list_target_timeout_aborts_with_host_ack():
    r, uart = reader(ACK)
    with pytest.raises(PN532Timeout):
        r.list_target()
    assert bytes(uart.written).endswith(ACK)


def test_answer_to_another_command_is_an_error():
    r, _ = reader(ACK + SAM_ANSWER)
    with pytest.raises(PN532Error, match="answer to command 0x02 has code 0x15"):
        r.get_firmware_version()


def test_pyserial_shape_in_waiting_is_enough():
    class PySerialLike:
        def __init__(self):
            self.inner = ScriptedUART([ACK + FW_ANSWER])

        @property
        def in_waiting(self):
            return self.inner.any()

        def read(self, n):
            return self.inner.read(n) or b""

        def write(self, b):
            return self.inner.write(b)

    r = PN532(PN532UART(PySerialLike()))
    assert r.get_firmware_version() == (0x32, 1, 6, 7)


def test_reset_pulses_rstpd_n_before_waking():
    class Pin:
        levels = []

        def value(self, v):
            self.levels.append(v)

    pin = Pin()
    r = PN532(PN532UART(ScriptedUART([ACK + SAM_ANSWER])), reset_pin=pin)
    r.reset()
    assert pin.levels == [0, 1]
