"""Onboarding from the console: register a phone or a reader on /devices (the same rule as
`POST /api/v1/devices`, fleet.lifecycle.register), then the phone's enrolment QR code; and the
devices list says which device holds the latest planning (its health's `cfg`)."""
from __future__ import annotations

import re

from sqlalchemy import select

from fleet.models import AuditLog, Caregiver, Client, Device
from tests.console.conftest import csrf_of


def _register(c, **form):
    page = c.get("/devices").text
    return c.post("/devices/register", data={"csrf": csrf_of(page), **form})


def test_an_admin_registers_a_phone_then_shows_its_enrolment_qr(as_role, db):
    with db() as s:
        carer = s.scalars(select(Caregiver).order_by(Caregiver.id)).first()
    c = as_role("admin")
    page = c.get("/devices").text
    assert 'id="register-form"' in page and carer.name in page
    r = _register(c, ident="phone-new", kind="phone", caregiver_id=str(carer.id))
    assert r.status_code == 200 and r.url.path == "/devices/phone-new"
    assert "Device registered" in r.text and 'id="enrol"' in r.text
    qr = c.post("/devices/phone-new/enrolment", data={"csrf": csrf_of(r.text)})
    assert qr.status_code == 200 and "<svg" in qr.text and "/app/enrol?token=tge_" in qr.text
    with db() as s:
        d = s.scalars(select(Device).where(Device.ident == "phone-new")).one()
        assert (d.kind, d.caregiver_id, d.client_id, d.status) == ("phone", carer.id, None,
                                                                    "registered")
        entry = s.scalars(select(AuditLog).where(AuditLog.target == "device:phone-new",
                                                 AuditLog.action == "register")).one()
        assert entry.who == "user:admin@agency.fr"


def test_a_manager_registers_a_reader_and_bad_input_changes_nothing(as_role, db):
    with db() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first()
        before = len(s.scalars(select(Device)).all())
    c = as_role("manager")
    r = _register(c, ident="box-new", kind="reader", client_id=str(client.id))
    assert r.url.path == "/devices/box-new"
    for form, status, why in (
            ({"ident": "box-new", "kind": "reader", "client_id": str(client.id)}, 409,
             "already registered"),
            ({"ident": "bad ident!", "kind": "reader", "client_id": str(client.id)}, 422,
             "is not a device ident"),
            ({"ident": "box-x", "kind": "reader", "client_id": "99999"}, 422, "does not exist"),
            ({"ident": "box-x", "kind": "reader", "client_id": "²"}, 422, "give client_id"),
            ({"ident": "box-x", "kind": "toaster"}, 422, "kind must be")):
        r = _register(c, **form)
        assert r.status_code == status and why in r.text, form
        assert 'id="register-form"' in r.text  # the form again, with the message
    with db() as s:
        assert len(s.scalars(select(Device)).all()) == before + 1


def test_a_technician_registers_through_the_api_not_this_form(as_role):
    c = as_role("technician")
    page = c.get("/devices").text
    assert 'id="register-form"' not in page  # the form names clients: not for technicians
    assert c.post("/devices/register", data={"csrf": csrf_of(page), "ident": "x",
                                             "kind": "phone"}).status_code == 403


def test_the_devices_list_shows_who_holds_the_latest_planning(as_role, db):
    with db() as s:
        r1, r2 = s.scalars(select(Device).order_by(Device.ident).limit(2)).all()
        r1.config_version, r1.health = 3, {"cfg": 2}
        r2.config_version, r2.health = 3, {"cfg": 3}
        s.commit()
        idents = r1.ident, r2.ident
    page = as_role("technician").get("/devices").text

    def cell(ident):
        row = re.search(rf'<tr data-device="{ident}".*?</tr>', page, re.S).group(0)
        return re.search(r'<td class="planning">(.*?)</td>', row, re.S).group(1)

    assert "v2 → v3" in cell(idents[0]) and "✓" not in cell(idents[0])
    assert "✓ v3" in cell(idents[1])
