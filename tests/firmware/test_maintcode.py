"""The maintenance code (firmware/maintcode.py) and the console's lock, on CPython and on
MicroPython from one source: the hand-written HMAC-SHA256 gives what CPython's hmac gave for
these vectors (written down here; test_maintcode_host.py compares with hmac at random), codes
the fleet issued (CPython) check on the box, and the console stays locked (status only) until
`maint <code>`, then refuses a reused code, a code of another box, an expired one, and any
code while the clock is unsynced."""
import binascii
import json

from firmware import maintcode
from firmware.runtime.console import Console
from firmware.runtime.settings import Settings
from tests.firmware.fakes import Clock
from tests.firmware.support import tmpdir

KEY = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
IDENT = "tg-a1b2c3"
NOW = 1795426600
# issued by CPython: maintcode.issue(KEY, ident, now, nonce)[0]
CODE = "0749KQ-RGJ9S3-SQF4WC"  # (IDENT, NOW, 4242)
CODE_OTHER = "0749KQ-RGJ901-YNZ8C4"  # ("tg-other", NOW, 4242)
CODE_OLD = "0749K8-R004BA-7CAFV8"  # (IDENT, NOW - 3600, 1)
# hmac.new(key, msg, sha256) for key = bytes((i*7+3) & 255 for i < n),
# msg = bytes((i*13+5) & 255 for i < 3n+1): key lengths around the 64-byte block
HMACS = [
    (0, "c7059ba64f048cd5bcc942187cea6600ac109093c0a2c15185371595fe60ef6b"),
    (1, "251a319ac2d786b46daaa266924596c7b5d290a89245f2701ec74e22931a6c01"),
    (31, "a89f6aec1b80c08173ab76101e4a69f0639e254902e66d4fcafc2366c3a0971d"),
    (32, "10ca63582243b48e6a08460f9ce4da29d4b4e49ace0b21dde49d6808069fffb2"),
    (64, "ec5064dee9e21e598a50d4cf53fd0c4d582fb51e4ec84fda074e522c71eea37e"),
    (65, "417a969b1118cefa2ae978486c8e6ee8b93d1b841ac4a3f4119e43961dce3373"),
    (200, "11ed1d89d7e0dd691551fd14fd5fe96b43663b600fac661ca983569924a03b8c"),
]


def test_the_hmac_gives_what_cpython_gave():
    for n, want in HMACS:
        key = bytes([(i * 7 + 3) & 0xFF for i in range(n)])
        msg = bytes([(i * 13 + 5) & 0xFF for i in range(n * 3 + 1)])
        assert binascii.hexlify(maintcode.hmac_sha256(key, msg)).decode() == want, n


def test_the_fleets_code_checks_on_the_box_and_issuing_is_stable():
    key = binascii.unhexlify(KEY)
    assert maintcode.check(key, IDENT, CODE, NOW)[0] > NOW
    assert maintcode.issue(key, IDENT, NOW, 4242)[0] == CODE
    assert maintcode.issue(key, IDENT, NOW, 7)[0] == maintcode.issue(key, IDENT, NOW, 7)[0]


class Rt:
    def __init__(self, path):
        self.settings = Settings(path)
        self.clock = Clock(NOW)
        self.device_id = IDENT
        self.reboot_needed = False
        self.taps = None
        self.link = None
        self.applied = 0

    def apply_broker(self):
        self.applied += 1

    def status(self):
        return {"id": self.device_id, "tq": self.clock.quality()}


def test_the_console_is_locked_until_a_code_and_a_code_serves_once():
    d = tmpdir("maint_code")
    rt = Rt(d + "/settings.json")
    c = Console(rt)
    assert json.loads(c.handle("status"))["console"] == "open"  # no key: open
    assert c.handle("taps").startswith("{")
    rt.settings.set("mkey", KEY)
    assert json.loads(c.handle("status"))["console"] == "locked"  # a key: locked
    for cmd in ("taps", "broker", "wifi", "settings", "broker set host evil.example", "reboot"):
        assert c.handle(cmd).startswith("error: locked: "), cmd
    assert rt.settings.get("host") == ""  # nothing changed
    rt.clock.q = "unsynced"
    assert "unsynced" in c.handle("maint " + CODE)
    rt.clock.q = "rtc"
    assert "another box" in c.handle("maint " + CODE_OTHER)
    assert "expired" in c.handle("maint " + CODE_OLD)
    # the code opens it, typed in groups
    assert json.loads(c.handle("maint " + CODE.lower().replace("-", " ")))["maintenance"] is True
    assert json.loads(c.handle("status"))["console"] == "maintenance"
    assert c.handle("broker set host mqtt.example") == "ok"
    assert (rt.settings.get("host"), rt.applied) == ("mqtt.example", 1)  # and applied
    assert KEY not in c.handle("broker") and KEY not in c.handle("settings")
    assert json.loads(c.handle("exit")) == {"console": "locked"}
    assert c.handle("taps").startswith("error: locked")
    assert "already used" in c.handle("maint " + CODE)
    rebooted = Console(Rt(d + "/settings.json"))  # a reboot: the used codes are on flash
    assert "already used" in rebooted.handle("maint " + CODE)
    rt.clock.t = NOW + 31 * 60
    code = maintcode.issue(binascii.unhexlify(KEY), IDENT, NOW, 9)[0]
    assert "expired" in c.handle("maint " + code)
