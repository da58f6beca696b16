"""fleet.validation: a visit or a month locked, reopened with a reason, all audited."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet.corrections import correct
from fleet.models import AuditLog, MonthValidation, Visit, VisitRecord
from fleet.validation import (ValidationRefused, is_locked, reopen_month, reopen_visit,
                              validate_month, validate_visit)

from .conftest import NOW

H = timedelta(hours=1)


@pytest.fixture
def plan(session, agency):
    """Visits of Alice at Mme Durand; the month edges are Paris ones (UTC+1 in winter)."""
    org = agency["org"]

    def visit(start: datetime, clocked: bool = True) -> Visit:
        v = Visit(organisation_id=org.id, client_id=agency["clients"][0].id,
                  caregiver_id=agency["caregivers"][0].id, planned_start=start,
                  planned_end=start + H, status="done" if clocked else "planned")
        session.add(v)
        session.flush()
        if clocked:
            session.add(VisitRecord(visit_id=v.id, actual_start=start, actual_end=start + H,
                                    retained_start=start, retained_end=start + H,
                                    status="done"))
        return v

    out = {
        "nov": visit(NOW),
        # 1 Dec 00:30 in Paris is still 30 Nov in UTC: December's
        "dec_paris": visit(datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)),
        # 31 Oct 23:30 UTC is 1 Nov 00:30 in Paris: November's
        "nov_paris": visit(datetime(2026, 10, 31, 23, 30, tzinfo=timezone.utc)),
        "unclocked": visit(NOW + 5 * H, clocked=False),
    }
    session.commit()
    return out


def rec(session, v: Visit) -> VisitRecord | None:
    return session.scalars(select(VisitRecord).where(VisitRecord.visit_id == v.id)).first()


def refused(status: int, fragment: str, fn, *args, **kw):
    with pytest.raises(ValidationRefused) as e:
        fn(*args, **kw)
    assert e.value.status == status and fragment in e.value.message, e.value.message


def test_validate_and_reopen_a_visit(session, plan):
    v = plan["nov"]
    r = validate_visit(session, v, "coord@agency.fr", "manager")
    session.commit()
    assert is_locked(rec(session, v)) and r.validated_who == "coord@agency.fr"
    refused(409, "already validated", validate_visit, session, v, "coord", "manager")
    refused(422, "say why", reopen_visit, session, v, "coord", "manager", " ")
    reopen_visit(session, v, "boss", "admin", "wrong caregiver")
    session.commit()
    assert not is_locked(rec(session, v)) and rec(session, v).validated_who is None
    refused(409, "is not validated", reopen_visit, session, v, "coord", "manager", "again")
    log = [(a.action, a.target, a.who, a.why) for a in session.scalars(
        select(AuditLog).order_by(AuditLog.id))]
    assert log == [("validate", f"visit:{v.id}", "coord@agency.fr", None),
                   ("reopen", f"visit:{v.id}", "boss", "wrong caregiver")]


def test_a_visit_without_record_cannot_be_validated(session, plan):
    refused(409, "nothing clocked or corrected", validate_visit, session, plan["unclocked"],
            "coord", "manager")
    correct(session, plan["unclocked"].id, code="CRE", arrival=NOW + 5 * H,
            departure=NOW + 6 * H, why="paper sheet", who="coord", role="manager",
            organisation_id=None)
    validate_visit(session, plan["unclocked"], "coord", "manager")
    assert is_locked(rec(session, plan["unclocked"]))


def test_unknown_or_another_agencys_visit_is_404(session, plan):
    refused(404, "visit 999 not found", validate_visit, session, 999, "c", "manager")
    refused(404, "not found", validate_visit, session, plan["nov"], "c", "manager",
            organisation_id=plan["nov"].organisation_id + 1)
    refused(404, "not found", reopen_visit, session, plan["nov"].id, "c", "manager", "why",
            organisation_id=plan["nov"].organisation_id + 1)


def test_validate_a_month_in_the_agencys_time_zone(session, agency, plan):
    org = agency["org"]
    validate_visit(session, plan["nov"], "early", "manager")
    session.commit()
    first = rec(session, plan["nov"]).validated_at
    mv = validate_month(session, org, "2026-11", "coord", "manager")
    session.commit()
    assert (mv.month, mv.visits, mv.validated_who) == ("2026-11", 2, "coord")
    assert is_locked(rec(session, plan["nov_paris"]))
    assert not is_locked(rec(session, plan["dec_paris"]))
    assert rec(session, plan["nov"]).validated_who == "early"  # kept its own
    assert rec(session, plan["nov"]).validated_at == first
    refused(409, "already validated", validate_month, session, org, "2026-11", "c", "manager")
    a = session.scalars(select(AuditLog).where(AuditLog.target == f"month:{org.id}:2026-11")
                        ).one()
    assert a.action == "validate" and a.detail["records"] == 2 and a.detail["newly"] == 1


def test_reopen_a_month(session, agency, plan):
    org = agency["org"]
    validate_month(session, org, "2026-11", "coord", "manager")
    session.commit()
    refused(422, "say why", reopen_month, session, org, "2026-11", "c", "manager", "")
    refused(409, "not validated", reopen_month, session, org, "2026-10", "c", "manager", "x")
    mv = reopen_month(session, org, "2026-11", "boss", "admin", "a late paper sheet")
    session.commit()
    assert mv.reopened_who == "boss" and mv.reopen_why == "a late paper sheet"
    assert not is_locked(rec(session, plan["nov"]))
    assert not is_locked(rec(session, plan["nov_paris"]))
    again = validate_month(session, org, "2026-11", "coord", "manager")
    session.commit()
    assert again.id != mv.id
    assert len(session.scalars(select(MonthValidation)).all()) == 2


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "november", "", "2026-00"])
def test_a_bad_month_is_422(session, agency, month):
    refused(422, "YYYY-MM", validate_month, session, agency["org"], month, "c", "manager")


def test_a_visit_reopened_alone_in_a_validated_month_can_be_corrected(session, agency, plan):
    validate_month(session, agency["org"], "2026-11", "coord", "manager")
    reopen_visit(session, plan["nov"], "coord", "manager", "wrong departure")
    fix = correct(session, plan["nov"].id, code="MDT", arrival=None, departure=None,
                  why="service changed", who="coord", role="manager", organisation_id=None)
    assert fix.code == "MDT"
