"""Append-only clock-event journal on flash.

Every tap is written here before the reader gives feedback, and stays here until the fleet's
ack covers it. Runs unchanged on CPython and MicroPython (no os.path, no truncate, no fsync
there). Format and guarantees: docs/firmware.md.
"""
import binascii
import os
import struct

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_MAGIC = const(0xA5)
_VERSION = const(1)
_HDR = const(12)  # magic u8, version u8, length u16, seq u32, crc32 u32 (little endian)
MAX_PAYLOAD = const(1024)  # an event must fit in one 1 KiB MQTT message anyway
_READ = const(16)  # records held in memory at once while rebuilding state


class JournalFull(Exception):
    pass


def _join(a, b):
    return a + b if a.endswith("/") else a + "/" + b


def _makedirs(path):
    # os.makedirs does not exist on MicroPython.
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # already there
        cur = cur + "/"


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _sync(f):
    # flush() reaches flash on MicroPython (littlefs commits on flush/close); CPython also
    # needs fsync to get past the page cache.
    f.flush()
    if hasattr(os, "fsync"):
        os.fsync(f.fileno())


def _sync_dir(path):
    # Make a create/rename durable on POSIX; MicroPython has no os.open and needs nothing.
    if hasattr(os, "O_RDONLY") and hasattr(os, "fsync"):
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def _crc(head, payload):
    return binascii.crc32(payload, binascii.crc32(head)) & 0xFFFFFFFF


def record(seq, payload):
    """The on-flash bytes of one record."""
    head = struct.pack("<BBHI", _MAGIC, _VERSION, len(payload), seq)
    return head + struct.pack("<I", _crc(head, payload)) + payload


def _parse(data, off):
    """(seq, payload, next_off) of a valid record at data[off:], or None."""
    if len(data) - off < _HDR:
        return None
    magic, ver, n, seq, crc = struct.unpack("<BBHII", data[off:off + _HDR])
    end = off + _HDR + n
    if magic != _MAGIC or ver != _VERSION or n > MAX_PAYLOAD or end > len(data):
        return None
    payload = bytes(data[off + _HDR:end])
    if _crc(data[off:off + 8], payload) != crc:
        return None
    return seq, payload, end


class Journal:
    def __init__(self, path, max_records=2000, segment_records=64):
        self.path = path
        self.max_records = max_records
        self.segment_records = segment_records
        self.torn = 0  # torn tail records dropped on open (power cut mid-write)
        self.corrupt = 0  # damaged records found (on open or read), replaced by placeholders
        self._segs = []  # [first_seq, count], oldest first
        self.acked = 0
        self.last_seq = 0
        _makedirs(path)
        self._open()

    # -- properties -------------------------------------------------------------------------
    @property
    def depth(self):
        return self.last_seq - self.acked

    @property
    def full(self):
        return self.depth >= self.max_records

    @property
    def first_seq(self):
        """The oldest seq still on flash (acked or not); last_seq + 1 when empty."""
        return self._segs[0][0] if self._segs else self.last_seq + 1

    # -- files ------------------------------------------------------------------------------
    def _seg_path(self, first):
        return _join(self.path, "s%08d.log" % first)

    def _write_atomic(self, path, chunks):
        # Readers see the old file or the new one, never a half-written one.
        with open(path + ".tmp", "wb") as f:
            for c in chunks:
                f.write(c)
            _sync(f)
        os.rename(path + ".tmp", path)
        _sync_dir(self.path)

    def write_meta(self, name, data):
        """Store a small side file atomically (the reader's tap state)."""
        self._write_atomic(_join(self.path, name), (data,))

    def read_meta(self, name):
        try:
            with open(_join(self.path, name), "rb") as f:
                return f.read()
        except OSError:
            return None

    # -- open and recovery ------------------------------------------------------------------
    def _open(self):
        firsts = []
        for name in os.listdir(self.path):
            if name.endswith(".tmp"):
                # An atomic write cut short: the old file is still whole, drop the new one.
                _remove(_join(self.path, name))
            elif len(name) == 13 and name[0] == "s" and name.endswith(".log") and name[1:9].isdigit():
                firsts.append(int(name[1:9]))
        firsts.sort()
        ack = self.read_meta("ack")
        try:
            self.acked = int(ack) if ack else 0
        except ValueError:
            self.acked = 0
            self.corrupt += 1
        segs = []
        for i in range(len(firsts)):
            nxt = firsts[i + 1] if i + 1 < len(firsts) else None
            count = self._scan(firsts[i], nxt)
            if count:
                segs.append([firsts[i], count])
            else:
                _remove(self._seg_path(firsts[i]))
        self._segs = segs
        if segs:
            # Segments are deleted only after the ack that covers them was persisted.
            self.acked = max(self.acked, segs[0][0] - 1)
            self.last_seq = max(self.acked, segs[-1][0] + segs[-1][1] - 1)
        else:
            self.last_seq = self.acked
        self._free()  # a power cut may have come between persisting an ack and freeing

    def _scan(self, first, nxt):
        """Check one segment; repair it if needed. Returns its record count."""
        path = self._seg_path(first)
        expect, off, bad = first, 0, False
        with open(path, "rb") as f:
            while True:
                head = f.read(_HDR)
                if not head:
                    break
                n = struct.unpack("<H", head[2:4])[0] if len(head) >= 4 else 0
                rec = _parse(head + f.read(min(n, MAX_PAYLOAD)), 0)
                if rec is None or rec[0] != expect:
                    bad = True
                    break
                off = rec[2] + off
                expect += 1
        if not bad and (nxt is None or expect >= nxt):
            return expect - first
        with open(path, "rb") as f:
            data = f.read()
        found, end = self._resync(data, off, expect, nxt)
        last = found[-1][0] if found else expect - 1
        rest = len(data) - end  # bytes after the last valid record
        if nxt is not None:
            hi = max(last, nxt - 1)
        elif rest <= _HDR + MAX_PAYLOAD:
            # At most one record: the one being written when power went. append() never
            # returned its seq, so it was never sent; drop it.
            hi = last
            if rest:
                self.torn += 1
        else:
            # Damage, not a torn write: records here may have been sent, so their seqs are
            # never reused. Each record takes at least a header: that bounds how many.
            hi = max(last, min(first + self.segment_records - 1, last + rest // _HDR))
        # Unreadable records become empty placeholders: the fleet rejects them as bad
        # events, which still moves its ack past the hole. The segment is rewritten whole
        # (MicroPython files cannot truncate).
        byseq = {}
        for seq, payload in found:
            byseq[seq] = payload
        chunks = [data[:off]]
        for seq in range(expect, hi + 1):
            payload = byseq.get(seq)
            if payload is None:
                self.corrupt += 1
                payload = b""
            chunks.append(record(seq, payload))
        self._write_atomic(path, chunks)
        return hi - first + 1

    def _resync(self, data, off, expect, nxt):
        """Valid records after a damaged spot, found by their magic byte and CRC, and the
        offset where the last one ends."""
        found, end = [], off
        pos = data.find(b"\xa5", off + 1)
        while pos >= 0:
            rec = _parse(data, pos)
            if rec and rec[0] >= expect and (nxt is None or rec[0] < nxt) and (
                    not found or rec[0] > found[-1][0]):
                found.append((rec[0], rec[1]))
                end = rec[2]
                pos = data.find(b"\xa5", rec[2])
            else:
                pos = data.find(b"\xa5", pos + 1)
        return found, end

    # -- public operations ------------------------------------------------------------------
    def append(self, payload):
        """Write one record durably and return its seq. Raises JournalFull, never drops."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("payload over %d bytes" % MAX_PAYLOAD)
        if self.full:
            raise JournalFull()
        seq = self.last_seq + 1
        new = not self._segs or self._segs[-1][1] >= self.segment_records
        first = seq if new else self._segs[-1][0]
        try:
            with open(self._seg_path(first), "wb" if new else "ab") as f:
                f.write(record(seq, payload))
                _sync(f)
        except OSError:
            # Do not append after a half-written record: repair now, as a reboot would.
            if not new:
                self._segs[-1][1] = self._scan(first, None)
                # a record that reached flash keeps its seq, as after a reboot: never reused
                self.last_seq = max(self.last_seq, first + self._segs[-1][1] - 1)
            else:
                _remove(self._seg_path(first))
            raise
        if new:
            _sync_dir(self.path)
            self._segs.append([seq, 1])
        else:
            self._segs[-1][1] += 1
        self.last_seq = seq
        return seq

    def read_from(self, seq, limit):
        """Up to `limit` stored (seq, payload) with seq >= `seq`, in order."""
        out = []
        for first, count in self._segs:
            if first + count <= seq:
                continue
            with open(self._seg_path(first), "rb") as f:
                for s in range(first, first + count):
                    head = f.read(_HDR)
                    n = struct.unpack("<H", head[2:4])[0] if len(head) >= 4 else 0
                    body = f.read(min(n, MAX_PAYLOAD))
                    if s < seq:
                        continue
                    rec = _parse(head + body, 0)
                    if rec is None or rec[0] != s:
                        # Flash went bad since open: send a placeholder so the ack moves on.
                        self.corrupt += 1
                        out.append((s, b""))
                        return out  # offsets after this record cannot be trusted
                    out.append((s, rec[1]))
                    if len(out) >= limit:
                        return out
            if len(out) >= limit:
                break
        return out

    def ack(self, seq):
        """The fleet stored everything up to `seq`: persist it and free whole segments."""
        seq = min(seq, self.last_seq)
        if seq <= self.acked:
            return
        self._write_atomic(_join(self.path, "ack"), (b"%d\n" % seq,))
        self.acked = seq
        self._free()

    def _free(self):
        while self._segs and self._segs[0][0] + self._segs[0][1] - 1 <= self.acked:
            _remove(self._seg_path(self._segs[0][0]))
            self._segs.pop(0)
