"""Periodic health reports (up/health): free heap, RSSI, battery, reader status."""
import gc

from firmware.ticks import due, ticks_add


def mem_free():
    """Free heap in bytes (gc.mem_free on MicroPython; 0 on CPython, which has no such heap)."""
    f = getattr(gc, "mem_free", None)
    return f() if f is not None else 0


class Battery:
    """Battery percent from an ADC behind a resistor divider. `adc` has read_uv() (microvolts
    at the pin, machine.ADC); `ratio` is the divider's (R1 + R2) / R2; percent is linear from
    `empty_mv` to `full_mv` (a Li-ion cell: 3300 to 4150 under a light load)."""

    def __init__(self, adc, ratio=2.0, empty_mv=3300, full_mv=4150):
        self.adc = adc
        self.ratio = ratio
        self.empty_mv = empty_mv
        self.full_mv = full_mv

    def millivolts(self):
        return int(self.adc.read_uv() * self.ratio / 1000)

    def percent(self):
        try:
            mv = self.millivolts()
        except Exception:
            return None
        p = (mv - self.empty_mv) * 100 // (self.full_mv - self.empty_mv)
        return 0 if p < 0 else 100 if p > 100 else p


class HealthReporter:
    def __init__(self, core, link, wifi, taps, battery=None, period_s=60):
        self.core = core
        self.link = link
        self.wifi = wifi
        self.taps = taps  # TapLoop or None (safe mode): its status is the reader's
        self.battery = battery
        self.period_ms = period_s * 1000
        self._next = None
        self.sent = 0

    def report(self, up_s):
        """The health message now: (topic, payload, qos)."""
        gc.collect()
        bat = self.battery.percent() if self.battery is not None else None
        rd = self.taps.status if self.taps is not None else "off"
        return self.core.health(int(self.core.clock.time()), up_s, mem_free(),
                                self.wifi.rssi(), bat, rd)

    def poll(self, now, up_s):
        if not due(now, self._next):
            return
        self._next = ticks_add(now, self.period_ms)
        self.link.send_health(self.report(up_s))
        self.sent += 1
