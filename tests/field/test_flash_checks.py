"""`flash` refuses what would leave a board unbootable, or lose clock-ins, before anything is
erased: each bad file of issue #17 against the ROM simulator's 4 MB flash, checked unchanged
byte for byte; a box in service (the real firmware console as the simulated chip's app)."""
from __future__ import annotations

import os

import pytest

from tests.field.console_server import ConsoleServer
from tests.field.images import HTML_404, app_image, merged
from tools.cli import main
from tools.field.espimage import ImageError, check_image
from tools.field.flash import FlashError, flash_image
from tools.field.inservice import InServiceError
from tools.sim.esp_rom import ERR_FLASH_WRITE, EspRomSim

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(120)]

WRITES = {0x02, 0x10, 0xD0, 0xD1}  # FLASH_BEGIN, FLASH_DEFL_BEGIN, ERASE_FLASH, ERASE_REGION
GOOD = merged()


@pytest.fixture
def old_box(esp_sim):
    """A board that holds an older firmware: every byte of its flash is known."""
    esp_sim.flash[:] = os.urandom(len(esp_sim.flash))
    esp_sim.before = bytes(esp_sim.flash)
    return esp_sim


def refused(sim, image, match: str, **kw) -> str:
    with pytest.raises(FlashError, match=match) as e:
        flash_image(sim.url, image, connect_attempts=1, **kw)
    assert sim.flash == sim.before  # nothing erased, nothing written
    assert not WRITES & set(sim.commands) and sim.erases == 0
    assert "cable" not in str(e.value)
    return str(e.value)


def test_a_saved_html_404_page_is_refused_without_touching_the_board(old_box):
    assert len(HTML_404) == 27
    msg = refused(old_box, HTML_404, "not an ESP firmware image .*web page \\(HTML\\)")
    assert "micropython.org/download/ESP32_GENERIC/" in msg and "Nothing was written" in msg
    assert old_box.commands == []  # refused before even connecting


def test_a_truncated_1kb_image_is_refused(old_box):
    msg = refused(old_box, GOOD[:1024], "truncated: segment 1 of 3 .* stops at 1024")
    assert "download the .bin" in msg


def test_an_image_cut_in_the_application_is_refused(old_box):
    refused(old_box, GOOD[:150_000], r"application image \(factory at 0x10000\) is truncated")


def test_a_5mb_image_for_the_4mb_chip_is_refused_on_the_flash_size_read_from_it(old_box):
    big = merged(flash="16MB") + b"\xff" * (5 * 1024 * 1024)  # its header would allow it
    msg = refused(old_box, big, "this board has 4 MB \\(read from the chip\\)")
    assert "Nothing was erased" in msg
    assert 0x08 in old_box.commands  # it did connect: the size came from the chip


def test_an_image_padded_past_its_own_flash_size_is_refused_before_connecting(old_box):
    refused(old_box, GOOD + b"\xff" * (5 * 1024 * 1024), "does not fit the 4 MB of flash its "
                                                         "own header declares")
    assert old_box.commands == []


def test_an_image_built_for_8mb_is_refused_on_a_4mb_board(old_box):
    refused(old_box, merged(flash="8MB"), "built for 8 MB of flash but this board has 4 MB")


def test_an_unaligned_address_is_refused(old_box):
    msg = refused(old_box, GOOD, "--address 0x1001 is not on a 4 KiB sector", address=0x1001)
    assert "goes at 0x1000" in msg


def test_a_bootloader_at_another_address_is_refused(old_box):
    refused(old_box, GOOD, "bootloader, which the ESP32 reads at 0x1000, not 0x0", address=0)


def test_another_chips_build_and_an_app_alone_are_refused(old_box):
    refused(old_box, merged(chip="esp32s3"), "built for an ESP32-S3, not for an ESP32")
    refused(old_box, app_image(), "application image .* without a bootloader")


def test_a_damaged_image_fails_its_checksum_or_digest(old_box):
    bad = bytearray(GOOD)
    bad[0x200] ^= 0x01  # inside the bootloader's first segment
    refused(old_box, bytes(bad), "is corrupt: its checksum byte")
    bad = bytearray(GOOD)
    bad[0xF000 + 0x5000] ^= 0x01  # in the application, checksum fixed by chance is unlikely
    refused(old_box, bytes(bad), "corrupt")


def test_the_s3_build_passes_at_0x0_and_is_refused_at_0x1000():
    layout = check_image(merged(chip="esp32s3"), "esp32s3", 0x0)
    assert layout.describe() == "bootloader, partition table and micropython v1.27.0"
    with pytest.raises(ImageError, match="reads at 0x0, not 0x1000"):
        check_image(merged(chip="esp32s3"), "esp32s3", 0x1000)


def test_the_cli_refuses_with_one_line_and_exit_2(old_box, tmp_path, capsys):
    img = tmp_path / "ESP32_GENERIC-v1.27.0.bin"
    img.write_bytes(HTML_404)
    assert main(["device", "flash", old_box.url, str(img)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("telegest: this file is not an ESP firmware")
    assert "Traceback" not in err and old_box.flash == old_box.before


def test_a_write_the_chip_refuses_says_why_not_cable(esp_sim):
    esp_sim.refuse_writes(ERR_FLASH_WRITE)
    with pytest.raises(FlashError, match="chip refused the write at 0x1000: its flash chip "
                                         "reported a write error") as e:
        flash_image(esp_sim.url, GOOD)
    msg = str(e.value)
    assert "The cable is fine" in msg and "Check the cable" not in msg
    assert "will not boot until a flash succeeds" in msg


# -- a box in service -------------------------------------------------------------------------
@pytest.fixture
def box_in_service(tmp_path):
    """An ESP32 running the reader firmware (the real Runtime and console) behind an RFC 2217
    server: esptool's DTR/RTS reset takes it into its ROM bootloader, as on a DevKitC."""
    firmware = ConsoleServer(tmp_path, serve=False)
    sim = EspRomSim(boot_mode="app", app=firmware)
    sim.url = f"rfc2217://127.0.0.1:{sim.serve_rfc2217()}"
    sim.firmware = firmware
    sim.flash[:] = os.urandom(len(sim.flash))
    sim.before = bytes(sim.flash)
    yield sim
    sim.close()
    firmware.close()


def test_a_box_holding_unsent_clock_ins_is_not_erased(box_in_service):
    box_in_service.firmware.unsent(3)
    with pytest.raises(InServiceError, match="holds 3 clock-ins not yet sent") as e:
        flash_image(box_in_service.url, GOOD)
    assert "--force" in str(e.value) and "telegest device deploy" in str(e.value)
    assert box_in_service.flash == box_in_service.before
    assert box_in_service.resets == [] and box_in_service.commands == []  # never reset


def test_force_flashes_it_and_says_how_many_were_lost(box_in_service, tmp_path, capsys):
    box_in_service.firmware.unsent(3)
    img = tmp_path / "mp.bin"
    img.write_bytes(GOOD)
    assert main(["device", "flash", box_in_service.url, str(img), "--force"]) == 0
    out = capsys.readouterr().out
    assert "note: --force: 3 clock-ins not yet sent to the fleet were erased" in out
    assert box_in_service.flash[0x1000:0x1000 + len(GOOD)] == GOOD
    assert box_in_service.resets == ["download", "app"]  # esptool's reset, then the hard reset


def test_a_box_whose_journal_is_empty_is_flashed(box_in_service):
    r = flash_image(box_in_service.url, GOOD)
    assert any("journal was empty" in n for n in r.notes)
    assert box_in_service.flash[0x1000:0x1000 + len(GOOD)] == GOOD
