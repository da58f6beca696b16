"""`telegest device provision`: register a reader in the fleet, give it its identity and broker
credentials over the serial console, and check that it connects.

The fleet part goes through the REST API (the technician's API key); the credentials are
shown by the fleet once and go straight to the box, never to the screen. Re-running after a
failure is safe: an existing device is provisioned again (new credentials, the old ones stop
working at once), and every setting is written again.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tools.errors import TelegestError
from tools.field.console import ConsoleError, ReaderConsole


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
                                "and the network") from e


def _fleet_step(api: FleetApi, ident: str, client_id: int | None) -> dict:
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
    code, creds = api.call("POST", f"/api/v1/devices/{ident}/provision")
    if code == 403:
        raise TelegestError("this API key may not provision devices (admin or technician "
                            "only)")
    if code != 200:
        raise TelegestError(f"the fleet refused to provision {ident} ({code}): "
                            f"{creds.get('detail')}")
    return creds


def provision(url: str, api: FleetApi, ident: str, broker_host: str, broker_port: int,
              client_id: int | None = None, wifi: tuple[str, str] | None = None,
              baud: int = 115200, wait_s: float = 30.0, say=print) -> dict:
    """Returns the reader's `broker` answer once it is connected with its new identity."""
    with ReaderConsole(url, baud) as con:
        status = con.command("status")  # the box answers before the fleet changes anything
        say(f"reader on {url}: firmware {status.get('fw')}, mode {status.get('mode')}")
        creds = _fleet_step(api, ident, client_id)
        say(f"fleet: {ident} provisioned ({'broker-enforced' if creds.get('broker_enforced') else 'anonymous broker'})")
        if wifi:
            con.command(f'wifi set "{wifi[0]}" "{wifi[1]}"')
        for key, value in (("host", broker_host), ("port", broker_port), ("id", ident),
                           ("user", creds["username"]), ("password", creds["password"])):
            con.command(f'broker set {key} "{value}"')
        say("reader: identity, credentials and broker written")
        broker = con.command("broker")
        if broker.get("reboot_needed"):
            con.command("reboot")
            say("reader: rebooting to take its new identity...")
        deadline = time.monotonic() + wait_s
        last = None
        while time.monotonic() < deadline:
            try:
                broker = con.command("broker")
                status = con.command("status")
            except ConsoleError as e:  # rebooting: the console is away for a moment
                last = str(e)
                time.sleep(1)
                continue
            last = f"wifi {status.get('wifi')}, mqtt {status.get('mqtt')}"
            if status.get("mqtt") == "up" and broker.get("id_setting") == ident \
                    and not broker.get("reboot_needed"):
                say(f"reader: connected to {broker_host}:{broker_port} as {ident}")
                return broker
            time.sleep(0.5)
    raise TelegestError(f"the reader did not connect to the broker within {wait_s:g} s "
                        f"({last}). Check the Wi-Fi, the broker address, and `telegest device "
                        f"console {url} status`; running provision again is safe")
