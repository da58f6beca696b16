"""`telegest device provision` in two phases, against a fleet whose broker enforces identities
(a real mosquitto with dynamic security) and the real firmware console: interrupted at each
phase, the box keeps its settings and its old credentials keep working at the broker; every
character of a Wi-Fi password arrives exactly; no secret is ever printed."""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import pytest

from firmware.runtime.settings import Settings
from tests.field.test_provision import client_id, technician_key
from tests.fleetops.conftest import login as broker_login
from tests.helpers import READY_S, ROOT
from tools.broker import Broker, free_port, wait_port
from tools.errors import TelegestError
from tools.field.provision import FleetApi, provision

pytestmark = pytest.mark.virtual_hw

IDENT = "r-0050"
HOST = "mqtt.example"
# every character that used to be dropped, refused or mangled, and UTF-8 of 2, 3 and 4 bytes
WIFI_PASSWORDS = ["a\\b\"c'd e;f=gé€🙂", "\\\\\\\\\"\"\"\"", "🙂" * 8,
                  "".join(chr(c) for c in range(0x20, 0x5F))]  # 63 printable ASCII
WIFI_SSID = 'Box "Maison" \\ é;='


class PowerCut(BaseException):
    """The technician's laptop dies: nothing after this point runs (no clean-up at all)."""


def cut_at(prefix: str, said: list[str]):
    def say(line: str) -> None:
        said.append(line)
        if line.startswith(prefix):
            raise PowerCut(prefix)
    return say


@dataclass
class SpyApi(FleetApi):
    """The real API client; it notes the staged credentials (to show the broker refuses them)
    and can lose the network for one route."""

    staged: list[dict] = field(default_factory=list)
    broken: str | None = None

    def call(self, method, path, body=None):
        if self.broken and path.endswith(self.broken):
            return FleetApi("http://127.0.0.1:9", self.key, 2).call(method, path, body)
        code, out = super().call(method, path, body)
        if path.endswith("/provision/stage") and code == 200:
            self.staged.append(out)
        return code, out


class NoisyLine:
    """A TCP relay to the console that changes `old` into `new` in each line sent to the box:
    a noisy serial line that still carries valid hex."""

    def __init__(self, url: str, old: bytes, new: bytes):
        self.target = int(url.rsplit(":", 1)[1])
        self.old, self.new, self.hits = old, new, 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        client, _ = self.srv.accept()
        box = socket.create_connection(("127.0.0.1", self.target))
        pending = b""
        with client, box:
            while not self._stop:
                ready = select.select([client, box], [], [], 0.1)[0]
                if client in ready:
                    data = client.recv(4096)
                    if not data:
                        return
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if self.old in line:
                            self.hits += 1
                            line = line.replace(self.old, self.new)
                        box.sendall(line + b"\n")
                if box in ready:
                    data = box.recv(4096)
                    if not data:
                        return
                    client.sendall(data)

    def close(self):
        self._stop = True
        self.srv.close()


def login(broker, username: str, password: str) -> str:
    return broker_login(broker, username, password, IDENT)


@pytest.fixture
def dynsec_fleet(demo, tmp_path):
    """`telegest fleet api` driving a mosquitto with dynamic security, as deployed."""
    broker = Broker("mosquitto", workdir=tmp_path / "secured", auth=True,
                    purpose="two-phase provisioning tests").start()
    port = free_port()
    log_path = tmp_path / "fleet-api.log"
    env = {**os.environ, "TELEGEST_DYNSEC_USERNAME": broker.admin[0],
           "TELEGEST_DYNSEC_PASSWORD": broker.admin[1], "TELEGEST_MQTT_HOST": broker.host,
           "TELEGEST_MQTT_PORT": str(broker.port)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "fleet", "api", "--db",
                                 demo[0], "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        if not wait_port("127.0.0.1", port, READY_S):
            raise AssertionError(log_path.read_text())
        yield f"http://127.0.0.1:{port}", broker, log_path
    finally:
        proc.terminate()
        proc.wait(10)
        broker.stop()


def _forms(secret: str) -> list[str]:
    """A secret as it could leak: itself, its JSON and repr escapes, its UTF-8 hex."""
    return [secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], secret.encode().hex()]


def assert_no_secret(texts: list[str], secrets: list[str]) -> None:
    blob = "\n".join(texts)
    for s in secrets:
        for form in _forms(s):
            assert form not in blob, f"a secret leaked ({len(s)} characters)"


def test_interrupted_at_each_phase_the_old_credentials_still_work(demo, dynsec_fleet,
                                                                  console_server, capsys):
    url, broker, api_log = dynsec_fleet
    api = SpyApi(url, technician_key(demo[0]))
    said: list[str] = []
    errors: list[str] = []
    kw = dict(client_id=client_id(demo[0]), wifi=("maison", WIFI_PASSWORDS[0]), wait_s=20)

    provision(console_server.url, api, IDENT, HOST, 8883, say=said.append, **kw)
    assert console_server.boots == 2, "rebooted once to take its identity"
    settings = console_server.rt.settings  # the box's, from now on (no more reboots)
    old = (settings.get("user"), settings.get("pass"))
    assert login(broker, *old) == "Success"
    secrets = [old[1], WIFI_PASSWORDS[0]]

    def kept(what: str) -> None:
        assert (settings.get("user"), settings.get("pass"), settings.get("host")) == \
            (*old, HOST), what
        assert login(broker, *old) == "Success", what
        staged = api.staged[-1]
        secrets.append(staged["password"])
        assert login(broker, staged["username"], staged["password"]) == "Not authorized", what

    def staged_in_fleet() -> bool:
        return api.call("GET", f"/api/v1/devices/{IDENT}")[1]["staged_expires_at"] is not None

    # 1. the laptop dies right after the fleet staged the credentials
    with pytest.raises(PowerCut):
        provision(console_server.url, api, IDENT, HOST, 8883,
                  say=cut_at("fleet: new credentials staged", said), **kw)
    kept("after stage")
    assert staged_in_fleet(), "left to expire"

    # 2. ... after the box wrote and read back its settings, before the fleet confirmed
    with pytest.raises(PowerCut):
        provision(console_server.url, api, IDENT, HOST, 8883,
                  say=cut_at("reader: settings written", said), **kw)
    kept("after write")
    assert settings.staged()["pass"] == api.staged[-1]["password"], "staged on the box only"

    # 3. the network drops just before the confirm: both sides abandon
    api.broken = "/provision/confirm"
    with pytest.raises(TelegestError) as e:
        provision(console_server.url, api, IDENT, HOST, 8883, say=said.append, **kw)
    api.broken = None
    errors.append(str(e.value))
    assert "cannot reach the fleet" in str(e.value)
    assert "the box keeps its old settings" in str(e.value)
    kept("confirm unreachable")
    assert not staged_in_fleet()
    with pytest.raises(ValueError, match="nothing staged"):
        settings.staged()

    # 4. noise on the serial line: the box stores another host; its digest gives it away
    noisy = NoisyLine(console_server.url, HOST[:4].encode().hex().encode(),
                      b"mqtu".hex().encode())
    try:
        with pytest.raises(TelegestError) as e:
            provision(noisy.url, api, IDENT, HOST, 8883, say=said.append, **kw)
    finally:
        noisy.close()
    errors.append(str(e.value))
    assert noisy.hits == 1
    assert "digest does not match" in str(e.value) and "keeps its old settings" in str(e.value)
    kept("wrong digest")
    assert not staged_in_fleet()

    # 5. nothing goes wrong: the new credentials work, every earlier one is refused
    provision(console_server.url, api, IDENT, HOST, 8883, say=said.append, **kw)
    assert console_server.boots == 2 and console_server.rt.settings is settings
    new = (settings.get("user"), settings.get("pass"))
    assert new[0] != old[0] and new[1] not in secrets
    assert login(broker, *new) == "Success"
    assert login(broker, *old) == "Not authorized"
    for staged in api.staged[:-1]:
        assert login(broker, staged["username"], staged["password"]) == "Not authorized"
    secrets.append(new[1])

    out = capsys.readouterr()
    assert_no_secret(said + errors + console_server.transcript
                     + [out.out, out.err, api_log.read_text(errors="replace")], secrets)
    assert any(s.startswith("fleet: the box's digest confirmed") for s in said)


@pytest.mark.parametrize("wifi_password", WIFI_PASSWORDS)
def test_every_character_of_a_wifi_password_arrives_exactly(demo, api_server, console_server,
                                                            wifi_password, capsys):
    said: list[str] = []
    provision(console_server.url, FleetApi(api_server, technician_key(demo[0])), IDENT, HOST,
              1883, client_id=client_id(demo[0]), wifi=(WIFI_SSID, wifi_password), wait_s=20,
              say=said.append)
    s = console_server.rt.settings
    assert (s.get("ssid"), s.get("password")) == (WIFI_SSID, wifi_password)
    assert console_server.hw.wlan.connects[-1] == (WIFI_SSID, wifi_password), "joined with it"
    again = Settings(s.path)  # what the box reads at its next boot
    assert (again.status, again.get("ssid"), again.get("password")) == \
        ("ok", WIFI_SSID, wifi_password)
    out = capsys.readouterr()
    assert_no_secret(said + console_server.transcript + [out.out, out.err],
                     [wifi_password, s.get("pass")])


def test_a_refused_wifi_password_is_not_quoted_and_changes_nothing(demo, api_server,
                                                                   console_server):
    api = FleetApi(api_server, technician_key(demo[0]))
    before = dict(console_server.rt.settings.values)
    said: list[str] = []
    short = "é\"\\'; =🙂"[:7]
    with pytest.raises(TelegestError) as e:
        provision(console_server.url, api, IDENT, HOST, 1883, client_id=client_id(demo[0]),
                  wifi=("maison", short), say=said.append)
    msg = str(e.value)
    assert "a WPA password has 8 to 63 characters" in msg and "keeps its old settings" in msg
    assert console_server.rt.settings.values == before
    code, dev = api.call("GET", f"/api/v1/devices/{IDENT}")
    assert code == 200 and dev["status"] == "registered" and dev["staged_expires_at"] is None
    assert_no_secret(said + [msg] + console_server.transcript, [short])


def test_a_box_with_older_firmware_is_told_to_deploy_first(demo, api_server, console_server,
                                                           monkeypatch):
    # the firmware before two-phase provisioning: no `settings` command
    import firmware.runtime.console as console

    monkeypatch.setattr(console, "COMMANDS", tuple(c for c in console.COMMANDS
                                                   if c != "settings"))
    api = FleetApi(api_server, technician_key(demo[0]))
    with pytest.raises(TelegestError, match="deploy the current firmware first") as e:
        provision(console_server.url, api, IDENT, HOST, 1883, client_id=client_id(demo[0]),
                  say=lambda s: None)
    assert "keeps its old settings" in str(e.value)
    assert api.call("GET", f"/api/v1/devices/{IDENT}")[1]["staged_expires_at"] is None
