"""The reader's settings: one small JSON file, replaced atomically (write .tmp, rename).

A missing file gives the defaults. An unreadable or invalid one also gives the defaults and
sets `status` to "settings_corrupt" (shown by the console's `status`): the box keeps running
and a technician rewrites the settings, instead of a crash loop at every boot.
"""
import json
import os

DEFAULTS = {"id": "", "ssid": "", "password": "", "host": "", "port": 1883, "user": "",
            "pass": "", "ntp": "pool.ntp.org", "health_s": 60, "board": ""}
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def check(key, value):
    """The value to store for `key` (ints parsed from text), or raise ValueError(reason)."""
    if key not in DEFAULTS:
        raise ValueError("unknown setting %s" % key)
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
    if len(value) > 64:
        raise ValueError("%s over 64 characters" % key)
    if key == "id" and value and any(c not in _ID_CHARS for c in value):
        raise ValueError("id: only A-Z a-z 0-9 - _")
    return value


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

    def update(self, pairs):
        """Validate every (key, value) first, then store them all and save once."""
        checked = [(k, check(k, v)) for k, v in pairs]
        for k, v in checked:
            self.values[k] = v
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(self.values))
            f.flush()
        os.rename(tmp, self.path)
        self.status = "ok"
