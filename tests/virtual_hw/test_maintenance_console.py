"""A box's USB port gives nothing away (issue #11 item 6), on the virtual board: the unmodified
firmware on the real MicroPython, its console reached through `socket://` like a USB port.
Once the box holds a maintenance key its console answers status only: secrets, the badge list
and the broker change are refused until `maint <code>` with a code the fleet issued for it
(`telegest fleet device maintenance-code`, audited); a code of another box, an expired code
and a used code are refused; `exit` locks it again; no answer ever holds a secret."""
from __future__ import annotations

import contextlib
import json
import secrets
import time
from datetime import timedelta

import pytest

from tools.cli import build_parser
from tools.field.console import ReaderConsole
from tools.field.deploy import deploy
from tools.field.provision import write_settings
from tools.sim.pn532 import PN532Sim
from tools.vboard import VirtualBoard, VirtualBoardError

pytestmark = [pytest.mark.virtual_hw, pytest.mark.micropython, pytest.mark.timeout(600)]

AP = ("Maison Martin", "wifi-secret-42")
IDENT = "tg-0badc0ffee01"
PROTECTED = ("broker", "broker set host evil.example", "broker set password x", "wifi",
             f'wifi set "{AP[0]}" "other-password"', "wifi scan", "taps", "settings",
             "settings drop", "reboot")
OPEN = ("status", "selftest", "counters", "journal", "help")


@contextlib.contextmanager
def deployed_box():
    """The virtual box IDENT with the firmware deployed (a blank board: its REPL as always)."""
    sim = PN532Sim()
    port = sim.serve_tcp()
    try:
        board = VirtualBoard(box=True, ap=AP, uarts={2: ("127.0.0.1", port)},
                             unique_id="0badc0ffee01").start()
    except VirtualBoardError as e:
        sim.close()
        pytest.fail(str(e))
    try:
        deploy(board.url)
        yield board
    finally:
        board.stop()
        sim.close()


@pytest.fixture(scope="module")
def box():
    with deployed_box() as board:
        yield board


def fleet_devices(db_url: str) -> dict[str, str]:
    """Two readers of the demo agency with their maintenance keys, as a staged provisioning
    leaves them."""
    import sqlalchemy as sa

    from fleet.db import make_engine, session_factory
    from fleet.models import Client, Device

    keys = {IDENT: secrets.token_hex(32), "tg-0badc0ffee02": secrets.token_hex(32)}
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        client = s.scalars(sa.select(Client).order_by(Client.id)).first()
        for ident, key in keys.items():
            s.add(Device(ident=ident, kind="reader", organisation_id=client.organisation_id,
                         client_id=client.id, status="provisioned", maint_key=key))
        s.commit()
    engine.dispose()
    return keys


def cli_code(db_url: str, ident: str, capsys) -> str:
    args = build_parser().parse_args(["fleet", "device", "maintenance-code", ident,
                                      "--by", "alice", "--db", db_url])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    return out.split(f"maintenance code for {ident}: ")[1].split()[0]


def issued_at(db_url: str, ident: str, ago: timedelta) -> str:
    from fleet.db import make_engine, session_factory
    from fleet.lifecycle import Actor
    from fleet.maintenance import issue
    from fleet.types import utcnow

    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        mc = issue(s, ident, Actor("cli:alice", "admin"), now=utcnow() - ago)
        s.commit()
    engine.dispose()
    return mc.code


def wait_for(fn, timeout, what):
    end = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_the_console_gives_nothing_away_without_a_maintenance_code(box, demo, capsys):
    db = demo[0]
    keys = fleet_devices(db)
    broker_pw = secrets.token_urlsafe(24)
    secrets_shown = (AP[1], keys[IDENT], broker_pw)
    with ReaderConsole(box.url, timeout=5) as c:
        assert c.command("status")["console"] == "open", "no key yet: as in the factory"
        # what `telegest device provision` does: the settings document, with the key
        doc = {"ssid": AP[0], "password": AP[1], "user": IDENT, "pass": broker_pw,
               "mkey": keys[IDENT]}
        staged = write_settings(c, doc, say=lambda s: None)
        assert c.command(f"settings commit {staged['digest']}")["committed"] == sorted(doc)
        assert c.command("status")["console"] == "maintenance", "the provisioning goes on"
        assert c.command("exit") == {"console": "locked"}
        wait_for(lambda: c.command("status")["tq"] == "synced", 30, "NTP over the Wi-Fi")

        answers = []
        for cmd in PROTECTED:
            ans = c.ask(cmd)
            assert ans.startswith("error: locked: "), (cmd, ans)
            assert f"telegest fleet device maintenance-code {IDENT}" in ans
        for cmd in OPEN:
            answers.append(c.ask(cmd))
            assert not answers[-1].startswith("error"), (cmd, answers[-1])
        assert c.command("status")["console"] == "locked"

        # codes the box refuses, checked offline with its own key and clock
        other = cli_code(db, "tg-0badc0ffee02", capsys)
        assert "another box" in c.ask(f"maint {other}")
        expired = issued_at(db, IDENT, timedelta(minutes=31))
        assert "expired" in c.ask(f"maint {expired}")
        assert "not a maintenance code" in c.ask("maint 123456")
        assert c.ask("broker").startswith("error: locked: ")

        # the fleet's code opens maintenance: the broker change is taken, secrets stay masked
        code = cli_code(db, IDENT, capsys)
        opened = c.command(f"maint {code}")
        assert opened["maintenance"] is True and 29 <= opened["minutes"] <= 30
        assert c.ask("broker set host mqtt.agency.example") == "ok"
        broker = c.command("broker")
        assert broker["host"] == "mqtt.agency.example" and "password" not in broker
        wifi = c.command("wifi")
        assert wifi["ssid"] == AP[0] and wifi["password_set"] is True
        answers += [json.dumps(broker), json.dumps(wifi), c.ask("settings"), c.ask("taps")]
        assert c.command("exit") == {"console": "locked"}
        assert c.ask("broker set host evil.example").startswith("error: locked: ")

        # single use: the same code again is refused
        assert "already used" in c.ask(f"maint {code}")
        assert c.command("status")["console"] == "locked"
        counters = c.command("counters")
        assert (counters["maint_opened"], counters["maint_refused"]) == (1, 4)
        for ans in answers:
            for secret in secrets_shown:
                assert secret not in ans and secret.encode().hex() not in ans

    # the code issued is in the audit log: who, which device; never the code itself
    from fleet.audit import query
    from fleet.db import make_engine, session_factory

    engine = make_engine(db)
    with session_factory(engine)() as s:
        rows = list(s.scalars(query(f"device:{IDENT}", "maintenance_code")))
    engine.dispose()
    assert [r.who for r in rows] == ["cli:alice", "cli:alice"]
    assert all(code not in json.dumps(r.detail) for r in rows)
