"""Is the board on this port a reader box in service, holding clock-ins not yet sent?

    box = probe("/dev/ttyUSB0")
    notes = guard_erase(box, "/dev/ttyUSB0", force=False)   # InServiceError if it would lose any

A box running the telegest firmware answers the technician console (docs/firmware.md): its
`journal` command gives `depth`, the clock-ins written on flash and not yet acked by the fleet.
A box whose firmware is stopped (at the MicroPython prompt) still keeps its journal on flash:
the raw REPL opens it with the firmware's own Journal class. Flashing erases the whole flash,
so those clock-ins would be lost; deploy keeps them (it touches /lib/firmware and the entry
points only).
"""
from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from tools.errors import TelegestError
from tools.field.console import ConsoleError, ReaderConsole

CONSOLE_BAUD = 115200  # the firmware's console (MicroPython's REPL UART), whatever --baud says
JOURNAL_PATH = "/journal"  # firmware/runtime/app.py's default
_JOURNAL_SCRIPT = f"""
import os
fw = 0
for p in ('/lib/firmware/journal.mpy', '/lib/firmware/journal.py'):
    try:
        os.stat(p)
        fw = 1
    except OSError:
        pass
print('firmware', fw)
if fw:
    try:
        os.stat({JOURNAL_PATH!r})
    except OSError:
        print('depth', 0)
    else:
        try:
            from firmware.journal import Journal
            print('depth', Journal({JOURNAL_PATH!r}).depth)
        except Exception as e:
            print('error', repr(e))
"""


class InServiceError(TelegestError):
    pass


@dataclass
class Box:
    runs: str  # "telegest": our firmware (running or stopped); "micropython"; "unknown"
    unsent: int | None = None  # clock-ins not yet acked by the fleet; None: cannot tell
    how: str = ""  # "console", "raw REPL"

    @property
    def in_service(self) -> bool:
        return self.runs == "telegest"


def probe(url: str, timeout: float = 1.0) -> Box:
    """Ask the board on `url` what it runs. Never writes anything but a `journal` command
    (which a ROM bootloader ignores) and, at a MicroPython prompt, a read-only script."""
    try:
        with ReaderConsole(url, CONSOLE_BAUD, timeout) as c:
            c.port.write(b"\r\n")  # end whatever half line an earlier program left
            time.sleep(0.1)
            answer = c.command("journal")
    except ConsoleError as e:
        text = str(e)
        if "safe mode" in text:  # our console, but the journal is not open
            return Box("telegest", None, "console")
        # a MicroPython prompt, or silence: a ROM bootloader, or a board left in raw REPL
        return _probe_repl(url, 3.0 if "MicroPython prompt" in text else 1.5)
    if isinstance(answer, dict) and isinstance(answer.get("depth"), int):
        return Box("telegest", answer["depth"], "console")
    return Box("unknown")


def _probe_repl(url: str, timeout: float) -> Box:
    try:
        t = SerialTransport(url, baudrate=CONSOLE_BAUD)
    except (TransportError, serial.SerialException, OSError, ValueError):
        return Box("unknown")
    t.serial.timeout = 0.2  # mpremote reads a pty with a blocking read(1): bound it
    out = ""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
        out = t.exec(_JOURNAL_SCRIPT).decode(errors="replace")
    except (TransportError, serial.SerialException, OSError):
        return Box("unknown")
    finally:
        with contextlib.suppress(TransportError, serial.SerialException, OSError):
            t.exit_raw_repl()
            if "firmware 1" in out:  # Ctrl-C may have stopped it: start it again
                t.serial.write(b"\x04")
        with contextlib.suppress(serial.SerialException, OSError):
            t.close()
    words = dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())
    if words.get("firmware", "").strip() != "1":
        return Box("micropython", 0, "raw REPL") if "firmware" in words else Box("unknown")
    depth = words.get("depth", "").strip()
    return Box("telegest", int(depth) if depth.isascii() and depth.isdigit() else None, "raw REPL")


def lost(box: Box) -> str:
    if box.unsent is None:
        why = ("the box is in safe mode: its journal is closed" if box.how == "console" else
               "its journal could not be read")
        return f"an unknown number of clock-ins ({why})"
    return f"{box.unsent} clock-in{'s' if box.unsent != 1 else ''}"


def guard_erase(box: Box, url: str, force: bool) -> list[str]:
    """Refuse to erase a box holding unsent clock-ins unless `force`; notes to print."""
    if not box.in_service:
        return []
    if box.unsent == 0:
        return ["the box had the telegest firmware; its journal was empty (every clock-in "
                "had reached the fleet)"]
    if not force:
        raise InServiceError(
            f"the box on {url} runs the telegest firmware and holds {lost(box)} not yet sent "
            "to the fleet: flashing erases the whole flash, journal included, so they would "
            "be lost. Let it reach the broker first (`telegest device console "
            f"{url} journal` shows depth 0 once all are sent); to update its firmware use "
            "`telegest device deploy`, which keeps the journal; or pass --force to flash "
            "anyway and lose them")
    return [f"--force: {lost(box)} not yet sent to the fleet were erased with the old "
            "firmware"]
