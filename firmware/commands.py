"""down/cmd on the device: the fleet's commands, and the update download (down/ota).

    down/cmd   {"id": 7, "cmd": "ping"|"update"|..., "exp": <unix s>, ...}   (docs/protocol.md)
    down/ota   a chunk of the update being fetched (firmware/ota.py)
    up/ota     the device's chunk requests and update reports

`ping` answers {"id", "st": "ok", "fw"} on up/ota. A command this firmware does not handle
(block, wipe and reboot are done elsewhere or not yet) is counted, never an error. A command
past its `exp` is refused as expired. Everything else about updates is firmware/ota.py.
"""
import json

from firmware.codec import topic


class Commands:
    def __init__(self, device_id, clock, updater=None):
        self.clock = clock
        self.updater = updater  # firmware.ota.Updater, or None: updates refused
        self._cmd = topic(device_id, "down/cmd")
        self._ota = topic(device_id, "down/ota")
        self._up = topic(device_id, "up/ota")
        self._out = []
        self.bad = 0  # down/cmd that is not a JSON object with an int id and a str cmd
        self.unknown = 0  # commands this firmware does not handle
        self.expired = 0

    def handles(self, t):
        return t == self._cmd or t == self._ota

    def on_message(self, t, payload):
        """False when the message was not handled (malformed, unknown command)."""
        if t == self._ota:
            if self.updater is not None:
                self.updater.on_chunk(payload)
            return self.updater is not None
        try:
            cmd = json.loads(payload)
            id, kind = cmd["id"], cmd["cmd"]
            if type(id) is not int or type(kind) is not str:
                raise ValueError
        except Exception:
            self.bad += 1
            return False
        now = int(self.clock.time())
        exp = cmd.get("exp")
        if kind == "update" and self.updater is not None:
            self.updater.on_offer(cmd, now)
        elif type(exp) is int and exp < now:
            self.expired += 1
        elif kind == "ping":
            fw = self.updater.fw if self.updater is not None else ""
            self._out.append(('{"id":%d,"st":"ok","fw":"%s"}' % (id, fw)).encode())
        elif kind == "update":
            self._out.append(('{"id":%d,"st":"failed","why":"no_updater"}' % id).encode())
        else:
            self.unknown += 1
            return False
        return True

    def on_connect(self):
        if self.updater is not None:
            self.updater.connected = True

    def on_disconnect(self):
        if self.updater is not None:
            self.updater.connected = False

    @property
    def reboot(self):
        """The box should reset (an update was switched in, or a trial boot must roll back)."""
        return self.updater is not None and self.updater.reboot

    def health(self, rd, up_s):
        """With each health report: a trial boot is confirmed by a healthy one."""
        if self.updater is not None:
            self.updater.health(rd == "ok", up_s)

    def outgoing(self, now_ms):
        out = [(self._up, p, 1) for p in self._out]
        self._out = []
        if self.updater is not None:
            for kind, p in self.updater.outgoing(now_ms):
                out.append((self._up, p, 0 if kind == "get" else 1))
        return out

    def counters(self):
        out = {"cmd_bad": self.bad, "cmd_unknown": self.unknown, "cmd_expired": self.expired}
        if self.updater is not None:
            out.update(self.updater.counters())
        return out
