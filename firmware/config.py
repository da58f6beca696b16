"""down/config on the device: reassemble, check, persist, then apply a new planning.

The fleet publishes (retained, QoS 1; docs/protocol.md "Config"):
    down/config      {"v": V, "hash": "<sha256 hex of the text>", "parts": N}
                     or, when the text fits: {"v": V, "hash": ..., "parts": 0, "d": "<text>"}
    down/config/<i>  {"v": V, "i": i, "d": "<slice i of the text>"}, i = 0..N-1
where the text is the config body's canonical JSON ({"badges", "tolerance_min", "tz",
"visits"}). Only the newest version in flight is held: a part or manifest of a newer version
drops what was gathered, an older or equal one (to the applied version) is ignored, so stale
parts never mix in. The text is hashed part by part, written to a temporary file, parsed from
that file and turned into a Planning; only then the file is renamed over the saved config and
the Planning returned for the caller to swap in. Any failure keeps the old planning and counts.
"""
import hashlib
import json
import os

from firmware.codec import MAX_MESSAGE, topic
from firmware.journal import _remove, _sync
from firmware.planning import Planning

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

MAX_TEXT = const(24576)  # config text held at once (the parts of the version in flight)
MAX_PARTS = const(64)
_HEX = "0123456789abcdef"


def _hex(b):
    return "".join(_HEX[c >> 4] + _HEX[c & 15] for c in b)


class ConfigReceiver:
    def __init__(self, device_id, path):
        self._base = topic(device_id, "down/config")
        self._prefix = self._base + "/"
        self.path = path  # the saved config: {"v", "hash", "config": {...}}
        self.applied = 0  # version of the planning in use
        self._v = 0  # version in flight
        self._n = None  # its number of parts, once its manifest is seen
        self._hash = None
        self._parts = {}  # i -> slice of the text
        self._size = 0
        self._refused = 0  # a version refused as oversized: its parts are not gathered again
        # counters
        self.applied_count = 0
        self.stale = 0  # older or equal versions, duplicate parts
        self.bad = 0  # bad JSON, wrong types, hash mismatch, a config Planning refuses
        self.oversized = 0  # text over MAX_TEXT or more than MAX_PARTS parts
        self.store_errors = 0  # the config file could not be written
        self.load_status = "none"

    def handles(self, t):
        return t == self._base or t.startswith(self._prefix)

    # -- start ------------------------------------------------------------------------------
    def load(self):
        """The Planning saved on flash, or None (load_status says none / ok / corrupt)."""
        try:
            f = open(self.path)
        except OSError:
            self.load_status = "none"
            return None
        try:
            with f:
                doc = json.load(f)
            p = self._planning(doc["v"], doc["config"])
        except Exception:
            self.load_status = "corrupt"
            return None
        self.load_status = "ok"
        self.applied = p.version
        return p

    def _planning(self, v, cfg):
        if type(v) is not int or type(cfg) is not dict or type(cfg.get("tz", "")) is not str:
            raise ValueError("config must be an object with a str tz")
        cfg["version"] = v
        return Planning.from_config(cfg)

    # -- messages ---------------------------------------------------------------------------
    def on_message(self, t, payload):
        """Handle one down/config message; returns the new Planning when a version is complete
        and valid, else None. Never raises."""
        if not payload:
            return None  # a retained part deleted by the fleet
        try:
            if len(payload) > MAX_MESSAGE:
                raise ValueError("over 1 KiB")
            msg = json.loads(payload)
            if type(msg) is not dict or type(msg.get("v")) is not int or msg["v"] < 1:
                raise ValueError("no version")
            if t == self._base:
                return self._manifest(msg)
            return self._part(int(t[len(self._prefix):]), msg)
        except Exception:  # ValueError, KeyError, UnicodeError: all mean a bad message
            self.bad += 1
            return None

    def _newer(self, v):
        """False when v is stale; starts gathering v when it is newer than the one in flight."""
        if v <= self.applied or v < self._v or v == self._refused:
            self.stale += 1
            return False
        if v > self._v:
            self._v, self._n, self._hash = v, None, None
            self._drop()
        return True

    def _drop(self):
        self._parts = {}
        self._size = 0

    def _manifest(self, msg):
        v, h, n = msg["v"], msg.get("hash"), msg.get("parts")
        if type(h) is not str or len(h) != 64 or type(n) is not int or not 0 <= n <= MAX_PARTS:
            raise ValueError("manifest needs a sha256 hash and 0..64 parts")
        if not self._newer(v):
            return None
        if self._n is not None:
            self.stale += 1  # the same manifest again (retained, QoS 1 redelivery)
            return None
        self._n, self._hash = n, h.lower()
        if n == 0:
            d = msg.get("d")
            if type(d) is not str:
                raise ValueError("an inline manifest needs d")
            self._parts = {0: d}
            return self._complete(1)
        return self._complete(n)

    def _part(self, i, msg):
        v, d = msg["v"], msg.get("d")
        if msg.get("i") != i or type(d) is not str or not 0 <= i < MAX_PARTS:
            raise ValueError("part needs i matching its topic and a str d")
        if not self._newer(v):
            return None
        if i in self._parts:
            self.stale += 1
            return None
        if self._n is not None and i >= self._n:
            raise ValueError("part index past the manifest's count")
        if self._size + len(d) > MAX_TEXT:
            self.oversized += 1
            self._refused = v
            self._drop()
            return None
        self._parts[i] = d
        self._size += len(d)
        return self._complete(self._n) if self._n is not None else None

    def _complete(self, n):
        for i in range(n):
            if i not in self._parts:
                return None
        v, parts = self._v, self._parts
        self._drop()
        h = hashlib.sha256()
        for i in range(n):
            h.update(parts[i].encode())
        if _hex(h.digest()) != self._hash:
            self.bad += 1
            return None
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.write('{"v":%d,"hash":"%s","config":' % (v, self._hash))
                for i in range(n):
                    f.write(parts[i])
                f.write("}")
                _sync(f)
        except OSError:
            self.store_errors += 1
            _remove(tmp)
            return None
        parts = None  # the file holds the text now: free the slices before parsing
        try:
            with open(tmp) as f:
                p = self._planning(v, json.load(f)["config"])
        except Exception:
            self.bad += 1
            _remove(tmp)
            return None
        try:
            os.rename(tmp, self.path)
        except OSError:
            self.store_errors += 1  # applied all the same; the next boot has the older one
            _remove(tmp)
        self.applied = v
        self.applied_count += 1
        return p

    def counters(self):
        return {"cfg_applied": self.applied_count, "cfg_stale": self.stale, "cfg_bad": self.bad,
                "cfg_oversized": self.oversized, "cfg_store_errors": self.store_errors}
