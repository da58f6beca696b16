"""/exports in the console: the month-end files downloaded, refusals shown on the form."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from lxml import etree
from sqlalchemy import select

from fleet.exports import esppadom
from fleet.models import AuditLog, Funder, FundingPlan, Organisation, Visit, VisitRecord


def _funded_visit(db, demo) -> tuple[int, str]:
    """The demo agency's first visit clocked 5 minutes over and retained as planned, paid by
    an APA plan; returns (visit id, its local day)."""
    from zoneinfo import ZoneInfo

    with db() as s:
        org = s.get(Organisation, demo[1]["organisation_id"])
        org.siret = "12345678900011"
        visit = s.scalars(select(Visit).where(Visit.organisation_id == org.id)
                          .order_by(Visit.planned_start)).first()
        funder = Funder(organisation_id=org.id, kind="APA", name="CD 94",
                        identifier="CD94-APA")
        s.add(funder)
        s.flush()
        s.add(FundingPlan(organisation_id=org.id, client_id=visit.client_id,
                          funder_id=funder.id, reference="APA-94-1",
                          valid_from=date(2020, 1, 1)))
        s.add(VisitRecord(visit_id=visit.id, status="done", actual_start=visit.planned_start,
                          actual_end=visit.planned_end + timedelta(minutes=5),
                          retained_start=visit.planned_start,
                          retained_end=visit.planned_end, km=9))
        s.commit()
        day = visit.planned_start.astimezone(ZoneInfo(org.timezone)).date().isoformat()
        return visit.id, day


def test_download_the_month_end_files(as_role, db, demo):
    visit_id, day = _funded_visit(db, demo)
    m = as_role("manager")
    form = m.get("/exports")
    assert form.status_code == 200 and 'id="export-form"' in form.text
    r = m.get("/exports/file", params={"kind": "esppadom", "from": day, "to": day})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith('attachment; filename="12345678900011-')
    doc = etree.fromstring(r.content)
    etree.XMLSchema(etree.parse(str(esppadom.SCHEMA))).assertValid(doc)
    assert [a.findtext("ns:CIDDHExchangedDocument/ram:ID", namespaces=esppadom.NS)
            for a in doc] == [f"TG-{demo[1]['organisation_id']}-{visit_id}"]
    r = m.get("/exports/file", params={"kind": "payroll", "from": day, "to": day,
                                       "dialect": "excel-fr"})
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0]["km"] == "9" and rows[0]["period"] == "day"
    with db() as s:
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "export")
                        .order_by(AuditLog.id))["via"] == "console"


def test_refusals_show_the_form_again(as_role, db, demo):
    _, day = _funded_visit(db, demo)
    m = as_role("manager")
    with db() as s:
        s.scalars(select(Funder)).one().identifier = ""
        s.commit()
    r = m.get("/exports/file", params={"kind": "esppadom", "from": day, "to": day})
    assert r.status_code == 422 and "no télétransmission identifier" in r.text
    assert 'id="export-form"' in r.text
    r = m.get("/exports/file", params={"kind": "payroll", "from": "soon", "to": day})
    assert r.status_code == 422 and "YYYY-MM-DD" in r.text
    r = m.get("/exports/file", params={"kind": "billing", "from": day, "to": day,
                                       "funder": "999"})
    assert r.status_code == 422 and "funder 999 not found" in r.text
    assert as_role("technician").get("/exports").status_code == 403
