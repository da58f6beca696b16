"""The device clock and its quality: "synced" (NTP since boot), "rtc" (battery RTC only),
"unsynced" (neither: the time counts from whatever the chip started with).

`systime` has time() -> Unix seconds and set(t) (on the box: machine.RTC plus the epoch
offset, see main.py); `ntp` has time() -> Unix seconds or raises OSError (ntptime); `rtc` is
a DS3231 or None. ReaderCore tags every event with quality().
"""
from firmware.ticks import due, ticks_add

_RESYNC_MS = 6 * 3600 * 1000  # drift of an ESP32's RTC: a few seconds a day
_RETRY_MS = 60 * 1000


class Clock:
    def __init__(self, systime, ntp=None, rtc=None):
        self.systime = systime
        self.ntp = ntp
        self.rtc = rtc
        self._quality = "unsynced"
        self._next = None  # tick of the next NTP attempt; None: as soon as online
        self.ntp_ok = 0
        self.ntp_errors = 0
        self.rtc_errors = 0
        self.offset = None  # last NTP correction applied, seconds

    def start(self):
        """At boot: take the time from the RTC when it kept it."""
        if self.rtc is None:
            return
        try:
            t = self.rtc.time()
        except OSError:  # RTC absent or I2C error
            self.rtc_errors += 1
            return
        if t is not None:
            self.systime.set(t)
            self._quality = "rtc"

    def time(self):
        return self.systime.time()

    def quality(self):
        return self._quality

    def poll(self, now, online):
        """Sync from NTP when online and due. Blocks for at most the NTP socket timeout."""
        if not online or self.ntp is None or not due(now, self._next):
            return
        try:
            t = self.ntp.time()
        except Exception:  # OSError, or a bad or short answer
            self.ntp_errors += 1
            self._next = ticks_add(now, _RETRY_MS)
            return
        self.offset = t - self.systime.time()
        self.systime.set(t)
        self._quality = "synced"
        self.ntp_ok += 1
        self._next = ticks_add(now, _RESYNC_MS)
        if self.rtc is not None:
            try:
                self.rtc.set_time(t)
            except (OSError, ValueError):
                self.rtc_errors += 1
