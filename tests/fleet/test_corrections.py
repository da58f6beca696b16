"""fleet.corrections: every ESPPADOM code, suggestions, corrections of corrections, refusals."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from fleet.corrections import CODES, CorrectionRefused, correct, suggest_code
from fleet.ingest import handle_clock
from fleet.matching import match_pending
from fleet.models import (AuditLog, ClockEvent, Organisation, Visit, VisitCorrection,
                          VisitRecord)
from fleet.validation import validate_visit

from .conftest import NOW, TS

CARD = "04A1B2C3D4E5F6"
H = timedelta(hours=1)


@pytest.fixture
def visit(session, agency):
    """Alice at Mme Durand (reader r1), 09:00-10:00 UTC."""
    v = Visit(organisation_id=agency["org"].id, client_id=agency["clients"][0].id,
              caregiver_id=agency["caregivers"][0].id, planned_start=NOW, planned_end=NOW + H)
    session.add(v)
    session.commit()
    return v


def clocked(session, clock, event, *events):
    handle_clock(session, "r1", clock(*events), NOW)
    match_pending(session)
    session.commit()


def fix(session, visit, code, arrival=None, departure=None, why="checked with the family",
        org=None, who="coord@agency.fr"):
    out = correct(session, visit if isinstance(visit, int) else visit.id, code=code,
                  arrival=arrival, departure=departure, why=why, who=who, role="manager",
                  organisation_id=org if org is not None else visit.organisation_id)
    session.commit()
    return out


def rec(session, visit) -> VisitRecord | None:
    return session.scalars(select(VisitRecord).where(VisitRecord.visit_id == visit.id)).first()


def test_the_codes():
    assert set(CODES) == {"CRE", "MDT", "SUP", "COA", "COD", "CO2"}
    assert all(en and fr and en != fr for en, fr in CODES.values())


def test_suggest_code_from_what_is_missing(visit):
    assert suggest_code(visit, None) == "CRE"
    r = VisitRecord(visit_id=visit.id)
    assert suggest_code(visit, r) == "CO2"
    r.actual_end = NOW + H
    assert suggest_code(visit, r) == "COA"
    r.actual_start, r.actual_end = NOW, None
    assert suggest_code(visit, r) == "COD"
    r.actual_end = NOW + H
    assert suggest_code(visit, r) == "MDT"


def test_cre_creates_the_record_of_a_visit_nobody_clocked(session, visit):
    c = fix(session, visit, "CRE", NOW + timedelta(minutes=5, seconds=40), NOW + H)
    r = rec(session, visit)
    assert (r.retained_start, r.retained_end) == (NOW + timedelta(minutes=5), NOW + H)
    assert (r.actual_start, r.actual_end) == (None, None)
    assert r.correction_code == "CRE" and r.correction_reason == "checked with the family"
    assert r.corrected_who == "coord@agency.fr" and r.corrected_at is not None
    assert r.status == "done" and session.get(Visit, visit.id).status == "done"
    assert c.before == {"record": None, "visit_status": "planned"}
    assert c.after["retained_end"] == (NOW + H).isoformat() and c.supersedes_id is None


def test_cod_a_forgotten_departure_keeps_the_raw_events(session, clock, event, visit):
    clocked(session, clock, event, event(1, CARD, "in", TS + 120))
    raw_before = [(e.id, e.device_ts, e.dir, e.match_status, e.raw)
                  for e in session.scalars(select(ClockEvent))]
    fix(session, visit, "COD", departure=NOW + H)
    r = rec(session, visit)
    assert r.actual_start == NOW + timedelta(seconds=120) and r.actual_end is None
    assert (r.retained_start, r.retained_end) == (NOW + timedelta(minutes=2), NOW + H)
    assert r.correction_code == "COD" and r.status == "done"
    assert [(e.id, e.device_ts, e.dir, e.match_status, e.raw)
            for e in session.scalars(select(ClockEvent))] == raw_before


def test_coa_a_forgotten_arrival(session, clock, event, visit):
    clocked(session, clock, event, event(1, CARD, "out", TS + 3600))
    fix(session, visit, "COA", arrival=NOW)
    r = rec(session, visit)
    assert (r.retained_start, r.retained_end) == (NOW, NOW + H)
    assert r.actual_start is None and r.correction_code == "COA"


def test_co2_both_times(session, visit):
    session.add(VisitRecord(visit_id=visit.id, status="incomplete"))
    session.commit()
    fix(session, visit, "CO2", NOW + timedelta(minutes=10), NOW + timedelta(minutes=70))
    r = rec(session, visit)
    assert minutes_between(r.retained_start, r.retained_end) == 60


def minutes_between(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds() // 60)


def test_mdt_changes_no_time(session, clock, event, visit):
    clocked(session, clock, event, event(1, CARD, "in", TS), event(2, CARD, "out", TS + 3600))
    before = rec(session, visit).retained_start, rec(session, visit).retained_end
    fix(session, visit, "MDT", why="service was a shopping trip")
    r = rec(session, visit)
    assert (r.retained_start, r.retained_end) == before and r.correction_code == "MDT"
    with pytest.raises(CorrectionRefused) as e:
        fix(session, visit, "MDT", arrival=NOW + timedelta(minutes=5))
    assert e.value.status == 422 and "COA, COD or CO2" in e.value.message


def test_sup_deletes_from_billing_but_keeps_everything(session, clock, event, visit):
    clocked(session, clock, event, event(1, CARD, "in", TS), event(2, CARD, "out", TS + 3600))
    fix(session, visit, "SUP", why="duplicate of visit 12")
    r = rec(session, visit)
    assert (r.retained_start, r.retained_end) == (None, None)
    assert (r.actual_start, r.actual_end) == (NOW, NOW + H)
    assert session.get(Visit, visit.id).status == "cancelled"
    assert session.scalar(select(func.count()).select_from(ClockEvent)) == 2


def test_code_left_out_is_the_suggested_one(session, clock, event, visit):
    clocked(session, clock, event, event(1, CARD, "in", TS))
    c = fix(session, visit, None, departure=NOW + H)
    assert c.code == "COD"
    assert fix(session, visit, "cod", departure=NOW + H).code == "COD"  # case does not matter


def test_a_correction_of_a_correction(session, visit):
    first = fix(session, visit, "CRE", NOW, NOW + H)
    second = fix(session, visit, "CRE", NOW, NOW + timedelta(minutes=45),
                 why="she left at 09:45, said the family")
    assert second.supersedes_id == first.id and second.before == first.after
    r = rec(session, visit)
    assert r.retained_end == NOW + timedelta(minutes=45)
    assert r.correction_reason == "she left at 09:45, said the family"
    third = fix(session, visit, "SUP", why="never happened")
    assert third.supersedes_id == second.id
    back = fix(session, visit, "CRE", NOW, NOW + H, why="it did happen")
    assert session.get(Visit, visit.id).status == "done" and back.supersedes_id == third.id


def test_every_correction_is_audited(session, visit):
    c = fix(session, visit, "CRE", NOW, NOW + H)
    a = session.scalars(select(AuditLog).where(AuditLog.action == "correct")).one()
    assert a.target == f"visit:{visit.id}" and a.who == "coord@agency.fr"
    assert a.role == "manager" and a.why == "checked with the family"
    assert a.detail["code"] == "CRE" and a.detail["correction"] == c.id
    assert a.detail["before"] == c.before and a.detail["after"] == c.after


def _refused(session, visit, status, fragment, **kw):
    before = [(r.retained_start, r.retained_end, r.correction_code)
              for r in session.scalars(select(VisitRecord))]
    args = {"code": "CO2", "arrival": NOW, "departure": NOW + H, "why": "because",
            "who": "coord", "role": "manager", "organisation_id": visit.organisation_id}
    args.update(kw)
    with pytest.raises(CorrectionRefused) as e:
        correct(session, args.pop("target", visit.id), **args)
    session.rollback()
    assert e.value.status == status and fragment in e.value.message, e.value.message
    assert session.scalar(select(func.count()).select_from(VisitCorrection)) == 0
    assert [(r.retained_start, r.retained_end, r.correction_code)
            for r in session.scalars(select(VisitRecord))] == before
    assert session.scalar(select(func.count()).select_from(AuditLog)
                          .where(AuditLog.action == "correct")) == 0


@pytest.mark.parametrize("kw,status,fragment", [
    ({"code": "XYZ"}, 422, "unknown correction code 'XYZ'"),
    ({"code": "HOR"}, 422, "HOR is for exports only"),
    ({"departure": NOW - timedelta(minutes=1)}, 422, "is not after arrival"),
    ({"departure": NOW}, 422, "is not after arrival"),
    ({"why": "   "}, 422, "say why"),
    ({"why": "x" * 2001}, 422, "over 2000"),
    ({"code": "CRE", "departure": None}, 422, "CRE (a visit nobody clocked, created) needs "
                                              "the departure"),
    ({"code": "CO2", "arrival": None}, 422, "needs the arrival"),
    ({"code": "COA", "arrival": None}, 422, "needs the arrival"),
    ({"code": "COD", "departure": None}, 422, "needs the departure"),
    ({"arrival": NOW.replace(tzinfo=None)}, 422, "with its offset"),
    ({"arrival": NOW - timedelta(days=2)}, 422, "more than a day"),
    ({"target": 999999}, 404, "visit 999999 not found"),
])
def test_bad_input_is_refused_and_changes_nothing(session, visit, kw, status, fragment):
    _refused(session, visit, status, fragment, **kw)


def test_cod_on_a_visit_whose_arrival_is_missing_too_is_not_a_departure_before_arrival(
        session, clock, event, visit):
    clocked(session, clock, event, event(1, CARD, "in", TS + 1800))
    _refused(session, visit, 422, "is not after arrival", code="COD", arrival=None,
             departure=NOW + timedelta(minutes=20))


def test_another_agencys_visit_is_404(session, visit):
    other = Organisation(name="Autre agence")
    session.add(other)
    session.commit()
    _refused(session, visit, 404, f"visit {visit.id} not found", organisation_id=other.id)


def test_a_validated_visit_is_409_until_reopened(session, clock, event, visit):
    from fleet.validation import reopen_visit

    clocked(session, clock, event, event(1, CARD, "in", TS))
    validate_visit(session, visit, "coord", "manager")
    session.commit()
    _refused(session, visit, 409, "is validated: reopen it")
    reopen_visit(session, visit, "coord", "manager", "forgot the departure")
    session.commit()
    assert fix(session, visit, "COD", departure=NOW + H).code == "COD"


def test_a_visit_without_record_in_a_validated_month_is_409(session, visit, agency):
    from fleet.validation import validate_month

    validate_month(session, agency["org"], "2026-11", "coord", "manager")
    session.commit()
    _refused(session, visit, 409, "is validated", code="CRE")


def test_an_admin_of_no_organisation_may_correct_any_visit(session, visit):
    c = fix(session, visit, "CRE", NOW, NOW + H, org=None)
    assert c.organisation_id == visit.organisation_id

