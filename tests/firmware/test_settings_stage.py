"""The console's settings commands and the settings store's stage / commit (firmware/runtime/
console.py, settings.py), on CPython and on MicroPython from one source: a document as the tool
encodes it (tools.field.provision.encode; test_settings_host.py checks these literals against
the tool) with every awkward character is staged on flash, read back, answered with the tool's
own digest, and committed exactly; no answer quotes a value."""
import binascii
import json
import os

from firmware.runtime.console import Console
from firmware.runtime.settings import Settings, canonical, digest
from tests.firmware.support import tmpdir

# a broker CA as `telegest device provision --ca` sends it (PEM, newlines and all)
CA = ('-----BEGIN CERTIFICATE-----\n'
      'MIIBpjCCAU2gAwIBAgIULAqaPydl4dshvyxdn3+zckOdr0IwCgYIKoZIzj0EAwIw\n'
      'MDERMA8GA1UECgwIdGVsZWdlc3QxGzAZBgNVBAMMEnRlbGVnZXN0IGJyb2tlciBD\n'
      'QTAeFw0yNjEyMDUyMTIxMTFaFw0zNjEyMDIyMTIxMTFaMDAxETAPBgNVBAoMCHRl\n'
      'bGVnZXN0MRswGQYDVQQDDBJ0ZWxlZ2VzdCBicm9rZXIgQ0EwWTATBgcqhkjOPQIB\n'
      'BggqhkjOPQMBBwNCAAQIrVyFCVOYoxdDmcpD0C+nMVmqch5HAQCE4f4vMjm0X79j\n'
      'Oh+UAqaa4UOne3T4A9zRv/fUVlw34P4g/OQmR1t5o0UwQzASBgNVHRMBAf8ECDAG\n'
      'AQH/AgEAMA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQU35BsoUZSegVnHryCFka6\n'
      'N2Dd3wQwCgYIKoZIzj0EAwIDRwAwRAIgcxgXpf0YdWZ4WAFxYB2nXgsJg4UomZgh\n'
      'Y8vriaFn7GcCIHd12EielSQDnT5UwzlhLxvJruJ+JwTs2WPI2suF6JI6\n'
      '-----END CERTIFICATE-----\n')
VALUES = {"id": "box-7", "host": "mqtt.example", "port": 8883, "user": "box-7.2",
          "pass": 'pw\\"\'; =é€🙂x', "ssid": 'Box "Maison" \\ é',
          "password": 'a\\b"c\'d e;f=gé€🙂', "ca": CA}
# the tool's JSON text of VALUES (ensure_ascii=False, no spaces), which the tool hex-encodes
DOC = ('{"id":"box-7","host":"mqtt.example","port":8883,"user":"box-7.2","pass'
       '":"pw\\\\\\"\'; =é€🙂x","ssid":"Box \\"Maison\\" \\\\ é","password":"a\\\\b\\"c\'d '
       'e;f=gé€🙂"'
       + ',"ca":' + json.dumps(CA) + "}")
HEX = binascii.hexlify(DOC.encode()).decode()
# digest(VALUES) and digest(VALUES, ("user", "pass")), by the tool
DIGEST = "bb360e0b72d55475c5558bea1d2a61d3db706b4318164efcd6e38c694acaa903"
BROKER_DIGEST = "e03145f76d836c01c286be9c2e6d490f63a50f55a2ab99fa7ec49b2bfbcc8cbe"


class Wifi:
    ssid, password, drops = "", "", 0

    def __init__(self):
        self.joined = []

    def status(self):
        return "down"

    def rssi(self):
        return None

    def ip(self):
        return None

    def configure(self, ssid, pw):
        self.joined.append((ssid, pw))


D = P = None  # the test's folder and settings file


class Rt:
    def __init__(self):
        self.settings = Settings(P)
        self.wifi = Wifi()
        self.device_id = "r1"
        self.reboot_needed = False
        self.applied = 0
        self.link = None

    def apply_broker(self):
        self.applied += 1


def send(c, text, size=160):
    for i in range(0, len(text), size):
        a = json.loads(c.handle("settings chunk " + text[i:i + size]))
        assert a["received"] == min(i + size, len(text))


def test_the_digest_is_the_tools_on_both_interpreters():
    assert canonical({"port": 1883, "pass": "a\n"}) == b"pass=s610a\nport=i1883\n", "canonical"
    assert digest(VALUES) == DIGEST, "the tool's digest"
    assert digest(VALUES, ("user", "pass")) == BROKER_DIGEST, "the broker digest"


def test_staged_read_back_committed_exactly_and_bad_documents_refused():
    global D, P
    D = tmpdir("settings_stage")
    P = D + "/settings.json"
    rt = Rt()
    rt.settings.update((("ssid", "old-net"), ("password", "old-pass-1"), ("pass", "old-broker")))
    before = open(P).read()
    c = Console(rt)

    # -- stage: written beside the settings, read back, digests answered; nothing applied yet
    assert c.handle("settings drop") == "ok", "drop"
    send(c, HEX)
    a = json.loads(c.handle("settings stage"))
    assert a["digest"] == DIGEST, "staged digest"
    assert a["broker_digest"] == BROKER_DIGEST, "broker digest"
    assert a["staged"] == sorted(VALUES), "keys"
    assert open(P).read() == before, "settings untouched while staged"
    assert "settings.json.new" in os.listdir(D), "staged file"
    assert "settings.json.tmp" not in os.listdir(D), "tmp renamed"
    assert json.loads(c.handle("settings"))["pending"] is True, "pending"
    assert (rt.wifi.joined, rt.applied) == ([], 0), "not applied"

    # -- a commit with another digest changes nothing
    assert c.handle("settings commit " + "0" * 64) == (
        "error: the digest does not match the staged settings; nothing changed")
    assert open(P).read() == before, "still untouched"

    # -- commit: the staged file becomes the settings, applied, every character exact
    r = json.loads(c.handle("settings commit " + DIGEST))
    assert r["committed"] == sorted(VALUES), "committed"
    for k in VALUES:
        assert rt.settings.get(k) == VALUES[k], "exact " + k
    assert Settings(P).values == rt.settings.values, "read again from flash"
    assert rt.wifi.joined == [(VALUES["ssid"], VALUES["password"])], "joined with it"
    assert rt.applied == 1, "broker applied"
    assert r["reboot_needed"] is True, "new id: reboot"
    assert "settings.json.new" not in os.listdir(D), "staged file renamed"
    assert c.handle("settings commit " + DIGEST) == (
        "error: nothing staged (settings stage first)"), "commit once"

    # -- bad documents: refused, settings unchanged, no value quoted
    after = open(P).read()
    secret = VALUES["password"]
    bad = [("zz", "error: a chunk is hex digits only; the document was dropped"),
           ("abc", "error: the settings document is not whole hex (a chunk was lost?)"),
           ("ff" + HEX[2:], "error: the settings document is not UTF-8 JSON"),
           (json.dumps({"password": "short"}).encode().hex(),
            "error: a WPA password has 8 to 63 characters"),
           (json.dumps({"port": secret}).encode().hex(), "error: port must be an integer"),
           (json.dumps({"colour": secret}).encode().hex(), "error: unknown setting colour"),
           (json.dumps([secret]).encode().hex(),
            "error: the settings document must be a non-empty object")]
    for text, want in bad:
        ans = c.handle("settings chunk " + text)
        if not ans.startswith("error"):
            ans = c.handle("settings stage")
        assert ans == want, "refused"
        assert secret not in ans, "no value quoted"
        assert open(P).read() == after, "unchanged"
    assert c.handle("settings stage") == (
        "error: no settings document received (settings chunk <hex> first)"), "empty"
    assert c.handle("settings chunk " + "0" * 150 + " x") == (
        "error: usage: settings | settings drop | settings chunk <hex> | settings stage | "
        "settings commit <digest>"), "usage"
    for _ in range(4096 // 150):
        c.handle("settings chunk " + "30" * 75)
    assert c.handle("settings chunk " + "30" * 75) == (
        "error: settings document over 4096 hex digits; dropped"), "too long"
    assert json.loads(c.handle("settings"))["received"] == 0, "dropped"
    # the console's answers about the settings never hold a secret
    for cmd in ("wifi", "broker", "settings", "help"):
        ans = c.handle(cmd)
        assert not ans.startswith("error"), cmd
        assert secret not in ans and VALUES["pass"] not in ans, cmd
