"""The reader's per-badge tap state (ReaderCore.taps), in storage allocated once.

A `TapState` maps a badge UID (1 to 20 upper-case hex digits, as ReaderCore journals them) to
that badge's last journaled tap, the tuple (ts, dir, visit, until) of decide.py, for at most
`cap` badges. It replaces a dict of tuples, which cost about 150 B of heap a badge (the key
string, the tuple, and Unix times boxed: they are past MicroPython's 31-bit small ints) and
whose heap followed the number of badges held: on a box, a heap that grows and shrinks with
the caregivers of the day, and fragments. Here every array is allocated in the constructor:
the heap is the same empty or full. A read builds its tuple afresh (short-lived garbage, not
state).

Layout: `cap` slots (the UID as ASCII padded with "." to 20 bytes, a kind byte, then ts, visit
and until in unsigned 32-bit arrays) and an open-addressing index of buckets (twice `cap`,
rounded up to a power of two) holding slot numbers, probed linearly from the CRC-32 of the
padded UID (the same on both interpreters, so the slots and the order of `items()` are too);
a deletion shifts the probe chain back (no tombstones, lookups stay short).

Every byte of the bytearrays is ASCII from "." (0x2E) to "z", never a small number:
MicroPython's collector is conservative and takes every word of a live bytearray for a
possible pointer. A word of such bytes is at least 0x2E2E2E2E and has no 0xFx byte, so it is
no address in an ESP32's data RAM (0x3FFxxxxx) nor in the WebAssembly build's heap (below
0x0A000000 in the benches): the table keeps no garbage alive (docs/benchmarks.md).
"""
import array
from binascii import crc32

from firmware.decide import REPEAT_S

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_W = const(20)  # a slot's UID bytes: the longest UID (10 bytes) in hex
_FREE = const(0x2E)  # "." an empty bucket, a free slot, the UID's padding
_BASE = const(0x30)  # the index byte of slot s is 0x30 + s ("0", "1", ...)
_IN = const(0x49)  # "I": in, visit kept; "i" (| 0x20): in, no visit
_OUT = const(0x4F)  # "O": out, visit kept; "o": out, no visit
_NO_VISIT = const(0x20)
_PAD = b"." * _W
_U32 = 0x100000000  # ts, visit and until are unsigned 32-bit
_HEX = "0123456789ABCDEF"


class TapState:
    def __init__(self, cap=65):
        if not 1 <= cap <= 0x7A - _BASE:
            raise ValueError("a tap state holds 1 to %d badges" % (0x7A - _BASE))
        n = 2
        while n < 2 * cap:
            n *= 2
        self.cap = cap
        self._mask = n - 1
        self._n = 0
        self._index = bytearray(_PAD[:1] * n)
        self._uid = bytearray(_PAD * cap)
        self._kind = bytearray(_PAD[:1] * cap)
        self._ts = array.array("I", [0] * cap)
        self._visit = array.array("I", [0] * cap)
        self._until = array.array("I", [0] * cap)

    # -- lookups ----------------------------------------------------------------------------
    def _key(self, uid):
        """The padded ASCII key of `uid`, or None when no badge can be held under it."""
        if type(uid) is not str or not 1 <= len(uid) <= _W:
            return None
        k = uid.encode()
        if len(k) != len(uid):  # not ASCII
            return None
        return k + _PAD[len(k):]

    def _find(self, key):
        """(bucket, slot) of `key`; when it is absent, (the empty bucket it would take, -1).
        The index is never more than half full, so an empty bucket ends every probe."""
        mask, idx, uids = self._mask, self._index, self._uid
        b = crc32(key) & mask
        while True:
            s = idx[b]
            if s == _FREE:
                return b, -1
            o = (s - _BASE) * _W
            if uids[o:o + _W] == key:
                return b, s - _BASE
            b = (b + 1) & mask

    def _slot(self, uid):
        key = self._key(uid)
        return -1 if key is None else self._find(key)[1]

    def _entry(self, s):
        k = self._kind[s]
        return (self._ts[s], "in" if (k | _NO_VISIT) == (_IN | _NO_VISIT) else "out",
                None if k & _NO_VISIT else self._visit[s], self._until[s])

    def get(self, uid, default=None):
        s = self._slot(uid)
        return default if s < 0 else self._entry(s)

    def __getitem__(self, uid):
        s = self._slot(uid)
        if s < 0:
            raise KeyError(uid)
        return self._entry(s)

    def __contains__(self, uid):
        return self._slot(uid) >= 0

    def __len__(self):
        return self._n

    def items(self):
        """(uid, entry) of every badge held, in slot order."""
        for s in range(self.cap):
            if self._kind[s] != _FREE:
                yield bytes(self._uid[s * _W:(s + 1) * _W]).decode().rstrip("."), self._entry(s)

    # -- changes ----------------------------------------------------------------------------
    def __setitem__(self, uid, entry):
        """Hold `entry` = (ts, dir, visit, until) for `uid`. ValueError when the UID is not
        1 to 20 upper-case hex digits, ts or visit not an int from 0 to 2^32 - 1, dir not in
        or out, or the table is full (the caller prunes first: ReaderCore holds at most
        cap - 1 between taps)."""
        key = self._key(uid)
        try:
            ts, dir, visit, until = entry
            kind = (_IN, _OUT)[("in", "out").index(dir)]
            if visit is None:
                kind |= _NO_VISIT
                visit = 0
            ok = key is not None and not [c for c in uid if c not in _HEX]
            for x in (ts, visit, until):
                ok = ok and type(x) is int and x >= 0
            ok = ok and ts < _U32 and visit < _U32
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError("bad tap state entry %r: %r" % (uid, entry))
        b, s = self._find(key)
        if s < 0:
            if self._n >= self.cap:
                raise ValueError("the tap state is full (%d badges)" % self.cap)
            s = 0
            while self._kind[s] != _FREE:
                s += 1
            self._uid[s * _W:(s + 1) * _W] = key
            self._index[b] = _BASE + s
            self._n += 1
        self._kind[s] = kind
        self._ts[s] = ts
        self._visit[s] = visit
        self._until[s] = until if until < _U32 else _U32 - 1  # no clock reaches it: same test

    def _drop(self, s):
        self._free(self._find(bytes(self._uid[s * _W:(s + 1) * _W]))[0], s)

    def _free(self, b, s):
        """Free slot `s`, held by bucket `b`, then move back into the hole each entry of the
        probe chain after it whose home bucket is not between the hole and where it sits."""
        self._kind[s] = _FREE
        self._uid[s * _W:(s + 1) * _W] = _PAD
        self._ts[s] = self._visit[s] = self._until[s] = 0
        self._n -= 1
        idx, mask, uids = self._index, self._mask, self._uid
        hole = j = b
        while True:
            j = (j + 1) & mask
            t = idx[j]
            if t == _FREE:
                break
            o = (t - _BASE) * _W
            home = crc32(uids[o:o + _W]) & mask
            if hole <= j:
                stays = hole < home <= j
            else:
                stays = home > hole or home <= j
            if not stays:
                idx[hole] = t
                hole = j
        idx[hole] = _FREE

    def clear(self):
        for s in range(self.cap):
            if self._kind[s] != _FREE:
                self._drop(s)

    def prune(self, now, soft, hard):
        """Above `soft` badges, forget the settled ones (no tap in the last REPEAT_S seconds and
        no open "in"); then, while above `hard`, the oldest (lowest ts; among equals the lowest
        slot). A settled badge decides as an absent one, so only the hard cap changes a
        decision. Returns how many went for the hard cap."""
        if self._n <= soft:
            return 0
        kind, ts, until = self._kind, self._ts, self._until
        for s in range(self.cap):
            k = kind[s]
            if k == _FREE:
                continue
            if now >= ts[s] + REPEAT_S and not ((k | _NO_VISIT) == (_IN | _NO_VISIT)
                                                and now <= until[s]):
                self._drop(s)
        dropped = 0
        while self._n > hard:
            old = -1
            for s in range(self.cap):
                if kind[s] != _FREE and (old < 0 or ts[s] < ts[old]):
                    old = s
            self._drop(old)
            dropped += 1
        return dropped
