"""`flash` through esptool's API against the ESP32 ROM simulator: the image checked byte for
byte in the simulated flash, and each classic failure giving its message."""
from __future__ import annotations

import socket
import time

import pytest
import serial

from tests.field.images import merged
from tools.errors import TelegestError
from tools.field.flash import FlashError, flash_image
from tools.sim.esp_rom import EspRomSim

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(60)]

IMAGE = merged()  # bootloader, partition table and application, as micropython.org has it


def test_flash_with_the_stub_erases_writes_and_verifies(esp_sim):
    esp_sim.flash[0x300000:0x300010] = b"old firmware...."
    seen = []
    r = flash_image(esp_sim.url, IMAGE, progress=lambda *a: seen.append(a))
    assert esp_sim.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE
    assert esp_sim.flash[0x300000:0x300010] == b"\xff" * 16  # erased all
    assert esp_sim.stub and esp_sim.erases == 1
    assert (r.chip, r.address, r.size, r.erased) == ("ESP32", 0x1000, len(IMAGE), True)
    assert r.description == "ESP32-D0WD-V3 (revision v3.0)" and r.mac == "24:0a:c4:12:34:56"
    writes = [(done, total) for stage, done, total in seen if stage == "write"]
    assert writes[-1][0] == writes[-1][1] and seen[0][0] == "check box"
    assert any("cannot reset" in n for n in r.notes)  # a TCP socket has no RTS


def test_flash_from_the_rom_over_a_pty(tmp_path):
    sim = EspRomSim()
    path = sim.serve_pty()
    try:
        img = tmp_path / "micropython.bin"
        img.write_bytes(IMAGE)
        r = flash_image(path, img, stub=False, before="no-reset")
        assert sim.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE
        assert not sim.stub and 0xD0 not in sim.commands  # the ROM has no ERASE_FLASH
        assert not r.erased and "only the region written" in r.notes[0]
    finally:
        sim.close()


def test_a_missing_port_says_to_plug_the_board():
    with pytest.raises(TelegestError, match="no serial port /dev/ttyUSB97: plug the board"):
        flash_image("/dev/ttyUSB97", IMAGE)


def test_a_missing_image_says_where_to_get_one(esp_sim, tmp_path):
    with pytest.raises(FlashError, match="cannot read the image"):
        flash_image(esp_sim.url, tmp_path / "nope.bin")


def test_a_board_not_in_download_mode_says_hold_boot_tap_en(make_esp_sim):
    sim = make_esp_sim(boot_mode="app")
    with pytest.raises(FlashError, match="hold BOOT, tap EN") as e:
        flash_image(sim.url, IMAGE, connect_attempts=1)
    assert "no ESP32 bootloader answers" in str(e.value)
    assert sim.flash == b"\xff" * len(sim.flash)


def test_the_wrong_chip_is_refused_before_writing(make_esp_sim):
    sim = make_esp_sim(chip="esp8266")
    with pytest.raises(FlashError, match="is an ESP8266, not an ESP32"):
        flash_image(sim.url, IMAGE, connect_attempts=1)
    assert 0x02 not in sim.commands and 0x05 not in sim.commands  # no write, no stub


def test_a_busy_pty_says_close_the_other_program():
    sim = EspRomSim()
    path = sim.serve_pty()
    holder = serial.Serial(path, 115200, exclusive=True)
    try:
        with pytest.raises(TelegestError, match="is busy: another program has it open"):
            flash_image(path, IMAGE, before="no-reset")
    finally:
        holder.close()
        sim.close()


def test_a_busy_socket_says_close_the_other_client(esp_sim):
    with socket.create_connection(("127.0.0.1", int(esp_sim.url.rsplit(":", 1)[1]))):
        time.sleep(0.2)  # the simulator takes the first client
        with pytest.raises(TelegestError, match="already has a client"):
            flash_image(esp_sim.url, IMAGE, connect_attempts=1)


def test_a_half_written_flash_is_repaired_by_running_again(esp_sim):
    esp_sim.die_after(20)
    with pytest.raises(FlashError, match="half-written") as e:
        flash_image(esp_sim.url, IMAGE, stub=False)
    assert "run the same flash command again" in str(e.value)
    assert esp_sim.flash[0x1000:0x1000 + len(IMAGE)] != IMAGE
    esp_sim.revive()  # power back, the technician holds BOOT and taps EN
    flash_image(esp_sim.url, IMAGE, stub=False)
    assert esp_sim.flash[0x1000:0x1000 + len(IMAGE)] == IMAGE
