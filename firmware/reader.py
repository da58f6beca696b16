"""The reader's core loop logic, shared by the ESP32 runtime and the virtual reader.

Taps are decided, journaled, then answered; the journal is sent in clock batches and freed
only by the fleet's ack. The network layer calls on_connect / outgoing / on_message; nothing
here blocks, sleeps or touches hardware.
"""
import binascii
import json

from firmware.codec import (CodecError, MAX_EVENTS, build_clock_batch, encode_event,
                            encode_health, parse_ack, topic)
from firmware.commands import Commands
from firmware.config import ConfigReceiver
from firmware.decide import decide, in_until
from firmware.journal import JournalFull
from firmware.tapstate import TapState

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_TAPS_SOFT = const(32)  # prune settled badges past this many entries
_TAPS_HARD = const(64)  # then drop the oldest: bounded heap whatever cards are shown (a home
# sees a handful of caregivers a day; 64 "in" at once is already far past any real one)
_STATE_FILE = "taps.json"


class ReaderCore:
    def __init__(self, device_id, journal, planning, clock, ack_timeout=5, window=64,
                 fw="0.1.0", config_path=None, updater=None, sos=None):
        self.device_id = device_id
        self.journal = journal
        self.planning = planning
        self.clock = clock
        self.ack_timeout = ack_timeout
        self.window = window
        self.fw = fw
        self._t_clock = topic(device_id, "up/clock")
        self._t_health = topic(device_id, "up/health")
        self._t_ack = topic(device_id, "down/ack")
        # What was dropped or refused, for the status command and health.
        self.refused_full = 0  # taps refused: journal full
        self.bad_reads = 0  # taps refused: UID or method the codec rejects
        self.journal_errors = 0  # flash writes that failed
        self.bad_messages = 0  # malformed down/ack
        self.ignored_messages = 0  # topics not handled yet (config, cmd)
        self.stale_acks = 0  # acks at or below the current one (duplicates, reordering)
        self.rejected = 0  # events the fleet stored as rejected
        self.last_rejected = []  # [(seq, reason)] of the latest ack, for the log
        self.resends = 0  # rewinds to ack + 1 after ack_timeout
        self.taps_dropped = 0  # per-badge states pruned at the hard cap
        self.state_errors = 0  # tap-state snapshot unreadable at start
        # uid -> (ts, dir, visit, until), see decide.py; its heap is allocated here, once
        self.taps = TapState(_TAPS_HARD + 1)  # + 1: a tap is held, then the state pruned
        self._next = journal.acked + 1  # next seq to send
        self._ack_at = None  # when the ack last advanced while events were outstanding
        # down/config: a newer planning saved on flash beats the one handed in
        self.config = ConfigReceiver(device_id, config_path or journal.path + "/config.json")
        saved = self.config.load()
        if saved is not None and saved.version > planning.version:
            self.planning = saved
        self.config.applied = self.planning.version
        self.commands = Commands(device_id, clock, updater)  # down/cmd, down/ota, up/ota
        self.sos = sos  # firmware.sos.SosButton on a box with an SOS button, else None
        self._rebuild()

    # -- taps -------------------------------------------------------------------------------
    def tap(self, uid, method="nfc", reason=None, tag=None):
        """Decide, journal, then return the feedback kind (see decide.FEEDBACKS, plus "full"
        when the journal refuses the event and "error" when it cannot be written). `tag` is
        the SUN URL an NTAG 424 card gave, sent along for the fleet to verify."""
        now = int(self.clock.time())
        if type(uid) is not str:  # raw UID bytes from a driver
            uid = binascii.hexlify(uid).decode()
        uid = uid.upper()
        if self.journal.full:
            self.refused_full += 1
            return "full"
        d = decide(self.planning, self.taps, uid, now)
        try:
            event = encode_event(d.dir, method, now, self.clock.quality(), badge=uid,
                                 tag=tag, reason=reason, visit=d.visit)
        except CodecError:
            self.bad_reads += 1
            return "error"
        try:
            self.journal.append(event)
        except JournalFull:
            self.refused_full += 1
            return "full"
        except OSError:
            self.journal_errors += 1
            return "error"
        self._remember(uid, (now, d.dir, d.visit, d.until), now)
        self._prune(now)
        return d.feedback

    def _prune(self, now):
        self.taps_dropped += self.taps.prune(now, _TAPS_SOFT, _TAPS_HARD)

    def _remember(self, uid, entry, now):
        """Hold `entry` for `uid`. A snapshot and a journal replayed at start may name more
        badges than the state holds (past 64 open "in"s at once): when it is full, it is
        pruned first, at `now`, as the tap after them would have."""
        if len(self.taps) >= self.taps.cap and uid not in self.taps:
            self._prune(now)
        self.taps[uid] = entry

    def _rebuild(self):
        # The tap state is a snapshot saved at each ack (taps.json, with the last seq it
        # covers) plus the journal records after it; the snapshot is written before the
        # journal frees anything, so no record is lost between the two.
        seq = 0
        now = int(self.clock.time())
        raw = self.journal.read_meta(_STATE_FILE)
        if raw:
            try:
                m = json.loads(raw)
                seq = m["seq"]
                for t in m["taps"]:
                    self._remember(t[0], (t[1], t[2], t[3], t[4]), now)
            except Exception:
                self.taps.clear()
                seq = 0
                self.state_errors += 1
        s = max(seq + 1, self.journal.first_seq)
        while True:
            items = self.journal.read_from(s, MAX_EVENTS)
            if not items:
                break
            for _, event in items:
                self._replay(event, now)
            s = items[-1][0] + 1

    def _replay(self, event, now):
        try:
            e = json.loads(event)
            uid, dir, ts = e["badge"], e["dir"], e["ts"]
        except Exception:  # placeholder, tag-only event
            return
        visit = e.get("visit")
        until = in_until(self.planning, visit, ts) if dir == "in" else 0
        try:
            self._remember(uid, (ts, dir, visit, until), now)
        except ValueError:  # not a badge the codec would have written: nothing to restore
            self.state_errors += 1

    def _save_taps(self):
        self._prune(int(self.clock.time()))
        rows = [[u, t[0], t[1], t[2], t[3]] for u, t in self.taps.items()]
        data = json.dumps({"seq": self.journal.last_seq, "taps": rows})
        self.journal.write_meta(_STATE_FILE, data.encode())

    # -- network ----------------------------------------------------------------------------
    def on_connect(self):
        """After a (re)connect the broker may have lost anything unacked: resend it all."""
        self._next = self.journal.acked + 1
        self._ack_at = None
        self.commands.on_connect()
        if self.sos is not None:
            self.sos.on_connect()

    def outgoing(self, now):
        """[(topic, payload, qos)] to publish now: a pending SOS first, then the clock batches."""
        j = self.journal
        if self._next <= j.acked:
            self._next = j.acked + 1
        if self._ack_at is not None and now < self._ack_at:
            self._ack_at = now  # the clock was set back: restart the wait, do not stall
        if (self._next > j.acked + 1 and self._ack_at is not None
                and now - self._ack_at >= self.ack_timeout):
            self._next = j.acked + 1  # no ack progress: assume the batches were lost
            self._ack_at = now
            self.resends += 1
        out = []
        stop = min(j.last_seq, j.acked + self.window)
        while self._next <= stop:
            items = j.read_from(self._next, min(MAX_EVENTS, stop - self._next + 1))
            if not items:
                break
            payload, n = build_clock_batch(now, items)
            if self._next == j.acked + 1 and self._ack_at is None:
                self._ack_at = now
            out.append((self._t_clock, payload, 1))
            self._next = items[n - 1][0] + 1
        sos = self.sos.outgoing(now) if self.sos is not None else []
        return sos + out + self.commands.outgoing(now * 1000)

    def on_message(self, topic, payload):
        """Handle a down message. Never raises: bad input is counted."""
        if self.config.handles(topic):
            planning = self.config.on_message(topic, payload)
            if planning is not None:
                self.planning = planning
            return
        if self.sos is not None and self.sos.handles(topic):
            if not self.sos.on_message(topic, payload):
                self.ignored_messages += 1
            return
        if self.commands.handles(topic):
            if not self.commands.on_message(topic, payload):
                self.ignored_messages += 1  # malformed, or a command not handled here
            return
        if topic != self._t_ack:
            self.ignored_messages += 1
            return
        try:
            ack, rejected = parse_ack(payload)
        except CodecError:
            self.bad_messages += 1
            return
        j = self.journal
        if ack <= j.acked:
            self.stale_acks += 1
            return
        if rejected:
            self.rejected += len(rejected)
            self.last_rejected = rejected[-4:]
        try:
            self._save_taps()
            j.ack(ack)
        except OSError:
            self.journal_errors += 1
            return
        if self._next <= j.acked:
            self._next = j.acked + 1
        self._ack_at = int(self.clock.time()) if self._next > j.acked + 1 else None

    def health(self, now, up, heap, rssi=None, bat=None, rd="ok"):
        j = self.journal
        self.commands.health(rd, up)
        payload = encode_health(now, self.fw, up, heap, j.depth, j.full, rd,
                                self.clock.quality(), rssi, bat)
        payload = payload[:-1] + (',"cfg":' + str(self.planning.version) + "}").encode()
        return self._t_health, payload, 0

    def counters(self):
        out = {"refused_full": self.refused_full, "bad_reads": self.bad_reads,
                "journal_errors": self.journal_errors, "bad_messages": self.bad_messages,
                "ignored_messages": self.ignored_messages, "stale_acks": self.stale_acks,
                "rejected": self.rejected, "resends": self.resends,
                "taps_dropped": self.taps_dropped, "state_errors": self.state_errors,
                "journal_torn": self.journal.torn, "journal_corrupt": self.journal.corrupt}
        out.update(self.config.counters())
        out.update(self.commands.counters())
        return out
