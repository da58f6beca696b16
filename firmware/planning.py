"""The badge allow-list and the planned visits, held compactly for the reader's heap.

Badge UIDs are kept once each as raw bytes in one sorted list; visits are parallel arrays of
4-byte ints sorted by (badge index, start), so 500 visits cost about 7 KB instead of 500 tuples
of boxed ints and repeated strings.
"""
import array
import binascii

# Added to every badge index kept in _vb, so that two neighbours read as one 32-bit word are
# at least 0x40004000: never a heap address to MicroPython's conservative collector (the
# WebAssembly build's heap sits low, where small indices such as (16, 17) would point and keep
# garbage alive; an ESP32's is at 0x3FFxxxxx). Up to 49,151 badges.
_B0 = 0x4000


def _uid(s):
    """Badge hex string -> raw bytes (odd lengths padded: UIDs are whole bytes)."""
    if type(s) is not str or not 1 <= len(s) <= 20:
        raise ValueError("bad badge uid %r" % (s,))
    s = s.upper()
    if len(s) % 2:
        s = "0" + s
    return binascii.unhexlify(s)


def _find(seq, x):
    """Leftmost index where x could go in the sorted seq (MicroPython has no bisect)."""
    lo, hi = 0, len(seq)
    while lo < hi:
        mid = (lo + hi) // 2
        if seq[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


class Planning:
    def __init__(self, version=0, tz="UTC", tolerance_s=1800, uids=(), allowed=b"",
                 vbadge=None, vstart=None, vend=None, vid=None):
        self.version = version
        self.tz = tz
        self.tolerance_s = tolerance_s
        self._uids = uids  # sorted raw UIDs: allow-listed and planned ones
        self._allowed = allowed  # one byte per uid: 1 when on the allow-list
        self._vb = vbadge or array.array("H")
        self._vs = vstart or array.array("I")
        self._ve = vend or array.array("I")
        self._vid = vid or array.array("I")

    @classmethod
    def from_config(cls, cfg):
        """Build from the device config dict; raises ValueError when it is malformed."""
        try:
            version, tol = cfg["version"], cfg["tolerance_min"]
            badges, visits = cfg["badges"], cfg["visits"]
        except (KeyError, TypeError):
            raise ValueError("config needs version, tolerance_min, badges and visits")
        if type(version) is not int or type(tol) is not int or tol < 0:
            raise ValueError("config version and tolerance_min must be ints")
        allowed = set(_uid(b) for b in badges)
        rows = []
        for v in visits:
            if type(v) not in (list, tuple) or len(v) != 4:
                raise ValueError("a visit is [id, badge, start, end], got %r" % (v,))
            vid, badge, start, end = v
            for x in (vid, start, end):
                if type(x) is not int or not 0 <= x < 1 << 32:
                    raise ValueError("visit id and times must be ints, got %r" % (v,))
            rows.append((_uid(badge), start, end, vid))
        uids = sorted(allowed | set(r[0] for r in rows))
        flags = bytearray(len(uids))
        for i in range(len(uids)):
            flags[i] = 1 if uids[i] in allowed else 0
        rows = sorted((_find(uids, r[0]), r[1], r[2], r[3]) for r in rows)
        return cls(version, cfg.get("tz", "UTC"), tol * 60, tuple(uids), bytes(flags),
                   array.array("H", [_B0 + r[0] for r in rows]),
                   array.array("I", [r[1] for r in rows]),
                   array.array("I", [r[2] for r in rows]), array.array("I", [r[3] for r in rows]))

    def _index(self, uid):
        try:
            raw = _uid(uid)
        except (ValueError, TypeError):
            return -1
        i = _find(self._uids, raw)
        return i if i < len(self._uids) and self._uids[i] == raw else -1

    def known(self, uid):
        """Is this badge on the allow-list?"""
        i = self._index(uid)
        return i >= 0 and self._allowed[i] == 1

    def visit_for(self, uid, now, tolerance_s=None):
        """The planned visit of this badge whose window [start - tol, end + tol] holds `now`,
        the one starting closest to now; None if there is none."""
        tol = self.tolerance_s if tolerance_s is None else tolerance_s
        b = self._index(uid)
        if b < 0:
            return None
        best, gap = None, None
        b += _B0
        i = _find(self._vb, b)
        while i < len(self._vb) and self._vb[i] == b:
            start = self._vs[i]
            if start - tol <= now <= self._ve[i] + tol:
                d = abs(start - now)
                if gap is None or d < gap:
                    best, gap = self._vid[i], d
            elif start - tol > now:
                break  # sorted by start: the rest start later still
            i += 1
        return best

    def visit_end(self, visit_id):
        """Planned end of a visit, or None when it is not (or no longer) planned."""
        for i in range(len(self._vid)):
            if self._vid[i] == visit_id:
                return self._ve[i]
        return None

    def __len__(self):
        return len(self._vid)
