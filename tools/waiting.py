"""Waits that say what they wait for: a technician at a box sees, every 2 s, what the command
is doing, for how long, and which attempt it is on (on stderr; not only with -v)."""
from __future__ import annotations

import sys
import threading
import time

SAY_AFTER, SAY_EVERY = 2.0, 2.0  # seconds: a shorter wait is not worth a line


class Waiting:
    """A wait that says what it waits for: nothing under 2 s, then a line on stderr every 2 s
    (redrawn in place on a terminal) with the time spent and the limit, until stop()."""

    def __init__(self, what: str, limit: float | None = None, stream=None):
        self.what, self.limit = what, limit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.shown = False

    def __enter__(self) -> Waiting:
        self.start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join()
            if self.shown and self.tty:
                self.stream.write("\n")
                self.stream.flush()

    def _run(self) -> None:
        if self._stop.wait(SAY_AFTER):
            return
        while not self._stop.is_set():
            spent = time.monotonic() - self.start
            limit = f" of {self.limit:g} s" if self.limit else ""
            self.say(f"{self.what}... {spent:.0f} s{limit}")
            self._stop.wait(SAY_EVERY)

    def say(self, line: str) -> None:
        self.shown = True
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()


class Attempts:
    """Which connection attempt esptool is on, from its log: each attempt resets the board and
    tries to sync up to five times, printing one dot per failed sync."""

    def __init__(self, what: str, total: int, stream=None):
        self.what, self.total = what, total
        self.stream = stream or sys.stderr
        self.dots, self.shown = 0, 0

    def esptool_line(self, line: str) -> None:
        if line.strip() != ".":
            return
        self.dots += 1
        attempt = min(self.dots // 5 + 1, self.total) if self.total else self.dots // 5 + 1
        if attempt > self.shown and self.dots % 5 == 0:
            self.shown = attempt
            of = f" of {self.total}" if self.total else ""
            self.stream.write(f"{self.what}: attempt {attempt}{of} (put the board in download "
                              "mode if it does not answer: hold BOOT, tap EN)\n")
            self.stream.flush()
