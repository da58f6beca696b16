"""Simulated hardware around the firmware's logic: a clock and the LED/buzzer feedback.

The NFC reader itself is simulated by calling `VirtualReader.tap(uid)`: the firmware's decision
and journal code run exactly as on the box. A wire-level PN532 simulator lives with the drivers.
"""
from __future__ import annotations

import threading
import time
from collections import deque

# what the box shows for each decision (the firmware issue defines the real patterns)
FEEDBACK_PATTERNS = {
    "in": "green long, one beep",
    "out": "green long, two beeps",
    "unplanned_in": "amber, one beep",
    "unplanned_out": "amber, two beeps",
    "unknown": "red, long buzz",
    "repeat": "green short",
    "full": "red blinking, three buzzes",
    "error": "red short, one buzz (card not read: tap again)",
}


class SimClock:
    """The device clock: host time plus an offset, with a settable time quality."""

    def __init__(self, offset_s: int = 0, quality: str = "synced") -> None:
        self.offset_s = offset_s
        self._quality = quality

    def time(self) -> int:
        return int(time.time()) + self.offset_s

    def quality(self) -> str:
        return self._quality


class SimFeedback:
    """LED and buzzer: remembers the last patterns shown, bounded like the device's log."""

    def __init__(self, size: int = 256) -> None:
        self.shown: deque[tuple[float, str]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def show(self, kind: str) -> None:
        with self._lock:
            self.shown.append((time.time(), kind))

    def last(self) -> str | None:
        with self._lock:
            return self.shown[-1][1] if self.shown else None
