"""Firmware files for the flash tests, built with esptool's own image writer (bin_image.py) so
the checks in tools/field/espimage.py are tested against the format as esptool writes it, not
against themselves: a MicroPython-like merged .bin (bootloader at 0x1000, partition table at
0x8000, application at 0x10000), and the bad files a technician meets."""
from __future__ import annotations

import hashlib
import os
import struct

from esptool.bin_image import ELFSection, ESP32FirmwareImage, ESP32S3FirmwareImage

APP_DESC_MAGIC = 0xABCD5432
SIZE_CODES = {"1MB": 0x00, "2MB": 0x10, "4MB": 0x20, "8MB": 0x30, "16MB": 0x40}


def esp_image(segments: list[tuple[int, bytes]], *, chip: str = "esp32", flash: str = "4MB",
              entry: int = 0x40080400) -> bytes:
    img = (ESP32S3FirmwareImage if chip == "esp32s3" else ESP32FirmwareImage)()
    img.segments = [ELFSection(b".s%d" % i, addr, data, 0)
                    for i, (addr, data) in enumerate(segments)]
    img.entrypoint = entry
    img.flash_mode = 2  # DIO
    img.flash_size_freq = SIZE_CODES[flash] | 0x0F  # 80 MHz
    img.append_digest = True
    return img.save(None)


def bootloader(chip: str = "esp32", flash: str = "4MB") -> bytes:
    return esp_image([(0x3FFF0030, os.urandom(0x1000)), (0x40078000, os.urandom(0x3000)),
                      (0x40080400, os.urandom(0x1200))], chip=chip, flash=flash)


def app_image(chip: str = "esp32", size: int = 200_000, flash: str = "4MB") -> bytes:
    desc = struct.pack("<IIII32s32s16s16s32s32s", APP_DESC_MAGIC, 0, 0, 0, b"v1.27.0",
                       b"micropython", b"00:00:00", b"Dec  9 2025", b"v5.2.2", b"\0" * 32)
    desc += b"\0" * (256 - len(desc))
    return esp_image([(0x3F400020, desc + os.urandom(size // 2)),
                      (0x3FFB0000, os.urandom(0x800)),
                      (0x400D0020, os.urandom(size // 2))], chip=chip, flash=flash,
                     entry=0x400D1000)


def partition_table(app_offset: int = 0x10000, app_size: int = 0x1F0000) -> bytes:
    def entry(ptype: int, sub: int, offset: int, size: int, label: bytes) -> bytes:
        return struct.pack("<2sBBII16sI", b"\xaa\x50", ptype, sub, offset, size, label, 0)

    rows = (entry(1, 2, 0x9000, 0x6000, b"nvs") + entry(1, 1, 0xF000, 0x1000, b"phy_init")
            + entry(0, 0, app_offset, app_size, b"factory")
            + entry(1, 0x81, app_offset + app_size, 0x200000 - 0x10000, b"vfs"))
    rows += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(rows).digest()
    return rows + b"\xff" * (0xC00 - len(rows))


def merged(chip: str = "esp32", flash: str = "4MB", app_size: int = 200_000) -> bytes:
    """What micropython.org offers as ESP32_GENERIC-<date>-v1.27.0.bin: one file written at
    the bootloader's address."""
    base = 0x1000 if chip == "esp32" else 0x0
    out = bytearray(b"\xff" * (0x10000 - base))
    boot = bootloader(chip, flash)
    out[:len(boot)] = boot
    out[0x8000 - base:0x8000 - base + 0xC00] = partition_table()
    return bytes(out) + app_image(chip, app_size, flash)


HTML_404 = b"<html>404 Not Found</html>\n"  # 27 bytes: the download saved an error page
