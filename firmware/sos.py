"""The reader box's SOS button: a long press raises an SOS, kept until the fleet stores it.

    up/sos     {"id": "<12 hex>", "ts": <unix s>, "tq": "synced"|"unsynced"}   QoS 1
    down/sos   {"id": "<the same>"}   the fleet has stored it (docs/protocol.md, "SOS")

`press(pressed, now_ms)` is called with the button's state at every reader step: held down
`hold_ms` (3 s) without a release, it raises one SOS (held longer raises no second one). A
button is heeded only once it was seen released: one stuck or wired to GND from the start (or
a pin that reads low with nothing on it) raises nothing. The
pending SOS is written to flash (`store`: the journal's side files) before anything else, sent
at once and again every `resend_s` and at each reconnect, until a `down/sos` with its id comes
back; the fleet stores an SOS once per (device, id), so a resend is never a second SOS. One
pending SOS at a time: a new long press while one waits is the same alarm.
"""
import json

from firmware.codec import topic
from firmware.ticks import ticks_diff

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_FILE = "sos.json"
_HOLD_MS = const(3000)
_RESEND_S = const(5)


class SosButton:
    def __init__(self, device_id, clock, rand, store=None, hold_ms=_HOLD_MS,
                 resend_s=_RESEND_S):
        self.clock = clock
        self.rand = rand  # rand(n) -> n random bytes
        self.store = store  # a Journal (write_meta / read_meta), or None
        self.hold_ms = hold_ms
        self.resend_s = resend_s
        self._up = topic(device_id, "up/sos")
        self._down = topic(device_id, "down/sos")
        self._down_at = None  # ticks when the current press began
        self._fired = False  # this press already raised its SOS
        self._armed = False  # seen released since the start
        self._due = None  # when to send the pending SOS again (unix s); None: now
        self.raised = 0
        self.stored = 0
        self.bad = 0
        self.pending = self._load()

    def _load(self):
        if self.store is None:
            return None
        try:
            raw = self.store.read_meta(_FILE)
            doc = json.loads(raw) if raw else None
            return doc if doc and doc.get("id") else None
        except Exception:
            self.bad += 1
            return None

    def _save(self):
        if self.store is not None:
            self.store.write_meta(_FILE, json.dumps(self.pending or {}).encode())

    def press(self, pressed, now_ms):
        """The button's state now; True when this call raised an SOS."""
        if not pressed:
            self._down_at = None
            self._fired = False
            self._armed = True
            return False
        if not self._armed:
            return False
        if self._down_at is None:
            self._down_at = now_ms
        if self._fired or ticks_diff(now_ms, self._down_at) < self.hold_ms:
            return False
        self._fired = True
        if self.pending is None:
            self.pending = {"id": "".join("%02x" % b for b in self.rand(6)),
                            "ts": int(self.clock.time()), "tq": self.clock.quality()}
            self.raised += 1
            try:
                self._save()
            except OSError:
                self.bad += 1  # still in RAM: sent all the same
        self._due = None
        return True

    def on_connect(self):
        self._due = None

    def outgoing(self, now):
        """[(topic, payload, qos)]: the pending SOS when it is due."""
        if self.pending is None or (self._due is not None and now < self._due):
            return []
        self._due = now + self.resend_s
        return [(self._up, json.dumps(self.pending).encode(), 1)]

    def handles(self, t):
        return t == self._down

    def on_message(self, t, payload):
        """The fleet's answer; False for a malformed one or another id."""
        try:
            sid = json.loads(payload)["id"]
        except Exception:
            self.bad += 1
            return False
        if self.pending is None or sid != self.pending["id"]:
            return False
        self.pending = None
        self.stored += 1
        try:
            self._save()
        except OSError:
            self.bad += 1
        return True
