"""The simulators behave like the hardware where the field tools depend on it: the ESP32 ROM
answers every SYNC and is reset by DTR/RTS, so flashes follow each other; the line speed is
honoured (a pty's termios, RFC 2217), so a wrong baud rate gives garbage as on a real cable."""
from __future__ import annotations

import struct

import pytest
import serial

from tests.field.images import merged
from tests.field.test_esp_rom import cmd, replies
from tools.cli import main
from tools.field.badge import BadgeError, read_badge
from tools.field.flash import flash_image
from tools.sim.esp_rom import CHANGE_BAUDRATE, READ_REG, SYNC, EspRomSim
from tools.sim.pn532 import PN532Sim
from tools.sim.wire import uart_transfer

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(180)]

IMAGE = merged(app_size=40_000)
SYNC_FRAME = cmd(SYNC, b"\x07\x07\x12\x20" + b"\x55" * 32)


def test_the_stub_answers_every_sync_too_with_the_value_esptool_reads_as_stub():
    sim = EspRomSim()
    sim.stub = True  # as after MEM_END jumped to the uploaded stub
    r = replies(sim.feed(SYNC_FRAME) + sim.feed(SYNC_FRAME))
    assert len(r) == 16 and all(op == SYNC and val == 0 for op, val, _ in r)


def test_two_flashes_in_a_row_over_a_socket(esp_sim):
    """No reset line on a raw socket: the second session finds the stub still running."""
    flash_image(esp_sim.url, IMAGE)
    esp_sim.flash[0x1000:0x2000] = b"\0" * 0x1000
    r = flash_image(esp_sim.url, IMAGE)
    assert esp_sim.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE and esp_sim.erases == 2
    assert r.erased


def test_two_flashes_in_a_row_from_the_rom(esp_sim):
    for _ in range(2):
        flash_image(esp_sim.url, IMAGE, stub=False)
    assert esp_sim.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE and not esp_sim.stub


def test_dtr_rts_reset_as_the_devkitc_transistors():
    sim = EspRomSim(boot_mode="app")
    sim.stub = True
    # esptool's classic reset: IO0 high + EN low, then IO0 low, EN high, then IO0 high
    for dtr, rts in ((False, True), (True, True), (True, False), (False, False)):
        sim.set_lines(dtr, rts)
    assert sim.boot_mode == "download" and not sim.stub and sim.resets == ["download"]
    for dtr, rts in ((False, True), (False, False)):  # esptool's hard reset: EN pulsed
        sim.set_lines(dtr, rts)
    sim.on_disconnect()
    assert sim.boot_mode == "app" and sim.resets == ["download", "app"]
    sim.reset(download=True)  # the EN button with BOOT held, for a socket or a pty
    assert sim.boot_mode == "download"


def test_the_rom_over_rfc2217_is_reset_into_its_bootloader_by_esptool():
    sim = EspRomSim(boot_mode="app")  # running its firmware: only esptool's reset helps
    url = f"rfc2217://127.0.0.1:{sim.serve_rfc2217()}"
    try:
        r = flash_image(url, IMAGE, check_box=False)
        assert sim.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE
        assert sim.resets == ["download", "app"] and not r.notes  # it reset itself after
    finally:
        sim.close()


def test_uart_transfer_passes_at_the_same_speed_and_garbles_at_another():
    data = bytes(range(256))
    assert uart_transfer(data, 115200, 115200) == data
    assert uart_transfer(data, 115200, 116000) == data  # within a UART's tolerance
    assert uart_transfer(data, None, 9600) == data  # a raw socket carries no speed
    slow = uart_transfer(data, 9600, 115200)
    fast = uart_transfer(data, 115200, 9600)
    assert slow != data and fast != data and len(fast) < len(data) < len(slow)


@pytest.fixture
def rom_on_pty():
    sim = EspRomSim()
    sim.path = sim.serve_pty()
    yield sim
    sim.close()


def test_the_rom_measures_the_speed_then_keeps_it_until_change_baudrate(rom_on_pty):
    port = serial.Serial(rom_on_pty.path, 9600, timeout=0.5)
    try:
        port.write(SYNC_FRAME)  # autobaud: the ROM locks on 9600
        assert len(replies(port.read(8 * 14))) == 8
        port.write(cmd(CHANGE_BAUDRATE, struct.pack("<II", 115200, 0)))
        assert replies(port.read(14))[0][0] == CHANGE_BAUDRATE  # answered at the old speed
        port.reset_input_buffer()
        port.write(cmd(READ_REG, struct.pack("<I", 0x40001000)))  # still at 9600: garbage
        assert not replies(port.read(100))
        port.baudrate = 115200  # the garbage may have left half a frame: the next C0 ends it
        port.write(cmd(READ_REG, struct.pack("<I", 0x40001000)))
        assert (READ_REG, 0x00F01D83) in [(op, val) for op, val, _ in replies(port.read(100))]
    finally:
        port.close()


def test_flash_at_460800_changes_the_speed_on_both_sides(rom_on_pty):
    flash_image(rom_on_pty.path, IMAGE, baud=460800, before="no-reset", check_box=False)
    assert rom_on_pty.baud_changes == [460800] and rom_on_pty.baud == 460800
    assert rom_on_pty.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE


@pytest.fixture
def pn532_on_pty():
    sim = PN532Sim(tag=(bytes.fromhex("04a1b2c3d4e5f6"), None))
    sim.path = sim.serve_pty()
    yield sim
    sim.close()


def test_a_pn532_at_the_right_baud_reads_and_at_a_wrong_one_fails_clearly(pn532_on_pty,
                                                                          capsys):
    assert read_badge(pn532_on_pty.path, timeout=2).uid == "04A1B2C3D4E5F6"
    with pytest.raises(BadgeError, match=r"no PN532 answers .* baud rate \(115200\)"):
        read_badge(pn532_on_pty.path, timeout=2, baud=9600)
    assert pn532_on_pty.client_baud == 9600  # the simulator saw the wrong speed on the pty
    assert main(["badge", "read", pn532_on_pty.path, "--baud", "57600", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert "telegest: no PN532 answers" in err and "Traceback" not in err
