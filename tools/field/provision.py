"""`telegest device provision`: register a reader in the fleet, give it its identity, Wi-Fi and
broker credentials over the serial console, and check that it connects.

In two phases, so a box in service is never cut off (docs/technician.md, docs/operations.md):
1. the fleet *stages* new broker credentials (the old ones keep working);
2. the whole settings document goes to the box hex-encoded (every character of a Wi-Fi
   password travels exactly), the box writes it to flash beside its settings, reads it back and
   answers its digest, which must be the one computed here;
3. the fleet *confirms* with the box's digest of the broker credentials: only then are the new
   ones active and the old ones deleted; then the box commits the staged settings.
Any failure before 3 abandons the staged credentials and drops the box's staged settings: the
box keeps its old settings and the fleet its old credentials, and running again is safe.

No secret (Wi-Fi password, broker password, or their hex) is ever in a progress line, an
error or an exception: errors name the step, never the line sent.

With the broker's CA certificate (`ca`, PEM) the document also sets the box's `ca`: it then
speaks TLS and verifies the broker against that CA only (docs/security.md "Boxes speak TLS").
The CA travels in the staged settings, so it is read back and digested with the rest.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.runtime.settings import digest
from tools.errors import TelegestError
from tools.field.console import ConsoleError, ReaderConsole

CHUNK = 160  # hex digits per console line: the box reads lines of up to 200 bytes
KEPT = ("Nothing was changed: the box keeps its old settings and the fleet its old broker "
        "credentials; running provision again is safe")


@dataclass
class FleetApi:
    base: str
    key: str
    timeout: float = 10.0

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.base.rstrip("/") + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read() or b"{}").get("detail", "")
            except ValueError:
                detail = ""
            return e.code, {"detail": detail}
        except OSError as e:
            raise TelegestError(f"cannot reach the fleet at {self.base}: {e}. Check --fleet "
                                "and the network") from None


def _register(api: FleetApi, ident: str, client_id: int | None) -> None:
    code, dev = api.call("GET", f"/api/v1/devices/{ident}")
    if code == 401:
        raise TelegestError("the fleet refused the API key (401): check --api-key")
    if code == 404:
        if client_id is None:
            raise TelegestError(f"device {ident} is not registered in the fleet: give "
                                "--client-id (the home where the box is installed)")
        code, dev = api.call("POST", "/api/v1/devices",
                             {"ident": ident, "kind": "reader", "client_id": client_id})
        if code not in (200, 201):
            raise TelegestError(f"the fleet refused to register {ident} ({code}): "
                                f"{dev.get('detail')}")
    elif code != 200:
        raise TelegestError(f"the fleet answered {code} for {ident}: {dev.get('detail')}")


def _stage(api: FleetApi, ident: str) -> dict:
    code, staged = api.call("POST", f"/api/v1/devices/{ident}/provision/stage",
                            {"reason": "telegest device provision"})
    if code == 403:
        raise TelegestError("this API key may not provision devices (admin or technician "
                            "only)")
    if code == 405 or (code == 404 and staged.get("detail") == "Not Found"):
        raise TelegestError("this fleet does not stage credentials (POST /provision/stage): "
                            "upgrade it before provisioning a box in service")
    if code != 200:
        raise TelegestError(f"the fleet refused to stage credentials for {ident} ({code}): "
                            f"{staged.get('detail')}")
    return staged


def _ask(con: ReaderConsole, line: str, step: str) -> Any:
    """The box's answer to `line`; errors name `step`, never the line (it may hold secrets)."""
    ans = con.ask(line)
    if ans.startswith("error: "):
        raise ConsoleError(f"the reader refused `{step}`: {ans[7:]}")
    if ans.startswith("{"):
        try:
            return json.loads(ans)
        except ValueError:
            raise ConsoleError(f"garbled answer to `{step}` (noise on the line? check the "
                               "baud rate, 115200)") from None
    return ans


def settings_document(ident: str, broker_host: str, broker_port: int, username: str,
                      password: str, wifi: tuple[str, str] | None,
                      ca: str | None = None,
                      brokers: list[tuple[str, int]] | None = None) -> dict:
    """`ca`: the broker's CA (PEM) for TLS, "" to clear it (in clear), None: left as it is.
    `brokers`: several addresses (a cluster's nodes) the box tries in turn; host and port are
    then the first of them."""
    doc: dict[str, Any] = {"id": ident, "host": broker_host, "port": broker_port,
                           "user": username, "pass": password}
    if brokers and len(brokers) > 1:
        doc["brokers"] = [[h, p] for h, p in brokers]
    if wifi:
        doc["ssid"], doc["password"] = wifi
    if ca is not None:
        doc["ca"] = ca
    return doc


def encode(doc: dict) -> str:
    """The hex of the document's UTF-8 JSON: only 0-9 a-f on the serial line."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode().hex()


def write_settings(con: ReaderConsole, doc: dict, say=print) -> dict:
    """Send `doc` to the box, have it staged on flash and read back; returns the box's
    answer once its digest is the one of `doc`. The box's settings are not changed yet."""
    text = encode(doc)
    try:
        _ask(con, "settings drop", "settings drop")
    except ConsoleError as e:
        if "unknown command settings" in str(e):
            raise TelegestError("this box's firmware has no `settings` command (it predates "
                                "two-phase provisioning): deploy the current firmware first "
                                "(`telegest device deploy`)") from None
        raise
    for i in range(0, len(text), CHUNK):
        _ask(con, "settings chunk " + text[i:i + CHUNK], "settings chunk")
    answer = _ask(con, "settings stage", "settings stage")
    if not isinstance(answer, dict) or answer.get("digest") != digest(doc) \
            or answer.get("broker_digest") != digest(doc, ("user", "pass")):
        raise TelegestError("the reader stored something other than what was sent (its "
                            "digest does not match: noise on the serial line?)")
    say(f"reader: settings written to flash and read back ({len(text) // 2} bytes, digest "
        f"{answer['digest'][:12]}… matches)")
    return answer


def enter_maintenance(api: FleetApi, con: ReaderConsole, ident: str, say,
                      reason: str = "telegest device provision") -> None:
    """A locked box (it has a maintenance key) takes settings, and lets Ctrl-C reach its
    REPL, only in maintenance mode: a one-time code from the fleet (audited) opens it."""
    code, out = api.call("POST", f"/api/v1/devices/{ident}/maintenance-code",
                         {"reason": reason})
    if code != 200:
        raise TelegestError(f"the box's console is locked and the fleet refused a maintenance "
                            f"code ({code}): {out.get('detail')}")
    _ask(con, f"maint {out['code']}", "maint")
    say(f"reader: maintenance mode (code issued by the fleet, valid until "
        f"{str(out.get('expires_at'))[11:16]} UTC)")


def _give_up(api: FleetApi, con: ReaderConsole, ident: str, staging_id: str, say) -> None:
    """Best effort: the staged credentials are dropped on both sides (they expire anyway)."""
    try:
        code, _ = api.call("POST", f"/api/v1/devices/{ident}/provision/abandon",
                           {"staging_id": staging_id, "reason": "telegest device provision "
                                                                "failed"})
        say("fleet: staged credentials abandoned" if code == 200 else
            f"fleet: staged credentials left to expire ({code})")
    except TelegestError:
        say("fleet: unreachable, the staged credentials will expire on their own")
    say("reader: dropping its staged settings...")
    try:
        _ask(con, "settings drop", "settings drop")
    except TelegestError:
        say("reader: not answering; it never reads staged settings at boot")


def _commit(con: ReaderConsole, box_digest: str, ident: str) -> dict:
    last: TelegestError | None = None
    for _ in range(3):
        try:
            return _ask(con, f"settings commit {box_digest}", "settings commit")
        except TelegestError as e:
            last = e
            time.sleep(1)
    raise TelegestError(f"the fleet switched {ident} to its new credentials but the box did "
                        f"not take them ({last}); it cannot reach the broker until you run "
                        "provision again, which is safe")


def provision(url: str, api: FleetApi, ident: str, broker_host: str, broker_port: int,
              client_id: int | None = None, wifi: tuple[str, str] | None = None,
              baud: int = 115200, wait_s: float = 30.0, say=print,
              ca: str | None = None, brokers: list[tuple[str, int]] | None = None) -> dict:
    """Returns the reader's `broker` answer once it is connected with its new identity.
    `ca`, `brokers`: as settings_document's."""
    with ReaderConsole(url, baud) as con:
        status = _ask(con, "status", "status")  # the box answers before the fleet changes
        say(f"reader on {url}: firmware {status.get('fw')}, mode {status.get('mode')}")
        _register(api, ident, client_id)
        staged = _stage(api, ident)
        staging_id = staged["staging_id"]
        say(f"fleet: new credentials staged for {ident} until "
            f"{str(staged.get('expires_at'))[11:16]} UTC "
            f"({'broker-enforced' if staged.get('broker_enforced') else 'anonymous broker'}); "
            "the old ones work until the box confirms")
        try:
            if status.get("console") == "locked":
                enter_maintenance(api, con, ident, say)
            doc = settings_document(ident, broker_host, broker_port, staged["username"],
                                    staged["password"], wifi, ca, brokers)
            if staged.get("maint_key"):
                doc["mkey"] = staged["maint_key"]  # locks the box's console (docs/security.md)
            answer = write_settings(con, doc, say)
            code, out = api.call("POST", f"/api/v1/devices/{ident}/provision/confirm",
                                 {"staging_id": staging_id,
                                  "digest": answer["broker_digest"]})
            if code != 200:
                raise TelegestError(f"the fleet refused to confirm ({code}): "
                                    f"{out.get('detail')}")
        except KeyboardInterrupt:
            _give_up(api, con, ident, staging_id, say)
            raise TelegestError(f"interrupted. {KEPT}") from None
        except TelegestError as e:
            _give_up(api, con, ident, staging_id, say)
            raise TelegestError(f"{e}. {KEPT}") from None
        except Exception as e:  # never quote an unexpected exception: it may hold a value
            _give_up(api, con, ident, staging_id, say)
            raise TelegestError(f"unexpected {type(e).__name__} while provisioning. "
                                f"{KEPT}") from None
        say("fleet: the box's digest confirmed; the new credentials are active, the old "
            "ones deleted")
        committed = _commit(con, answer["digest"], ident)
        say("reader: new settings committed")
        if committed.get("reboot_needed"):
            _ask(con, "reboot", "reboot")
            say("reader: rebooting to take its new identity...")
        broker = _wait_connected(con, url, ident, broker_host, broker_port, wait_s, say)
        try:
            _ask(con, "exit", "exit")  # leaves maintenance mode now (an older box: no such command)
        except TelegestError:
            pass
        return broker


def default_ca(broker_port: int, up_data: str | Path = "var") -> Path | None:
    """`telegest up`'s CA when the box is sent to `up`'s TLS port (its credentials file says
    which), else None."""
    try:
        tls = json.loads((Path(up_data) / "broker-credentials.json").read_text()).get("tls")
        if tls and int(str(tls["broker"]).rpartition(":")[2]) == broker_port:
            return Path(tls["ca"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _wait_connected(con: ReaderConsole, url: str, ident: str, broker_host: str,
                    broker_port: int, wait_s: float, say) -> dict:
    start = time.monotonic()
    told = start
    last = None
    while time.monotonic() - start < wait_s:
        try:
            status = _ask(con, "status", "status")
            # rebooted into a locked console (docs/security.md): `broker` is refused, and the
            # status tells what is checked here (the id in use, mqtt, reboot_needed)
            locked = isinstance(status, dict) and status.get("console") == "locked"
            broker = {**status, "id_setting": status.get("id")} if locked \
                else _ask(con, "broker", "broker")
        except ConsoleError as e:  # rebooting: the console is away for a moment
            last = str(e)
            time.sleep(1)
            continue
        if not isinstance(broker, dict) or not isinstance(status, dict):
            last = "the reader is restarting"  # a boot line taken for an answer
            time.sleep(0.5)
            continue
        last = f"wifi {status.get('wifi')}, mqtt {status.get('mqtt')}"
        if status.get("mqtt") == "up" and broker.get("id_setting") == ident \
                and not broker.get("reboot_needed"):
            how = " over TLS, the broker verified against its CA" if status.get("tls") else ""
            say(f"reader: connected to {broker_host}:{broker_port} as {ident}{how}")
            return broker
        if time.monotonic() - told >= 2:
            told = time.monotonic()
            say(f"reader: waiting for the broker ({last}), "
                f"{wait_s - (told - start):.0f} s left")
        time.sleep(0.5)
    raise TelegestError(f"the reader did not connect to the broker within {wait_s:g} s "
                        f"({last}). Check the Wi-Fi, the broker address, and `telegest device "
                        f"console {url} status`; its settings and credentials are written, "
                        "running provision again is safe")
