"""Flash a MicroPython image onto the reader's ESP32 through esptool's Python API.

    result = flash_image("/dev/ttyUSB0", "ESP32_GENERIC-v1.27.0.bin")

Before anything touches the board: check the file (tools.field.espimage: an ESP image for this
chip, whole, its checksum and SHA-256 right, at the address its bootloader needs, on a 4 KiB
sector) and check that the board is not a box in service holding clock-ins not yet sent
(tools.field.inservice; `force` overrides and says how many are lost). Then open the port
(tools.field.ports), detect the chip, upload esptool's flasher stub (or stay in the ROM with
stub=False), read the flash size from the chip and check the image fits, erase, write with a
progress callback, check the MD5 of what the flash holds, reset. Every failure becomes one
FlashError saying what happened and what to do; anything refused is refused before the erase.
A half-written flash is repaired by running the same command again (it erases and rewrites).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import serial
from esp_pylib.logger import EspLog, EspLogBase
from esptool import cmds
from esptool.util import FatalError, NotImplementedInROMError, flash_size_bytes

from tools.errors import TelegestError
from tools.field.espimage import BOOTLOADER_ADDRESS, CHIP_NAMES, ImageError, check_board, \
    check_image
from tools.field.inservice import guard_erase, probe
from tools.field.ports import open_port

MICROPYTHON_ADDRESS = BOOTLOADER_ADDRESS
CHIPS = CHIP_NAMES
ROM_BAUD = 115200  # esptool meets the ROM at this speed, then changes to --baud
BOOT_MODE_HELP = ("put it in download mode: hold BOOT, tap EN (RST), release BOOT, then run "
                  "again (no BOOT button: hold GPIO0 to GND while tapping EN)")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


class FlashError(TelegestError):
    pass


@dataclass
class FlashResult:
    chip: str
    description: str
    mac: str
    address: int
    size: int
    md5: str
    erased: bool
    notes: list[str] = field(default_factory=list)


class _EsptoolLog(EspLogBase):
    """esptool's messages into a list (shown with --verbose); its progress bars to ours."""

    def __init__(self, progress: Progress | None, echo: Callable[[str], None] | None):
        self.lines: list[str] = []
        self.on_progress = progress
        self.echo = echo
        self.where = ""

    def print(self, *args, **kwargs):
        text = " ".join(str(a) for a in args)
        if text.strip():
            self.lines.append(text)
            if self.echo:
                self.echo(text)

    def note(self, *args):
        self.print("note:", *args)

    def hint(self, *args):
        self.print("hint:", *args)

    def debug(self, *args):
        pass

    def warn(self, *args, suggestion=None):
        self.print("warning:", *args)

    def err(self, *args, suggestion=None):
        self.print("error:", *args)

    warning, error = warn, err

    def stage(self, finish=False):
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
        self.where = prefix.strip()
        if self.on_progress:
            self.on_progress("write", cur_iter, total_iters)

    def set_verbosity(self, mode):
        pass


def flash_image(url: str, image: str | Path | bytes, *, chip: str = "esp32",
                address: int | None = None, baud: int = 115200, before: str = "default-reset",
                stub: bool = True, erase: bool = True, connect_attempts: int = 7,
                force: bool = False, check_box: bool = True,
                progress: Progress | None = None,
                echo: Callable[[str], None] | None = None) -> FlashResult:
    """Write `image` (a path or bytes) at `address` (MicroPython's offset for `chip` by
    default) and verify it. Raises FlashError (InServiceError for a box holding unsent
    clock-ins, unless `force`)."""
    data = _read_image(image)
    if chip not in CHIPS:
        raise FlashError(f"unknown chip {chip!r}: choose one of {', '.join(CHIPS)}")
    address = MICROPYTHON_ADDRESS[chip] if address is None else address
    try:
        layout = check_image(data, chip, address)
    except ImageError as e:
        raise FlashError(f"{e}. Nothing was written") from None
    notes = list(layout.notes)
    if check_box:  # before esptool resets the chip into its bootloader
        if progress:
            progress("check box", 0, 1)
        notes += guard_erase(probe(url), url, force)
        if progress:
            progress("check box", 1, 1)
    elog = _EsptoolLog(progress, echo)
    port = open_port(url, min(baud, ROM_BAUD), timeout=1.0)
    saved = EspLog.instance
    EspLog.set_logger(elog)
    phase = "connect"
    try:
        if progress:
            progress("connect", 0, 1)
        esp = cmds.detect_chip(port, min(baud, ROM_BAUD), connect_mode=before,
                               connect_attempts=connect_attempts)
        if esp.CHIP_NAME != CHIPS[chip]:
            raise FlashError(
                f"the board on {url} is an {esp.CHIP_NAME}, not an {CHIPS[chip]}: the telegest "
                f"reader needs an {CHIPS[chip]} board (see docs/hardware.md), or pass "
                "--chip for the chip it has")
        result = FlashResult(CHIPS[chip], esp.get_chip_description(),
                             ":".join(f"{b:02x}" for b in esp.read_mac()), address, len(data),
                             hashlib.md5(data).hexdigest(), False, notes)
        phase = "stub"
        if stub:
            esp = cmds.run_stub(esp)
        if baud > ROM_BAUD:
            esp.change_baud(baud)
        cmds.attach_flash(esp)
        phase = "flash size"
        size = cmds.detect_flash_size(esp)
        try:
            result.notes += check_board(layout, chip, flash_size_bytes(size) if size else None)
        except ImageError as e:
            raise FlashError(f"{e}. Nothing was erased or written") from None
        phase = "erase"
        if erase and esp.IS_STUB:
            if progress:
                progress("erase", 0, 1)
            cmds.erase_flash(esp)
            result.erased = True
            if progress:
                progress("erase", 1, 1)
        elif erase:
            result.notes.append("the ROM bootloader cannot erase the whole flash (no stub): "
                                "only the region written was erased")
        phase = "write"
        cmds.write_flash(esp, [(address, data)], no_progress=progress is None)
        phase = "reset"
        if not _reset(esp, port):
            result.notes.append("this port cannot reset the board: tap EN (RST) to start "
                                "MicroPython")
        return result
    except FlashError:
        raise
    except (FatalError, NotImplementedInROMError, serial.SerialException, OSError) as e:
        raise FlashError(_explain(phase, url, e, elog, len(data), address,
                                  erased=phase == "write" or (phase == "erase" and stub))) from e
    finally:
        EspLog.instance = saved
        try:
            port.close()
        except (OSError, serial.SerialException):
            pass


def _read_image(image: str | Path | bytes) -> bytes:
    if isinstance(image, bytes):
        data = image
    else:
        try:
            data = Path(image).read_bytes()
        except OSError as e:
            raise FlashError(f"cannot read the image {image}: {e.strerror}. Download the "
                             "MicroPython .bin for your board (docs/technician.md)") from e
    if not data:
        raise FlashError("the image is empty")
    return data


def _reset(esp, port) -> bool:
    """Hard reset through RTS, where the port has it (not over a TCP socket or a pty)."""
    if port.name.startswith(("socket:", "loop:", "/dev/pts/")):
        return False
    try:
        esp.hard_reset()
        return True
    except (OSError, serial.SerialException):
        return False


# The chip's own refusals (the ROM's and the stub's status codes, as esptool reports them
# "result was 01xx...": they are answers, so the cable works; say what the chip said.
CHIP_REFUSALS = {
    0x05: "it did not understand a command (a ROM too old for this esptool, or another chip)",
    0x06: "it refused the operation (an address past the end of its flash or off a 4 KiB "
          "sector)",
    0x07: "a block arrived damaged (noise on the line: a long or poor cable, or a baud rate "
          "too high for it; try --baud 115200)",
    0x08: "its flash chip reported a write error (the flash is write-protected or worn out: "
          "the board needs replacing)",
    0x09: "its flash chip reported a read error (faulty flash: the board needs replacing)",
    0x0B: "the compressed data did not decompress (noise on the line; try --baud 115200)",
    0xC4: "an SPI operation on its flash failed (faulty flash: the board needs replacing)",
    0xC5: "its flash could not be unlocked (write-protected flash)",
    0xC7: "the compressed data did not decompress (noise on the line; try --baud 115200)",
}


def _chip_refusal(e: BaseException) -> tuple[int, str] | None:
    import re

    m = re.search(r"result was ([0-9a-fA-F]{2})([0-9a-fA-F]{2})", str(e))
    if not m:
        return None
    code = int(m.group(2), 16)
    return code, CHIP_REFUSALS.get(code, f"it answered with error code {code:#04x}")


def _explain(phase: str, url: str, e: BaseException, elog: _EsptoolLog, size: int,
             address: int, erased: bool = False) -> str:
    text = str(e).split("\nFor troubleshooting")[0].strip()
    refusal = _chip_refusal(e) if phase in ("erase", "write") else None
    if refusal:
        code, why = refusal
        state = (f"The flash was erased: the board will not boot until a flash succeeds"
                 if erased else "Nothing was written")
        return (f"the chip refused the {phase} at {address:#x}: {why} (status {code:#04x}; "
                f"esptool: {text}). The cable is fine: the board answered. {state}")
    if phase == "connect" and ("disconnected" in text or "reset by peer" in text):
        return (f"{url} hung up at once: the serial server already has a client. Close the "
                "other program using it and run again")
    if phase == "connect":
        if "Wrong boot mode" in text:
            return f"the board on {url} is running its firmware, not its bootloader: " + \
                BOOT_MODE_HELP
        if "magic value" in text or "autodetect" in text:
            return f"the board on {url} answers but is no chip esptool knows ({text})"
        return (f"no ESP32 bootloader answers on {url} ({text}). Check the USB cable is a data "
                "cable and the baud rate (115200 works everywhere), then " + BOOT_MODE_HELP)
    if phase == "write":
        if "MD5" in text or "empty" in text:
            return (f"verification failed: the flash does not hold what was written ({text}). "
                    "Run flash again; if it fails again, the board's flash or its power "
                    "supply is faulty")
        where = f" ({elog.where})" if elog.where else ""
        return (f"the write stopped{where}: the board stopped answering ({text}). The flash is "
                f"half-written ({size} bytes at {address:#x}) and the board will not boot. "
                "Check the cable and the power, then run the same flash command again: it "
                "erases and rewrites everything")
    return f"{phase} failed on {url}: {text}. Run flash again; if it fails again, " + \
        BOOT_MODE_HELP
