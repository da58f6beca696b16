"""Maintenance mode of the serial console: what opens it, and when it closes.

A box with no maintenance key (`mkey` setting: never provisioned by a fleet that issues codes)
has an open console, as in the factory. Once it has one, the console is locked: status only,
until `maint <code>` with a code the fleet issued for this box (firmware/maintcode.py). The
box checks the code offline against its own clock, so a box whose clock is `unsynced` (no NTP
since boot and no battery RTC) refuses every code: join it to Wi-Fi first. A code opens
maintenance once: the box remembers used codes until they expire, on flash (`<settings
path>.used`), so a reboot does not make a used code good again. Maintenance ends at `exit`,
at a reboot, when the code expires, or 30 minutes after it began (by the box's tick counter,
so a clock set back does not stretch it), whichever comes first (also when a settings commit
gave an open console its first key: the provisioning goes on). Five wrong codes in a row lock
the command out for a minute.

The MicroPython REPL shares the USB port and reads the whole flash, so Ctrl-C reaches it only
while repl_allowed(): on a box without a key, or in maintenance mode after the console's `repl`
command (`telegest device deploy` sends it); Runtime.console_step sets the interrupt character
(micropython.kbd_intr) to match, and firmware/boot.py and firmware/main.py shut it at start.
"""
import json

from firmware import maintcode
from firmware.ticks import due, ticks_add, ticks_diff

_SESSION_MS = maintcode.TTL_MIN * 60 * 1000
_LOCKOUT_MS = 60 * 1000
_MAX_BAD = 5
_MAX_USED = 16


class Maintenance:
    def __init__(self, rt):
        self.rt = rt  # settings, clock, device_id
        self._until = None  # (clock seconds, tick ms) when maintenance ends; None: not on
        self._used = None  # [expiry s, nonce] of the codes used, until they expire
        self._bad = 0
        self._locked_until = None  # tick when `maint` is accepted again
        self.opened = 0
        self.refused = 0
        self.repl = False  # `repl` asked in this maintenance session

    def key(self):
        k = self.rt.settings.get("mkey")
        return bytes.fromhex(k) if k else None

    def state(self, now_ms):
        """open (no key) | maintenance | locked."""
        if self.key() is None:
            return "open"
        return "maintenance" if self.active(now_ms) else "locked"

    def active(self, now_ms):
        if self._until is None:
            return False
        exp_s, end_ms = self._until
        if (exp_s is not None and self.rt.clock.time() >= exp_s) \
                or ticks_diff(end_ms, now_ms) <= 0:
            self._until = None
            return False
        return True

    def repl_allowed(self, now_ms):
        """Whether Ctrl-C may break into the REPL now."""
        if not self.rt.settings.get("mkey"):
            return True
        if not self.active(now_ms):
            self.repl = False
            return False
        return self.repl

    def allows(self, now_ms):
        return self.key() is None or self.active(now_ms)

    def enter(self, code, now_ms):
        """Starts maintenance with `code`, or raises ValueError with the reason."""
        key = self.key()
        if key is None:
            raise ValueError("this box has no maintenance key: its console is open")
        if self._locked_until is not None and not due(now_ms, self._locked_until):
            self.refused += 1
            raise ValueError("too many wrong codes: wait a minute")
        clock = self.rt.clock
        if clock.quality() == "unsynced":
            self.refused += 1
            raise ValueError("the box's clock is unsynced, so it cannot tell whether a code "
                             "expired: join it to Wi-Fi (it takes the time from NTP) and retry")
        now_s = int(clock.time())
        used = [u for u in self._load() if u[0] > now_s]
        try:
            exp_s, nonce = maintcode.check(key, self.rt.device_id, code, now_s)
        except ValueError:
            self.refused += 1
            self._bad += 1
            if self._bad >= _MAX_BAD:
                self._bad = 0
                self._locked_until = ticks_add(now_ms, _LOCKOUT_MS)
            raise
        if [exp_s, nonce] in used:
            self.refused += 1
            raise ValueError("this maintenance code was already used: ask the fleet for a "
                             "new one")
        self._used = (used + [[exp_s, nonce]])[-_MAX_USED:]
        self._save()
        self._bad = 0
        self._until = (exp_s, ticks_add(now_ms, _SESSION_MS))
        self.opened += 1
        return {"maintenance": True, "until": exp_s,
                "minutes": min((exp_s - now_s) // 60, maintcode.TTL_MIN)}

    def _path(self):
        return self.rt.settings.path + ".used"

    def _load(self):
        if self._used is None:
            try:
                with open(self._path()) as f:
                    self._used = [[int(u[0]), int(u[1])] for u in json.load(f)]
            except Exception:  # none yet, or unreadable: nothing remembered
                self._used = []
        return self._used

    def _save(self):
        from firmware.runtime.settings import _write
        try:
            _write(self._path(), json.dumps(self._used))
        except OSError:  # a full flash: remembered until the next reboot only
            pass

    def grant(self, now_ms):
        """An open console that just received its first key stays open for this session (the
        provisioning that gave the key goes on: commit, reboot, checks)."""
        self._until = (None, ticks_add(now_ms, _SESSION_MS))

    def exit(self):
        self._until = None
        self.repl = False
