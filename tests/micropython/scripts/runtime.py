# The MQTT link on MicroPython, with a fake umqtt client, through an outage, and its TLS refusal.
# (The runtime's other parts are tested on both interpreters from one source:
# tests/firmware/test_runtime_parts.py.)
import json

from _check import MP, check, eq, done, tmpdir
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from firmware.runtime.backoff import Backoff
from firmware.runtime.link import MqttLink

D = tmpdir("runtime")


class Clock:
    t = 1795420000

    def time(self):
        return self.t

    def quality(self):
        return "synced"


class Client:
    fail = False
    stored = {}
    made = 0

    def __init__(self, *a):
        Client.made += 1
        self.inbox = []
        self.subs = []

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, t, m, retain, qos):
        self.will = (t, m, retain, qos)

    def _io(self):
        if Client.fail:
            raise OSError(104)

    def connect(self, clean, timeout):
        self._io()

    def subscribe(self, t, qos):
        self._io()
        self.subs.append(t)

    def publish(self, t, m, retain=False, qos=0):
        self._io()
        if t.endswith("up/clock"):
            for e in json.loads(m)["events"]:
                Client.stored[e["seq"]] = 1
            ack = 0
            while ack + 1 in Client.stored:
                ack += 1
            self.inbox.append((b"tg/v1/r1/down/ack", b'{"ack": %d, "rejected": []}' % ack))

    def check_msg(self):
        self._io()
        if self.inbox:
            t, m = self.inbox.pop(0)
            self.cb(t, m)
            return 0x30
        return None

    def ping(self):
        self._io()


clock = Clock()
core = ReaderCore("r1", Journal(D + "/j", segment_records=8), Planning(), clock)
link = MqttLink(core, Client, "r1", "broker", backoff=Backoff(100, 400))
now = 0
for i in range(400):
    now += 50
    clock.t += 1
    if i < 300 and i % 3 == 0:
        core.tap("%08X" % (0x10000000 + i % 40))
    Client.fail = 100 <= i < 140 or 200 <= i < 210
    link.poll(now)
eq(sorted(Client.stored), list(range(1, core.journal.last_seq + 1)), "all stored")
eq(core.journal.depth, 0, "all acked")
check(link.drops >= 1 and link.connects >= 3, "reconnected")

# -- TLS: a link holding a CA it cannot use never connects in clear (docs/firmware.md, TLS)
made = Client.made
tl = MqttLink(core, Client, "r1", "broker", 8883, backoff=Backoff(100, 400),
              ca="-----BEGIN CERTIFICATE-----\nbm8=\n-----END CERTIFICATE-----\n")
tl.poll(0)
eq((Client.made, tl.failures, tl.status(), tl.tls()), (made, 1, "down", True), "tls: no clear")
# the WebAssembly port has no ssl module; CPython has one, and refuses this CA
why = "no ssl module" if MP else "cannot load the CA certificate"
check(tl.last_error.startswith("ValueError: ") and why in tl.last_error, tl.last_error)
done()
