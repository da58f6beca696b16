"""The office pages through the console's forms: roles, CSRF, refusals that change nothing,
another agency's visit, the one-click actions, the month; and the demo's past two weeks."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from fleet.demo_history import seed_history
from fleet.models import (Anomaly, AuditLog, Caregiver, Client, ClockEvent, Device,
                          MonthValidation, Organisation, Visit, VisitCorrection, VisitRecord)
from tests.console.conftest import csrf_of

TZ = ZoneInfo("Europe/Paris")


@pytest.fixture
def past(demo, db):
    """The demo's past two weeks added (as `telegest up` does); returns seed_history's
    answer."""
    with db() as s:
        out = seed_history(s, demo[1], datetime.now(timezone.utc))
        s.commit()
    return out


def _forgotten_departure(db) -> Visit:
    with db() as s:
        return s.scalars(select(Visit).join(VisitRecord, VisitRecord.visit_id == Visit.id).where(
            VisitRecord.actual_start.is_not(None), VisitRecord.actual_end.is_(None),
            VisitRecord.correction_code.is_(None), VisitRecord.validated_at.is_(None),
            Visit.planned_end < datetime.now(timezone.utc) - timedelta(hours=2))
            .order_by(Visit.planned_start)).first()


def _record(db, visit_id: int) -> VisitRecord | None:
    with db() as s:
        return s.scalars(select(VisitRecord).where(VisitRecord.visit_id == visit_id)).first()


def _count(db, model, *where) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_the_demo_fortnight_has_every_case_and_a_rerun_adds_nothing(past, demo, db):
    assert past["visits"] > 100 and past["validated"] > 0
    assert {"COD", "COA", "CRE", "SUP", "MDT"} <= set(past["corrected"])
    with db() as s:
        methods = set(s.scalars(select(ClockEvent.method).join(
            Device, Device.id == ClockEvent.device_id).where(Device.kind == "phone")))
        assert methods == {"nfc", "qr", "manual"}
        unmatched = s.scalar(select(func.count()).select_from(ClockEvent).where(
            ClockEvent.match_status == "pending"))
        assert unmatched == 0
        org = s.get(Organisation, demo[1]["organisation_id"])
        assert org.siret and org.esppadom_id
        assert s.scalar(select(func.count()).select_from(VisitRecord).where(
            VisitRecord.km.is_not(None))) > 50
        # late arrivals matched to their visit, not left missing
        late = [v for v, r in s.execute(select(Visit, VisitRecord).join(
            VisitRecord, VisitRecord.visit_id == Visit.id))
            if r.actual_start and r.actual_start > v.planned_start + timedelta(minutes=30)]
        assert len(late) >= 5
    visits = _count(db, Visit)
    with db() as s:
        again = seed_history(s, demo[1], datetime.now(timezone.utc))
        s.commit()
    assert again == {"visits": 0, "corrected": {}, "validated": 0}
    assert _count(db, Visit) == visits


def test_office_pages_are_for_planners_only(as_role, past, db):
    visit = _forgotten_departure(db)
    tech = as_role("technician")
    for path in ("/review", "/validation", f"/visits/{visit.id}"):
        r = tech.get(path)
        assert r.status_code == 403 and "Managers and admins only" in r.text
    page = as_role("manager").get(f"/visits/{visit.id}").text
    r = tech.post(f"/visits/{visit.id}/corrections", data={
        "csrf": csrf_of(tech.get("/devices").text), "code": "COD", "why": "x",
        "departure": "2030-01-01T10:00"})
    assert r.status_code == 403
    assert _record(db, visit.id).correction_code is None
    assert 'name="csrf"' in page


def test_a_post_without_the_session_token_is_refused(as_role, past, db):
    visit = _forgotten_departure(db)
    c = as_role("manager")
    for path, data in ((f"/visits/{visit.id}/corrections", {"code": "COD", "why": "x"}),
                       (f"/visits/{visit.id}/validate", {}),
                       ("/validation", {"month": "2026-11"}),
                       (f"/review/visits/{visit.id}/cod", {"why": "x"})):
        r = c.post(path, data={**data, "csrf": "forged"})
        assert r.status_code == 403 and "Form refused" in r.text, path
    assert _record(db, visit.id).correction_code is None
    assert _count(db, MonthValidation) == 0


@pytest.mark.parametrize("fields, message", [
    ({"code": "XYZ"}, "unknown correction code"),
    ({"why": "  "}, "say why"),
    ({"departure": "2026-13-01T10:00"}, "is not a date and time"),
    ({"code": "COD", "departure": ""}, "COD (departure not clocked) needs the departure"),
])
def test_a_refused_correction_shows_why_and_changes_nothing(as_role, past, db, fields,
                                                             message):
    visit = _forgotten_departure(db)
    c = as_role("manager")
    page = c.get(f"/visits/{visit.id}").text
    end = visit.planned_end.astimezone(TZ).strftime("%Y-%m-%dT%H:%M")
    data = {"csrf": csrf_of(page), "code": "COD", "why": "forgot", "departure": end,
            "arrival": ""}
    r = c.post(f"/visits/{visit.id}/corrections", data={**data, **fields})
    assert r.status_code == 422 and message in r.text
    assert 'role="alert"' in r.text
    assert _record(db, visit.id).correction_code is None
    assert _count(db, VisitCorrection, VisitCorrection.visit_id == visit.id) == 0


def test_correct_validate_and_reopen_a_visit_audited_as_the_person(as_role, past, db):
    visit = _forgotten_departure(db)
    c = as_role("manager")
    page = c.get(f"/visits/{visit.id}").text
    assert '<option value="COD" selected>' in page, "COD is suggested"
    end = visit.planned_end.astimezone(TZ).strftime("%Y-%m-%dT%H:%M")
    r = c.post(f"/visits/{visit.id}/corrections", data={
        "csrf": csrf_of(page), "code": "COD", "why": "forgot to clock out",
        "departure": end})
    assert r.status_code == 200 and "Correction saved" in r.text
    rec = _record(db, visit.id)
    assert rec.correction_code == "COD" and rec.retained_end == visit.planned_end
    r = c.post(f"/visits/{visit.id}/validate", data={"csrf": csrf_of(r.text)})
    assert "Visit validated" in r.text and 'id="locked"' in r.text
    # validated: a correction is refused, and validating twice too
    r2 = c.post(f"/visits/{visit.id}/corrections", data={
        "csrf": csrf_of(r.text), "code": "COD", "why": "again", "departure": end})
    assert r2.status_code == 409 and "reopen it" in r2.text
    r3 = c.post(f"/visits/{visit.id}/reopen", data={"csrf": csrf_of(r.text), "why": ""})
    assert r3.status_code == 422 and "say why" in r3.text
    r4 = c.post(f"/visits/{visit.id}/reopen", data={"csrf": csrf_of(r.text),
                                                     "why": "wrong end time"})
    assert "Visit reopened" in r4.text and 'id="locked"' not in r4.text
    with db() as s:
        rows = s.execute(select(AuditLog.action, AuditLog.who, AuditLog.role).where(
            AuditLog.target == f"visit:{visit.id}").order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [
        (a, "user:manager@agency.fr", "manager") for a in ("correct", "validate", "reopen")]


def test_another_agencys_visit_is_not_found(as_role, past, db):
    with db() as s:
        other = Organisation(name="Autre agence")
        s.add(other)
        s.flush()
        client = Client(organisation_id=other.id, name="Mme Autre")
        carer = Caregiver(organisation_id=other.id, name="Intervenant autre")
        s.add_all([client, carer])
        s.flush()
        start = datetime.now(timezone.utc) - timedelta(days=2)
        v = Visit(organisation_id=other.id, client_id=client.id, caregiver_id=carer.id,
                  planned_start=start, planned_end=start + timedelta(hours=1))
        s.add(v)
        s.commit()
        vid = v.id
    c = as_role("manager")
    assert c.get(f"/visits/{vid}").status_code == 404
    token = csrf_of(c.get("/review").text)
    for path in (f"/visits/{vid}/corrections", f"/review/visits/{vid}/cod",
                 f"/visits/{vid}/validate"):
        assert c.post(path, data={"csrf": token, "code": "CRE", "why": "x"}).status_code == 404
    assert _count(db, VisitCorrection, VisitCorrection.visit_id == vid) == 0


def test_review_one_click_and_anomaly_handled(as_role, past, db):
    visit = _forgotten_departure(db)
    c = as_role("manager")
    page = c.get("/review?kind=missing_departure").text
    assert f'data-visit="{visit.id}"' in page and 'data-kind="manual"' not in page
    r = c.post(f"/review/visits/{visit.id}/cod", data={
        "csrf": csrf_of(page), "why": "", "back": "/review?kind=missing_departure"})
    assert r.status_code == 422 and "say why" in r.text
    r = c.post(f"/review/visits/{visit.id}/cod", data={
        "csrf": csrf_of(page), "why": "family confirms",
        "back": "/review?kind=missing_departure"})
    assert r.url.path == "/review" and r.url.params["kind"] == "missing_departure"
    assert f'data-visit="{visit.id}"' not in r.text
    assert _record(db, visit.id).correction_code == "COD"
    # an anomaly marked handled leaves the list, audited
    page = c.get("/review?kind=anomaly").text
    with db() as s:
        anomaly = s.get(Anomaly, int(re.search(r"/review/anomalies/(\d+)/handled",
                                               page).group(1)))
        assert not anomaly.resolved and anomaly.kind == "out_before_in"
    r = c.post(f"/review/anomalies/{anomaly.id}/handled", data={
        "csrf": csrf_of(page), "back": "/review?kind=anomaly"})
    assert "Anomaly marked handled" in r.text
    assert f"/review/anomalies/{anomaly.id}/handled" not in r.text
    assert _count(db, AuditLog, AuditLog.target == f"anomaly:{anomaly.id}",
                  AuditLog.action == "anomaly_handled") == 1
    # a mangled filter is no filter, never a 500
    assert c.get("/review?kind=nope&from=yesterday&to=2026-02-30").status_code == 200


def test_a_month_validated_then_reopened_with_a_why(as_role, past, db):
    month = (datetime.now(TZ) - timedelta(days=14)).strftime("%Y-%m")
    c = as_role("manager")
    page = c.get(f"/validation?month={month}").text
    assert 'id="validate-month"' in page
    r = c.post("/validation", data={"csrf": csrf_of(page), "month": "2026-13"})
    assert r.status_code == 422 and "YYYY-MM" in r.text
    assert _count(db, MonthValidation) == 0
    r = c.post("/validation", data={"csrf": csrf_of(page), "month": month})
    assert "Month validated" in r.text and 'id="reopen-month"' in r.text
    again = c.post("/validation", data={"csrf": csrf_of(page), "month": month})
    assert again.status_code == 409 and "already validated" in again.text
    r = c.post("/validation/reopen", data={"csrf": csrf_of(page), "month": month,
                                           "why": "late sheet"})
    assert "Month reopened" in r.text and "late sheet" in r.text
    with db() as s:
        mv = s.scalars(select(MonthValidation)).one()
        assert mv.validated_who == "user:manager@agency.fr" and mv.reopen_why == "late sheet"


def test_the_months_exports_download_from_the_validation_page(as_role, past, db):
    lo = (datetime.now(TZ) - timedelta(days=14)).replace(day=1)
    month = lo.strftime("%Y-%m")
    c = as_role("manager")
    page = c.get(f"/validation?month={month}").text.replace("&amp;", "&")
    links = {kind: href for href, kind in re.findall(r'href="(/exports/file\?kind=(\w+)[^"]*)"',
                                                     page)}
    assert set(links) == {"esppadom", "payroll", "billing"}
    assert f"from={lo.date().isoformat()}" in links["esppadom"]
    xml = c.get(links["esppadom"])
    assert xml.status_code == 200 and xml.headers["content-type"] == "application/xml"
    assert b"ESPPADOM_EFFECTIVITY_AJUST" in xml.content and b">COD<" in xml.content
    csv_fr = c.get(links["payroll"])
    assert csv_fr.status_code == 200 and "Alice Martin" in csv_fr.text
    assert ";" in csv_fr.text.splitlines()[0]


def test_a_visit_nobody_clocked_offers_cre_and_nothing_to_validate(as_role, past, db):
    with db() as s:
        visit = s.scalars(select(Visit).outerjoin(VisitRecord, VisitRecord.visit_id == Visit.id)
                          .where(VisitRecord.id.is_(None), Visit.status != "cancelled")
                          .order_by(Visit.planned_start)).first()
    page = as_role("manager").get(f"/visits/{visit.id}").text
    assert '<option value="CRE" selected>' in page
    assert 'id="validate-form"' not in page and "Nothing clocked or corrected" in page
    assert visit.planned_start.astimezone(TZ).strftime("%Y-%m-%dT%H:%M") in page
