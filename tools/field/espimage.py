"""What a firmware file for an ESP32 holds, checked before anything touches the board.

    layout = check_image(data, "esp32", 0x1000)   # ImageError saying what is wrong

The ESP-IDF image format (as esptool's bin_image.py reads it): a common header (magic 0xE9,
segment count, SPI mode, flash size and frequency, entry point), a 16-byte extended header
(chip id, chip revisions, whether a SHA-256 digest is appended), the segments (load address,
length, data), zero padding so that a one-byte XOR checksum (seed 0xEF) ends on a 16-byte
boundary, then the optional SHA-256 of everything before it. A MicroPython .bin for the ESP32
is "merged": the bootloader image at 0x1000, the partition table at 0x8000 and the application
image at 0x10000, all in one file written at 0x1000 (at 0x0 on the S3). Each part is checked;
a cut download, a web page saved as .bin or another chip's build is refused here.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from tools.errors import TelegestError

IMAGE_MAGIC = 0xE9
CHECKSUM_SEED = 0xEF
MAX_SEGMENTS = 16
SECTOR = 0x1000
PARTITION_TABLE = 0x8000
PARTITION_MAGIC = b"\xaa\x50"
PARTITION_MD5_MAGIC = b"\xeb\xeb"
APP_DESC_MAGIC = 0xABCD5432
# where a bootloader (so a merged MicroPython image) starts, per chip
BOOTLOADER_ADDRESS = {"esp32": 0x1000, "esp32s3": 0x0}
CHIP_NAMES = {"esp32": "ESP32", "esp32s3": "ESP32-S3"}
DOWNLOAD = {"esp32": "https://micropython.org/download/ESP32_GENERIC/",
            "esp32s3": "https://micropython.org/download/ESP32_GENERIC_S3/"}
# chip ids of the extended header (esptool's IMAGE_CHIP_ID per target)
IMAGE_CHIP_IDS = {0: "ESP32", 2: "ESP32-S2", 5: "ESP32-C3", 9: "ESP32-S3", 12: "ESP32-C2",
                  13: "ESP32-C6", 16: "ESP32-H2", 18: "ESP32-P4", 20: "ESP32-C61",
                  23: "ESP32-C5"}
CHIP_IDS = {"esp32": 0, "esp32s3": 9}
MB = 1024 * 1024


class ImageError(TelegestError):
    pass


@dataclass
class Image:
    """One ESP application or bootloader image inside the file."""
    offset: int  # in the file
    length: int  # header to checksum, and the digest when appended
    segments: int
    chip_id: int
    flash_size: int | None  # bytes, from the header
    digest: bool  # a SHA-256 is appended (and was checked)
    app: str | None = None  # "project version" from the app descriptor; None: a bootloader


@dataclass
class Layout:
    """What check_image found: the images, and where each goes on the flash."""
    address: int
    size: int
    images: list[Image] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def flash_size(self) -> int | None:
        """The flash size the image was built for (its first image's header)."""
        return self.images[0].flash_size if self.images else None

    @property
    def end(self) -> int:
        return self.address + self.size

    def describe(self) -> str:
        apps = [i.app for i in self.images if i.app]
        kind = "bootloader, partition table and " if len(self.images) > 1 else ""
        return kind + (apps[0] if apps else "bootloader")


def hint(chip: str) -> str:
    return (f"download the .bin for your board again from {DOWNLOAD.get(chip, DOWNLOAD['esp32'])}"
            " (the file ending in .bin, not the page)")


def human(n: int) -> str:
    if n >= MB:
        return f"{n // MB} MB" if n % MB == 0 else f"{n / MB:.1f} MB"
    return f"{n} bytes"


def check_image(data: bytes, chip: str, address: int) -> Layout:
    """Check `data` as a firmware file written at `address` for `chip`; ImageError if not."""
    name = CHIP_NAMES[chip]
    if address < 0 or address % SECTOR:
        raise ImageError(
            f"--address {address:#x} is not on a 4 KiB sector boundary (the flash is erased "
            f"in 4 KiB sectors, so an address is a multiple of 0x1000): MicroPython for the "
            f"{name} goes at {BOOTLOADER_ADDRESS[chip]:#x}; leave --address out")
    if not data:
        raise ImageError("the image is empty: " + hint(chip))
    if data[0] != IMAGE_MAGIC:
        raise ImageError(f"this file is not an ESP firmware image ({_what(data)}): " + hint(chip))
    layout = Layout(address, len(data))
    first = read_image(data, 0, chip)
    layout.images.append(first)
    if first.app is None:
        expected = BOOTLOADER_ADDRESS[chip]
        if address != expected:
            raise ImageError(
                f"this image starts with a bootloader, which the {name} reads at "
                f"{expected:#x}, not {address:#x}: leave --address out (MicroPython's .bin for "
                f"the {name} goes at {expected:#x})")
        _merged(data, chip, layout)
    elif address < PARTITION_TABLE + SECTOR:
        raise ImageError(
            f"this is an application image ({first.app}) without a bootloader: at {address:#x} "
            "it would overwrite the bootloader and the board would not boot. Flash the whole "
            f"MicroPython .bin (bootloader included) instead: " + hint(chip))
    if first.flash_size and layout.end > first.flash_size:
        raise ImageError(
            f"the image ({human(len(data))} at {address:#x}) does not fit the "
            f"{human(first.flash_size)} of flash its own header declares: the file is "
            "damaged or padded; " + hint(chip))
    return layout


def check_board(layout: Layout, chip: str, flash_size: int | None) -> list[str]:
    """Check the file against the flash size read from the chip. ImageError if it cannot
    work; returns notes for what is worth saying."""
    if flash_size is None:
        return ["the flash size could not be read from the chip: not checked"]
    if layout.end > flash_size:
        raise ImageError(
            f"the image needs {human(layout.end)} of flash ({human(layout.size)} from "
            f"{layout.address:#x}) but this board has {human(flash_size)} (read from the "
            "chip): this .bin is not for this board; " + hint(chip))
    if layout.flash_size and layout.flash_size > flash_size:
        raise ImageError(
            f"the image is built for {human(layout.flash_size)} of flash but this board has "
            f"{human(flash_size)} (read from the chip): its bootloader would refuse to start. "
            f"Take the build for a {human(flash_size)} board: " + hint(chip))
    return []


def read_image(data: bytes, off: int, chip: str, what: str = "image") -> Image:
    """Parse and verify the ESP image at data[off:]."""
    name = CHIP_NAMES[chip]
    if len(data) - off < 24:
        raise ImageError(f"the {what} is truncated: {len(data) - off} bytes, not even a header; "
                         + hint(chip))
    magic, nseg, _mode, size_freq, _entry = struct.unpack_from("<BBBBI", data, off)
    if magic != IMAGE_MAGIC:
        raise ImageError(f"the {what} at offset {off:#x} of the file is not an ESP image "
                         f"(magic {magic:#04x}, expected 0xe9): " + hint(chip))
    if not 1 <= nseg <= MAX_SEGMENTS:
        raise ImageError(f"the {what} declares {nseg} segments (an ESP image has 1 to "
                         f"{MAX_SEGMENTS}): the file is damaged; " + hint(chip))
    chip_id = struct.unpack_from("<H", data, off + 12)[0]
    hash_appended = data[off + 23]
    if chip_id != CHIP_IDS[chip]:
        other = IMAGE_CHIP_IDS.get(chip_id, f"chip id {chip_id}")
        raise ImageError(f"this {what} is built for an {other}, not for an {name}: " + hint(chip))
    if hash_appended not in (0, 1):
        raise ImageError(f"the {what}'s header is damaged (digest flag {hash_appended}); "
                         + hint(chip))
    pos, check, app = off + 24, CHECKSUM_SEED, None
    for i in range(nseg):
        if pos + 8 > len(data):
            raise _truncated(what, i, nseg, pos, len(data), chip)
        _load, length = struct.unpack_from("<II", data, pos)
        if pos + 8 + length > len(data):
            raise _truncated(what, i, nseg, pos + 8 + length, len(data), chip)
        seg = data[pos + 8:pos + 8 + length]
        if i == 0 and length >= 80 and struct.unpack_from("<I", seg)[0] == APP_DESC_MAGIC:
            version = seg[16:48].split(b"\0")[0].decode("ascii", "replace")
            project = seg[48:80].split(b"\0")[0].decode("ascii", "replace")
            app = f"{project} {version}".strip()
        for b in seg:
            check ^= b
        pos += 8 + length
    pos += 15 - (pos - off) % 16  # the checksum is the last byte of a 16-byte block
    if pos >= len(data):
        raise _truncated(what, nseg, nseg, pos + 1, len(data), chip)
    if data[pos] != check:
        raise ImageError(f"the {what} is corrupt: its checksum byte is {data[pos]:#04x} but "
                         f"its contents give {check:#04x}; " + hint(chip))
    end = pos + 1
    if hash_appended:
        if end + 32 > len(data):
            raise _truncated(what, nseg, nseg, end + 32, len(data), chip)
        if hashlib.sha256(data[off:end]).digest() != data[end:end + 32]:
            raise ImageError(f"the {what} is corrupt: its SHA-256 does not match its contents; "
                             + hint(chip))
        end += 32
    size_code = size_freq >> 4
    return Image(off, end - off, nseg, chip_id, MB << size_code if size_code < 8 else None,
                 bool(hash_appended), app)


def _merged(data: bytes, chip: str, layout: Layout) -> None:
    """After a bootloader: the partition table and the application images it names, for as
    far as the file reaches."""
    table_at = PARTITION_TABLE - layout.address
    if len(data) <= table_at:
        layout.notes.append("this file holds a bootloader only (no partition table, no "
                            "MicroPython): the board will not start MicroPython with it")
        return
    parts = partitions(data[table_at:table_at + 0xC00], chip)
    apps = [(o, s, n) for t, o, s, n in parts if t == 0]
    if not apps:
        raise ImageError("the partition table names no application: " + hint(chip))
    for offset, _size, label in apps:
        at = offset - layout.address
        if at >= len(data):
            continue  # an OTA slot the file does not cover (empty until an update)
        if data[at] == 0xFF and not data[at:at + 24].strip(b"\xff"):
            continue  # an empty slot
        layout.images.append(read_image(data, at, chip, f"application image ({label} at "
                                                       f"{offset:#x})"))
    if len(layout.images) == 1:
        raise ImageError("the file has a bootloader and a partition table but no application "
                         "(MicroPython) where the table says: it is cut short; " + hint(chip))


def partitions(table: bytes, chip: str) -> list[tuple[int, int, int, str]]:
    """(type, offset, size, label) of each entry of an ESP-IDF partition table."""
    out = []
    for i in range(0, len(table) - 31, 32):
        entry = table[i:i + 32]
        if entry[:2] == PARTITION_MAGIC:
            ptype, _sub, offset, size = struct.unpack_from("<BBII", entry, 2)
            label = entry[12:28].split(b"\0")[0].decode("ascii", "replace")
            out.append((ptype, offset, size, label))
        elif entry[:2] == PARTITION_MD5_MAGIC or entry == b"\xff" * 32:
            break
        else:
            break
    if not out:
        raise ImageError(f"no partition table at {PARTITION_TABLE:#x} after the bootloader "
                         f"(got {table[:2].hex() or 'nothing'}): the file is damaged; "
                         + hint(chip))
    return out


def _truncated(what: str, i: int, n: int, need: int, have: int, chip: str) -> ImageError:
    where = f"segment {i + 1} of {n}" if i < n else "its checksum"
    return ImageError(f"the {what} is truncated: {where} needs the file to reach {need} bytes "
                      f"but it stops at {have}: the download was cut; " + hint(chip))


def _what(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<")):
        return f"{len(data)} bytes of a web page (HTML), saved instead of the file"
    if head.startswith((b"{", b"[")):
        return f"{len(data)} bytes of JSON, an error from the download site"
    if data[:2] == b"PK":
        return "a ZIP archive: unpack it and flash the .bin inside"
    if data[:2] == b"\x1f\x8b":
        return "a gzip archive: unpack it and flash the .bin inside"
    if data[:4] == b"UF2\n":
        return "a UF2 file, for drag-and-drop boards, not for esptool"
    if data[:4] == b"\x7fELF":
        return "an ELF file: flash the .bin built from it"
    return f"first byte {data[0]:#04x}, an ESP image starts with 0xe9"
