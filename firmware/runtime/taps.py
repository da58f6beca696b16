"""The reader loop: poll the NFC reader, hand each new card to ReaderCore, show feedback.

`reader` is anything with read_uid() -> bytes or None (PN532Reader and RC522Reader adapt the
drivers).
A card left on the reader is one tap: its UID is ignored until it has been out of the field
for _GONE_MS. The last taps are kept in a small ring for the console's `taps` command.
"""
import binascii

from firmware.ticks import ticks_add, ticks_diff

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_GONE_MS = const(1500)
_RING = const(8)
_ERR_BACKOFF_MS = const(1000)  # after a reader error, before polling again


class PN532Reader:
    """read_uid() over firmware.drivers.pn532.PN532 (list_target), with a short timeout so the
    loop stays responsive; begin() on first use and after an error."""

    def __init__(self, pn532, timeout_ms=60):
        self.pn532 = pn532
        self.timeout_ms = timeout_ms
        self._ready = False

    def read_uid(self):
        if not self._ready:
            self.pn532.begin()
            self._ready = True
        try:
            return self.pn532.list_target(self.timeout_ms)
        except Exception:
            self._ready = False  # wake and configure again next time
            raise

    def read_sun(self):
        """The SUN URL of the card just listed when it is an NTAG 424 DNA (ISO 14443-4),
        else None; a failed read is None too: the tap still counts, by its UID."""
        if not getattr(self.pn532, "sel_res", 0) & 0x20:
            return None
        from firmware.drivers.ntag424 import read_url
        try:
            url = read_url(self.pn532.apdu)
        except Exception:
            return None
        return url if "picc_data=" in url else None

    def version(self):
        ic, ver, rev, support = self.pn532.get_firmware_version()
        return "PN5%02x v%d.%d" % (ic, ver, rev)


class RC522Reader:
    """read_uid() over firmware.drivers.rc522.RC522 (MFRC522, WS1850S): reset() on first use
    and after an error; list_target() is bounded by the chip's 25 ms tag timer."""

    def __init__(self, rc522):
        self.rc522 = rc522
        self._ready = False

    def read_uid(self):
        if not self._ready:
            self.rc522.reset()
            self._ready = True
        try:
            return self.rc522.list_target()
        except Exception:
            self._ready = False  # reset the chip again next time
            raise

    def version(self):
        from firmware.drivers.rc522 import chip_name
        return chip_name(self.rc522.version())


class TapLoop:
    def __init__(self, reader, core, feedback):
        self.reader = reader
        self.core = core
        self.feedback = feedback
        self.status = "ok"  # "ok", or the last reader error word, for health and status
        self.errors = 0
        self.taps = 0
        self.last_error = ""
        self._last_uid = None
        self._last_seen = 0
        self._pause = None
        self._ring = [None] * _RING  # (ts, uid hex, feedback), preallocated
        self._n = 0

    def poll(self, now):
        """One read; returns the feedback kind when a new card was tapped, else None."""
        if self._pause is not None:
            if ticks_diff(now, self._pause) < 0:
                return None
            self._pause = None
        try:
            uid = self.reader.read_uid()
        except Exception as e:
            self.errors += 1
            self.status = "error"
            self.last_error = "%s: %s" % (type(e).__name__, e)
            self._pause = ticks_add(now, _ERR_BACKOFF_MS)
            return None
        self.status = "ok"
        if not uid:
            return None
        if uid == self._last_uid and ticks_diff(now, self._last_seen) < _GONE_MS:
            self._last_seen = now  # still on the reader
            return None
        self._last_uid, self._last_seen = uid, now
        sun = getattr(self.reader, "read_sun", None)
        tag = sun() if sun else None  # an NTAG 424 card's fresh SUN URL, for the fleet
        # decided and journaled before any feedback
        fb = self.core.tap(uid, tag=tag) if tag else self.core.tap(uid)
        self.feedback.show(fb, now)
        self.taps += 1
        self._ring[self._n % _RING] = (int(self.core.clock.time()),
                                       binascii.hexlify(uid).decode().upper(), fb)
        self._n += 1
        return fb

    def last(self):
        """The last taps, oldest first."""
        out = []
        for i in range(max(0, self._n - _RING), self._n):
            out.append(self._ring[i % _RING])
        return out
