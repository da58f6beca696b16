"""Flash a MicroPython image onto the reader's ESP32 through esptool's Python API.

    result = flash_image("/dev/ttyUSB0", "ESP32_GENERIC-v1.27.0.bin")

Open the port (tools.field.ports), detect the chip, upload esptool's flasher stub (or stay in
the ROM with stub=False), erase, write with a progress callback, check the MD5 of what the
flash holds, reset. Every failure becomes one FlashError saying what happened and what to do;
a half-written flash is repaired by running the same command again (it erases and rewrites).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import serial
from esp_pylib.logger import EspLog, EspLogBase
from esptool import cmds
from esptool.util import FatalError, NotImplementedInROMError

from tools.errors import TelegestError
from tools.field.ports import open_port

MICROPYTHON_ADDRESS = {"esp32": 0x1000, "esp32s3": 0x0}
CHIPS = {"esp32": "ESP32", "esp32s3": "ESP32-S3"}
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
                progress: Progress | None = None,
                echo: Callable[[str], None] | None = None) -> FlashResult:
    """Write `image` (a path or bytes) at `address` (MicroPython's offset for `chip` by
    default) and verify it. Raises FlashError."""
    data = _read_image(image)
    if chip not in CHIPS:
        raise FlashError(f"unknown chip {chip!r}: choose one of {', '.join(CHIPS)}")
    address = MICROPYTHON_ADDRESS[chip] if address is None else address
    elog = _EsptoolLog(progress, echo)
    port = open_port(url, baud, timeout=1.0)
    saved = EspLog.instance
    EspLog.set_logger(elog)
    phase = "connect"
    try:
        if progress:
            progress("connect", 0, 1)
        esp = cmds.detect_chip(port, baud, connect_mode=before,
                               connect_attempts=connect_attempts)
        if esp.CHIP_NAME != CHIPS[chip]:
            raise FlashError(
                f"the board on {url} is an {esp.CHIP_NAME}, not an {CHIPS[chip]}: the telegest "
                f"reader needs an {CHIPS[chip]} board (see docs/hardware.md), or pass "
                "--chip for the chip it has")
        result = FlashResult(CHIPS[chip], esp.get_chip_description(),
                             ":".join(f"{b:02x}" for b in esp.read_mac()), address, len(data),
                             hashlib.md5(data).hexdigest(), False)
        phase = "stub"
        if stub:
            esp = cmds.run_stub(esp)
        cmds.attach_flash(esp)
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
        raise FlashError(_explain(phase, url, e, elog, len(data), address)) from e
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
    if port.name.startswith(("socket:", "loop:")):
        return False
    try:
        esp.hard_reset()
        return True
    except (OSError, serial.SerialException):
        return False


def _explain(phase: str, url: str, e: BaseException, elog: _EsptoolLog, size: int,
             address: int) -> str:
    text = str(e).split("\nFor troubleshooting")[0].strip()
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
