"""The reader's technician console over a serial port: send one command line, get one answer
line (a JSON object, `ok` or `error: <reason>`); lines starting with "# " are the firmware's
log and are kept apart. The protocol is docs/firmware.md ("The technician console").

    with ReaderConsole("/dev/ttyUSB0") as c:
        print(c.command("status")["wifi"])
"""
from __future__ import annotations

import json
import threading
import time
from typing import IO, Any

import serial

from tools.errors import TelegestError
from tools.field.ports import open_port

# What an ESP32 prints while it restarts (ROM bootloader, ESP-IDF, MicroPython): never an
# answer, even when a command's answer is awaited across a reboot (provision does).
BOOT_LINES = ("ets ", "rst:", "configsip:", "clk_drv:", "mode:", "load:", "entry 0x", "I (",
              "W (", "E (", "MPY: soft reboot")
REPL_SIGNS = (b">>> ", b"raw REPL", b"Traceback (most recent call last)", b"MicroPython v")


class ConsoleError(TelegestError):
    pass


class ReaderConsole:
    def __init__(self, url: str, baud: int = 115200, timeout: float = 3.0):
        self.url, self.timeout = url, timeout
        self.port = open_port(url, baud, timeout=0.05)
        self.log: list[str] = []
        self._buf = b""

    def __enter__(self) -> ReaderConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.port.close()

    def ask(self, line: str) -> str:
        """The raw answer line to one command line."""
        line = line.strip()
        if not line:
            raise ConsoleError("empty command (try help)")
        try:
            self.port.reset_input_buffer()
            self.port.write(line.encode() + b"\r\n")
            return self._answer(line)
        except (serial.SerialException, OSError) as e:
            raise ConsoleError(f"lost the serial link to the reader on {self.url}: {e}. "
                               "Check the cable and run again") from e

    def command(self, line: str) -> dict[str, Any] | str:
        """A parsed answer: a dict, or "ok"; ConsoleError for `error: ...`."""
        ans = self.ask(line)
        shown = _shown(line)
        if ans.startswith("error: "):
            raise ConsoleError(f"the reader refused `{shown}`: {ans[7:]}")
        if ans.startswith("{"):
            try:
                return json.loads(ans)
            except ValueError:
                raise ConsoleError(f"garbled answer to `{shown}`: {ans!r} (noise on the "
                                   "line? check the baud rate, 115200)") from None
        return ans

    def _answer(self, sent: str) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            chunk = self.port.read(self.port.in_waiting or 1)
            self._buf += chunk
            if any(s in self._buf for s in REPL_SIGNS):
                raise ConsoleError(
                    f"the board on {self.url} is at the MicroPython prompt, not running the "
                    "telegest firmware: deploy it (`telegest device deploy`) and tap EN (RST), "
                    "or look at the boot messages with `console --raw`")
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").strip("\r")
                if not text.strip() or text.strip() == sent:  # empty line, or an echo
                    continue
                if text.startswith("# ") or text.startswith(BOOT_LINES):
                    self.log.append(text)  # a log line, or the box restarting (reboot)
                    continue
                return text
        raise ConsoleError(
            f"no answer from the reader on {self.url} within {self.timeout:g} s: is the "
            "firmware running (tap EN to restart it), is this the reader's port, is the baud "
            "rate 115200? `console --raw` shows what the board prints")


def _shown(line: str) -> str:
    """A command line as an error may quote it: the values of `wifi set`, `broker set` and
    `settings` (passwords) are left out."""
    words = line.split()
    if words and words[0].lower() in ("wifi", "broker", "settings") and len(words) > 2:
        return " ".join(words[:2]) + " …"
    return line


def pretty(answer: dict[str, Any] | str) -> str:
    if isinstance(answer, dict):
        return json.dumps(answer, indent=2, ensure_ascii=False)
    return answer


def passthrough(url: str, inp: IO[str], out: IO[str], baud: int = 115200,
                linger: float = 1.0) -> None:
    """Raw mode: every line typed goes to the board, every byte the board prints comes out
    as it is (log lines, boot messages, the REPL). Ctrl-] or the end of input stops."""
    port = open_port(url, baud, timeout=0.05)
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError):
                return
            if data:
                out.write(data.decode("utf-8", "replace"))
                out.flush()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        for line in inp:
            if "\x1d" in line:
                break
            port.write(line.rstrip("\r\n").encode() + b"\r\n")
        time.sleep(linger)
    finally:
        stop.set()
        t.join(timeout=2)
        port.close()
