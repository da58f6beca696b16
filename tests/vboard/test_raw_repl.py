"""The board's REPL byte by byte, through pyserial's socket:// URL as through a serial port."""
from __future__ import annotations

import struct
import time

import pytest
import serial

from tests.vboard.helpers import mpremote, ok

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(60)]

RAW = b"raw REPL; CTRL-B to exit\r\n>"


def read_until(port: serial.Serial, ending: bytes, timeout: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(ending):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {ending!r} within {timeout}s, got {data!r}")
        data += port.read(1)
    return data


@pytest.fixture
def link(board):
    port = serial.serial_for_url(board.url, timeout=0.2)
    yield port
    port.close()


def raw_repl(port: serial.Serial) -> None:
    port.write(b"\r\x03\x03")
    time.sleep(0.1)
    port.reset_input_buffer()
    port.write(b"\r\x01")
    read_until(port, RAW)


def test_raw_repl_frames_output_and_errors(link):
    raw_repl(link)
    link.write(b"print('out')\x04")
    assert read_until(link, b"\x04>") == b"OKout\n\x04\x04>"
    link.write(b"import sys\nprint('x', file=sys.stderr)\nraise ValueError('bad')\x04")
    reply = read_until(link, b"\x04>")
    assert reply.startswith(b"OKx\n\x04Traceback (most recent call last):\r\n")
    assert reply.endswith(b"ValueError: bad\r\n\x04>")


def test_ctrl_c_drops_a_half_sent_command(link):
    raw_repl(link)
    link.write(b"this is not python\x03print(7)\x04")
    assert read_until(link, b"\x04>") == b"OK7\n\x04\x04>"


def test_ctrl_b_leaves_and_ctrl_d_soft_resets(link):
    raw_repl(link)
    link.write(b"x = 1\x04")
    read_until(link, b"\x04>")
    link.write(b"\x02")
    assert read_until(link, b">>> ").endswith(b'Type "help()" for more information.\r\n>>> ')
    link.write(b"x\r")
    assert read_until(link, b">>> ") == b"x\r\n1\n>>> "
    link.write(b"\x04")
    reply = read_until(link, b">>> ")
    assert b"MPY: soft reboot\r\n" in reply and b"MicroPython v1.27" in reply
    link.write(b"'x' in globals()\r")
    assert read_until(link, b">>> ").endswith(b"False\n>>> ")


def test_soft_reset_in_raw_repl_stays_raw(link):
    raw_repl(link)
    link.write(b"\x04")
    assert read_until(link, RAW) == b"OK\r\nMPY: soft reboot\r\n" + RAW


def test_raw_paste_handshake_and_flow_control(link):
    raw_repl(link)
    link.write(b"\x05A\x01")
    head = link.read(5)
    assert head[:2] == b"R\x01" and head[4:] == b"\x01"
    window = struct.unpack("<H", head[2:4])[0]
    assert window == 128
    code = b"print(" + b"1+" * 200 + b"1)"  # over three windows
    sent, free = 0, window
    while sent < len(code):
        if free == 0:
            assert link.read(1) == b"\x01"  # the board has room for another window
            free = window
        n = min(free, len(code) - sent)
        link.write(code[sent:sent + n])
        sent, free = sent + n, free - n
    link.write(b"\x04")
    assert read_until(link, b"\x04>") == b"\x04201\n\x04\x04>"


def test_disconnect_mid_command_then_mpremote(board):
    for half in (b"print('half", b"\x05A\x01print('half"):  # raw REPL, then raw-paste
        port = serial.serial_for_url(board.url, timeout=0.2)
        raw_repl(port)
        port.write(half)
        time.sleep(0.1)
        port.close()
    assert ok(mpremote(board, "resume", "exec", "print('usable')")).strip() == "usable"


def test_state_survives_reconnect_and_clients_take_turns(board):
    first = serial.serial_for_url(board.url, timeout=0.2)
    raw_repl(first)
    first.write(b"kept = 'from first'\x04")
    read_until(first, b"\x04>")
    second = serial.serial_for_url(board.url, timeout=0.2)  # waits for the first to leave
    second.write(b"\r\x03")
    assert second.read(16) == b""
    first.close()
    raw_repl(second)
    second.write(b"print(kept)\x04")
    assert read_until(second, b"\x04>") == b"OKfrom first\n\x04\x04>"
    second.close()


def test_missing_toolchain_is_a_clear_error(tmp_path):
    from tools.vboard.board import VirtualBoardError, check_toolchain

    with pytest.raises(VirtualBoardError, match="node is not installed"):
        check_toolchain(node=str(tmp_path / "no-node"))
    with pytest.raises(VirtualBoardError, match="npm ci"):
        check_toolchain(package=tmp_path / "no-package")
