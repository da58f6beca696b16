"""The hardware watchdog, fed only while every task of the main loop is alive.

Each task calls beat(i) once per pass; poll() feeds the WDT only when every task has beaten
within `stall_ms`. A task that died (its exception escaped) or hangs stops the feeding, and
the WDT resets the box: the journal is on flash, so a reset loses no event.
"""
from firmware.ticks import ticks_diff


class Watchdog:
    def __init__(self, wdt, tasks, stall_ms=20000):
        self.wdt = wdt  # machine.WDT(timeout=...) or None (no hardware watchdog)
        self.names = tasks
        self.stall_ms = stall_ms
        self._beats = [None] * len(tasks)
        self.fed = 0
        self.starved = 0  # polls that did not feed
        self.stalled = ""  # name of the first task found late

    def beat(self, i, now):
        self._beats[i] = now

    def healthy(self, now):
        for i in range(len(self._beats)):
            b = self._beats[i]
            if b is None or ticks_diff(now, b) > self.stall_ms:
                self.stalled = self.names[i]
                return False
        self.stalled = ""
        return True

    def poll(self, now):
        if self.healthy(now):
            if self.wdt is not None:
                self.wdt.feed()
            self.fed += 1
            return True
        self.starved += 1
        return False
