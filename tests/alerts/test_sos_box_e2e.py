"""A reader box's SOS button on the virtual reader (the firmware's ReaderCore and SosButton)
through a real mosquitto to the worker as a process: a 3 s press is stored once with the box's
client and address resolved by the fleet, answered on down/sos (which frees it on the box),
and e-mailed to the on-call list; a 1 s press sends nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from fleet import agency_settings
from fleet.db import make_engine, session_factory
from fleet.models import Client, Device, Organisation, SosAlert
from tests.helpers import WorkerProcess, reader_for, wait_until

pytestmark = pytest.mark.e2e
IDENT = "demo-r1"
ONCALL = "astreinte@agence-demo.fr"


def test_a_long_press_on_the_box_is_an_sos_with_its_home(demo, mosquitto, smtp, tmp_path):
    db_url, _ = demo
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    with sessions() as s:
        reader = s.scalars(select(Device).where(Device.ident == IDENT)).one()
        home = s.get(Client, reader.client_id)
        agency_settings.update(s, s.get(Organisation, reader.organisation_id),
                               {"oncall_emails": ONCALL}, who="test", role="admin")
        s.commit()
        home_name, home_address = home.name, home.address

    def alerts() -> list[SosAlert]:
        with sessions() as s:
            return list(s.scalars(select(SosAlert)))

    worker = WorkerProcess(db_url, mosquitto.host, mosquitto.port, tmp_path / "worker.log", env={
        "TELEGEST_SMTP_HOST": smtp.hostname, "TELEGEST_SMTP_PORT": str(smtp.port),
        "TELEGEST_SMTP_FROM": "alertes@agence-demo.fr", "TELEGEST_SMTP_STARTTLS": "0",
        "TELEGEST_OUTBOX_POLL_S": "1"})
    box = None
    try:
        worker.start().wait_ready()
        box = reader_for(db_url, mosquitto, tmp_path, IDENT).start()
        assert box.connected.wait(10)
        assert box.hold_sos(1.0) is False, "a short press is no SOS"
        assert box.sos.pending is None
        assert box.hold_sos(3.0) is True
        uid = box.sos.pending["id"]
        (alert,) = wait_until(alerts, 30, what="the box's SOS stored")
        assert (alert.source, alert.uid, alert.client_id) == ("box", uid, reader.client_id)
        assert alert.lat is None, "a box has no position: its home is where it is"
        wait_until(lambda: box.sos.pending is None, 30, what="down/sos freeing the box's SOS")
        assert box.sos.stored == 1
        (mail,) = wait_until(lambda: [m for m in smtp.handler.messages
                                      if "SOS" in m["Subject"]], 30, what="the SOS e-mail")
        text = mail.get_content()
        assert home_name in text and home_address in text and "boîtier" in text
        assert len(alerts()) == 1, "stored once"
    finally:
        if box is not None:
            box.stop()
        worker.stop()
        engine.dispose()
