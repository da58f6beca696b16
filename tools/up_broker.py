"""`telegest up`'s broker enforces identities as in production, plus one development role.

Mosquitto runs with `allow_anonymous false` and the dynamic security plugin (docs/operations.md):
the worker logs in as `fleet-worker`, the API drives the plugin as `fleet-admin`, and each demo
reader is provisioned through fleet.lifecycle, so it has its own client and password and a
block from the console drops it. Development only: the `simulator` role (granted to the demo
readers here, never by the fleet) lets a virtual reader hear `sim/v1/<device>/tap`, and the
`sim-control` client may publish there (`telegest device tap`).

The broker's identities are rebuilt at every start, from the database: a new
dynamic-security.json, new passwords, the demo readers provisioned again (those the fleet has
blocked, wiped or retired get no client, so the broker refuses them as the fleet does). Why
not keep the plugin's file across runs: `up`'s broker already starts empty (no persistence),
and a second store of identities would drift from the database (a database deleted or copied,
a run killed between the broker's change and the commit, a reader re-provisioned from the
console whose password no file holds). Rebuilt, the broker always agrees with the fleet.

Every password goes to one 0600 JSON file in the data folder (`CREDENTIALS`), read by
`telegest device sim --credentials` and `telegest device tap --credentials`:
{"broker": "127.0.0.1:1883", "admin": LOGIN, "worker": LOGIN, "sim-control": LOGIN,
 "devices": {"demo-r1": LOGIN, ...}} with LOGIN = {"username", "password"} (and "client_id").
"""
from __future__ import annotations

import json
from pathlib import Path

from fleet.private_files import write_private
from tools.broker import Broker
from tools.errors import TelegestError

CREDENTIALS = "broker-credentials.json"
SIMULATOR_ROLE = "simulator"
SIM_CONTROL = "sim-control"
SIM_TOPIC = "sim/v1/+/tap"
NOT_ADMITTED = ("blocked", "wiped", "retired")


def _acl(acltype: str, topic: str) -> dict:
    return {"acltype": acltype, "topic": topic, "allow": True}


def sim_commands(password: str) -> list[dict]:
    """The development role of the virtual readers and the client of `telegest device tap`."""
    return [{"command": "createRole", "rolename": SIMULATOR_ROLE,
             "acls": [_acl("subscribePattern", SIM_TOPIC),
                      _acl("publishClientReceive", SIM_TOPIC)]},
            {"command": "createRole", "rolename": SIM_CONTROL,
             # publish: `telegest device tap`; hear: `telegest device sim --board wasm`, which
             # puts the card on the board's PN532 simulator
             "acls": [_acl("publishClientSend", SIM_TOPIC), _acl("subscribePattern", SIM_TOPIC),
                      _acl("publishClientReceive", SIM_TOPIC)]},
            {"command": "createClient", "username": SIM_CONTROL, "password": password,
             "textname": "telegest up: telegest device tap",
             "roles": [{"rolename": SIM_CONTROL}]}]


def grant_simulator(ident: str) -> dict:
    return {"command": "addClientRole", "username": ident, "rolename": SIMULATOR_ROLE}


def login(username: str, password: str) -> dict:
    return {"username": username, "password": password}


def provision_readers(db_url: str, devices: list[str], control, who: str,
                      each=None) -> tuple[dict[str, dict], dict[str, str]]:
    """Provision the demo readers the fleet admits through `control` (a
    fleet.brokerauth.BrokerControl) as `who` (the command); `each(ident)` runs after each
    one. Returns their logins (username, password, client_id) and the readers refused with
    their status. BrokerAuthError and LifecycleError go to the caller."""
    from fleet.db import make_engine, session_factory
    from fleet.lifecycle import Actor, get_device, provision

    logins: dict[str, dict] = {}
    refused: dict[str, str] = {}
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            for ident in devices:
                device = get_device(session, ident)
                if device.status in NOT_ADMITTED:
                    refused[ident] = device.status
                    continue
                c = provision(session, ident, Actor(f"cli:{who}", "admin"), control,
                              reason=f"{who}: a new development broker", device=device)
                if each is not None:
                    each(ident)
                logins[ident] = {**login(c.username, c.password), "client_id": c.client_id}
            session.commit()
    finally:
        engine.dispose()
    return logins, refused


def admit(broker: Broker, db_url: str, devices: list[str]) -> tuple[dict, dict[str, str]]:
    """Create the development role and client, provision the demo readers the fleet admits.
    Returns what goes to the credentials file, and the readers refused with their status."""
    from fleet.brokerauth import BrokerAuthError, DynsecControl, DynsecSettings, new_password
    from fleet.lifecycle import LifecycleError

    control = DynsecControl(DynsecSettings(broker.host, broker.port, *broker.admin))
    sim_password = new_password()
    try:
        control.send(sim_commands(sim_password))
        logins, refused = provision_readers(
            db_url, devices, control, "telegest up",
            each=lambda ident: control.send([grant_simulator(ident)]))
    except (BrokerAuthError, LifecycleError) as e:
        raise TelegestError(f"cannot set up the broker's identities: {e} (see "
                            f"{broker.log_path})") from None
    finally:
        control.close()
    creds = {"broker": f"{broker.host}:{broker.port}", "admin": login(*broker.admin),
             "worker": login(*broker.worker), SIM_CONTROL: login(SIM_CONTROL, sim_password),
             "devices": logins}
    return creds, refused


def process_env(creds: dict | None, host: str, port: int) -> tuple[dict, dict]:
    """(the worker's, the API's) variables, as production sets them: the worker logs in as
    fleet-worker, the API drives dynamic security as fleet-admin. Empty on an anonymous
    broker, so that none is inherited from the shell."""
    none = login("", "")
    worker, admin = (creds["worker"], creds["admin"]) if creds else (none, none)
    return ({"TELEGEST_MQTT_USERNAME": worker["username"],
             "TELEGEST_MQTT_PASSWORD": worker["password"]},
            {"TELEGEST_DYNSEC_USERNAME": admin["username"],
             "TELEGEST_DYNSEC_PASSWORD": admin["password"],
             "TELEGEST_MQTT_HOST": host, "TELEGEST_MQTT_PORT": str(port)})


def write_credentials(path: Path, creds: dict) -> None:
    write_private(path, json.dumps(creds, indent=1) + "\n")


def read_credentials(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise TelegestError(f"cannot read the broker credentials {path}: {e} (`telegest up` "
                            f"writes them to <data>/{CREDENTIALS})") from None
