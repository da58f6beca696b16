"""The reader's settings: one small JSON file, replaced atomically (write .tmp, rename).

A missing file gives the defaults. An unreadable or invalid one also gives the defaults and
sets `status` to "settings_corrupt" (shown by the console's `status`): the box keeps running
and a technician rewrites the settings, instead of a crash loop at every boot.

Provisioning stages a whole new document next to the file (`<path>.new`, written atomically
and read back), answers its `digest`, and only a `commit` naming that digest renames it over
the settings: until then the box runs on, and reboots with, its old settings. `digest` is the
one definition of "these exact values", shared with the tool and the fleet (docs/firmware.md).
"""
import hashlib
import json
import os

DEFAULTS = {"id": "", "ssid": "", "password": "", "host": "", "port": 1883, "user": "",
            "pass": "", "ntp": "pool.ntp.org", "health_s": 60, "board": "", "ca": "",
            "mkey": "",  # mkey: the maintenance key, 64 hex digits (firmware/maintcode.py)
            "brokers": []}  # [[host, port], ...]: when not empty, used instead of host, port
_BROKERS_MAX = 8
_HOST_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
_CA_MAX = 1536  # the broker's CA certificate (PEM): an EC P-256 one is about 600 characters
_PEM = "-----BEGIN CERTIFICATE-----"
_HEX = "0123456789abcdef"
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _brokers(value):
    """[[host, port], ...] from a list of pairs, or from the console's text
    "host:port,host:port"; "" or [] for none."""
    if type(value) is str:
        pairs = []
        for item in value.split(",") if value else ():
            i = item.rfind(":")
            pairs.append([item[:i], item[i + 1:]] if i > 0 else None)
        value = pairs
    why = "brokers: up to %d [host, port] pairs (text: host:port,host:port)" % _BROKERS_MAX
    if type(value) not in (list, tuple) or len(value) > _BROKERS_MAX:
        raise ValueError(why)
    out = []
    for pair in value:
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise ValueError(why)
        host, port = pair
        if (type(host) is not str or not 1 <= len(host) <= 64
                or any(c not in _HOST_CHARS for c in host)):
            raise ValueError("brokers: a host is a name or an IPv4 address (A-Z a-z 0-9 . -)")
        if type(port) is str and port.isdigit():
            port = int(port)
        if type(port) is not int or not 1 <= port <= 65535:
            raise ValueError("brokers: a port is 1 to 65535")
        out.append([host, port])
    return out


def check(key, value):
    """The value to store for `key` (ints parsed from text), or raise ValueError(reason)."""
    if key not in DEFAULTS:
        raise ValueError("unknown setting %s" % key)
    if key == "brokers":
        return _brokers(value)
    if type(DEFAULTS[key]) is int:
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ValueError("%s must be an integer" % key)
        if key == "port" and not 1 <= value <= 65535:
            raise ValueError("port must be 1 to 65535")
        if key == "health_s" and not 10 <= value <= 86400:
            raise ValueError("health_s must be 10 to 86400")
        return value
    if type(value) is not str:
        raise ValueError("%s must be text" % key)
    if key == "ca":  # set: the box speaks TLS and verifies the broker against it
        if len(value) > _CA_MAX:
            raise ValueError("ca over %d characters" % _CA_MAX)
        if value and not value.startswith(_PEM):
            raise ValueError("ca must be a PEM certificate")
        return value
    if len(value) > 64:
        raise ValueError("%s over 64 characters" % key)
    if key == "id" and value and any(c not in _ID_CHARS for c in value):
        raise ValueError("id: only A-Z a-z 0-9 - _")
    if key == "mkey" and value and (len(value) != 64 or any(c not in _HEX for c in value)):
        raise ValueError("mkey: 64 lower-case hex digits")
    return value


def canonical(values, keys=None):
    """One line per key, sorted: `key=i<decimal>`, `key=s<hex of the UTF-8 text>`, or for the
    broker list `key=l<hex of "host:port,host:port">`. Hex, so no character of a value can be
    confused with the framing."""
    out = []
    for k in sorted(values if keys is None else keys):
        v = values[k]
        if type(v) is int:
            out.append("%s=i%d\n" % (k, v))
        elif type(v) in (list, tuple):
            out.append("%s=l%s\n" % (k, _hex(",".join("%s:%d" % (h, p) for h, p in v))))
        else:
            out.append("%s=s%s\n" % (k, _hex(v)))
    return "".join(out).encode()


def _hex(text):
    # MicroPython 1.27's b"".hex() is b"", not "": an empty value would digest as "b''"
    b = text.encode()
    return b.hex() if b else ""


def digest(values, keys=None):
    """sha256 (hex) of canonical(values, keys)."""
    return hashlib.sha256(canonical(values, keys)).digest().hex()


def _write(path, text):
    """Replace `path` atomically: write and flush a .tmp, then rename it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        if hasattr(os, "fsync"):  # CPython: past the page cache; littlefs commits on close
            os.fsync(f.fileno())
    os.rename(tmp, path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


class Settings:
    def __init__(self, path):
        self.path = path
        self.status = "ok"  # or "settings_corrupt"
        self.values = dict(DEFAULTS)
        self.load()

    def load(self):
        self.values = dict(DEFAULTS)
        try:
            with open(self.path) as f:
                raw = f.read()
        except OSError:
            self.status = "ok"  # first boot: defaults
            return
        try:
            data = json.loads(raw)
            if type(data) is not dict:
                raise ValueError("not an object")
            for k in data:
                if k in DEFAULTS:  # unknown keys: a newer firmware's, ignored
                    self.values[k] = check(k, data[k])
            self.status = "ok"
        except Exception:
            self.values = dict(DEFAULTS)
            self.status = "settings_corrupt"

    def get(self, key):
        return self.values[key]

    def set(self, key, value):
        """Validate, store and save one setting; raises ValueError with the reason."""
        self.values[key] = check(key, value)
        self.save()

    # -- provisioning: stage, read back, commit ----------------------------------------------
    def stage(self, doc):
        """Validate `doc` (a dict of settings), write the current settings with it applied to
        <path>.new, and return what reads back from that file. Raises ValueError(reason); the
        reason never holds a value."""
        if type(doc) is not dict or not doc:
            raise ValueError("the settings document must be a non-empty object")
        merged = dict(self.values)
        for k in doc:
            merged[k] = check(k, doc[k])
        pw = merged["password"]
        if "password" in doc and pw and not 8 <= len(pw) <= 63:
            raise ValueError("a WPA password has 8 to 63 characters")
        _write(self.path + ".new", json.dumps(merged))
        return self.staged()

    def staged(self):
        """The staged settings as read back from flash, or ValueError."""
        try:
            with open(self.path + ".new") as f:
                data = json.loads(f.read())
            out = dict(DEFAULTS)
            for k in data:
                if k in DEFAULTS:
                    out[k] = check(k, data[k])
            return out
        except OSError:
            raise ValueError("nothing staged")
        except Exception:
            raise ValueError("the staged settings do not read back")

    def commit(self):
        """The staged file becomes the settings (one rename), loaded now."""
        self.staged()
        os.rename(self.path + ".new", self.path)
        self.load()

    def drop(self):
        _remove(self.path + ".new")

    def update(self, pairs):
        """Validate every (key, value) first, then store them all and save once."""
        checked = [(k, check(k, v)) for k, v in pairs]
        for k, v in checked:
            self.values[k] = v
        self.save()

    def save(self):
        _write(self.path, json.dumps(self.values))
        self.status = "ok"
