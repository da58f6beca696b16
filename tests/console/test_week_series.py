"""Recurring visits, the week view and reassignment through the console's forms; the push that
takes a reassignment to the readers."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from fleet import visit_series
from fleet.models import AuditLog, Caregiver, Client, Device, Visit, VisitSeries
from fleet.push import ConfigPusher
from tests.console.conftest import csrf_of, form_id_of

FIRST = date(2030, 3, 25)  # a Monday


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(visit_series, "today_in", lambda session, org, now=None: FIRST)


def _people(db):
    with db() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first()
        alice, bruno = s.scalars(select(Caregiver).order_by(Caregiver.id)).all()[:2]
        return client.id, alice.id, bruno.id


def _new_series(c, client, caregiver, days=("MO", "TU", "WE", "TH", "FR"), **extra):
    page = c.get("/planning/series/new").text
    data = {"csrf": csrf_of(page), "form_id": form_id_of(page), "client_id": client,
            "caregiver_id": caregiver, "service_id": "", "days": list(days), "interval": "1",
            "starts_on": FIRST.isoformat(), "ends_on": "", "at": "08:00", "duration_min": "60",
            **extra}
    return c.post("/planning/series", data=data), data


def test_a_weekday_series_from_the_form(as_role, db):
    c = as_role("manager")
    client, alice, _ = _people(db)
    r, data = _new_series(c, client, alice)
    assert r.history and r.url.path.startswith("/planning/series/") and "Created" in r.text
    assert "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR" in r.text
    with db() as s:
        series = s.scalars(select(VisitSeries)).one()
        assert s.scalar(select(func.count()).select_from(Visit).where(
            Visit.series_id == series.id)) == 40
    again = c.post("/planning/series", data=data)  # the same form sent twice
    assert "Already saved" in again.text
    with db() as s:
        assert s.scalar(select(func.count()).select_from(VisitSeries)) == 1


def test_a_bad_series_form_says_why_and_keeps_nothing(as_role, db):
    c = as_role("manager")
    client, alice, _ = _people(db)
    r, _ = _new_series(c, client, alice, days=())
    assert r.status_code == 422 and "tick at least one day" in r.text
    r, _ = _new_series(c, client, alice, ends_on="2030-03-01")
    assert r.status_code == 422 and "the series ends before it starts" in r.text
    with db() as s:
        assert s.scalar(select(func.count()).select_from(VisitSeries)) == 0


def test_cancel_one_and_change_the_following(as_role, db):
    c = as_role("manager")
    client, alice, bruno = _people(db)
    r, _ = _new_series(c, client, alice)
    sid = int(r.url.path.rsplit("/", 1)[1])
    r = c.post(f"/planning/series/{sid}/cancel", data={"csrf": csrf_of(r.text),
                                                      "day": "2030-03-27"})
    assert "2030-03-27" in re.search(r"Exceptions</dt><dd>([^<]*)", r.text).group(1)
    page = c.get(f"/planning/series/{sid}/following?day=2030-04-08").text
    assert 'value="2030-04-08"' in page
    r = c.post(f"/planning/series/{sid}/following", data={
        "csrf": csrf_of(page), "form_id": form_id_of(page), "client_id": client,
        "caregiver_id": bruno, "service_id": "", "days": ["MO", "WE", "FR"], "interval": "1",
        "starts_on": "2030-04-08", "at": "09:00", "duration_min": "45"})
    assert r.history and "Saved" in r.text
    with db() as s:
        new = s.scalars(select(VisitSeries).where(VisitSeries.split_from_id == sid)).one()
        assert (new.caregiver_id, new.at, new.duration_min) == (bruno, "09:00", 45)
        assert s.get(VisitSeries, sid).ends_on == date(2030, 4, 7)
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "split")).one()
        assert entry.who == "user:manager@agency.fr"


def _week_visits(db, caregiver):
    lo = datetime(2030, 4, 7, 22, tzinfo=timezone.utc)  # Monday 8 April, Paris
    with db() as s:
        return s.scalars(select(Visit).where(Visit.caregiver_id == caregiver,
                                             Visit.planned_start >= lo,
                                             Visit.planned_start < lo + timedelta(days=7))
                         .order_by(Visit.planned_start)).all()


def test_week_view_shows_conflicts_and_reassignment_asks_first(as_role, db):
    c = as_role("manager")
    client, alice, bruno = _people(db)
    _new_series(c, client, alice)
    with db() as s:  # Bruno is busy on Tuesday 9 April at 08:30 elsewhere
        other = s.scalars(select(Client).order_by(Client.id.desc())).first()
        busy = Visit(organisation_id=other.organisation_id, client_id=other.id,
                     caregiver_id=bruno,
                     planned_start=datetime(2030, 4, 9, 6, 30, tzinfo=timezone.utc),
                     planned_end=datetime(2030, 4, 9, 7, 30, tzinfo=timezone.utc))
        s.add(busy)
        s.commit()
    page = c.get(f"/planning/week?day=2030-04-10&caregiver_id={bruno}").text
    assert 'data-day="2030-04-08"' in page and page.count('class="week-day"') == 7
    assert "conflict" not in re.search(r'data-visit="%d"[^>]*' % busy.id, page).group(0)
    ids = [v.id for v in _week_visits(db, alice)]
    assert len(ids) == 5
    page = c.get(f"/planning/week?day=2030-04-10&caregiver_id={alice}").text
    data = {"csrf": csrf_of(page), "day": "2030-04-08", "caregiver_id": alice,
            "visit_id": ids, "to": bruno}
    r = c.post("/planning/week/reassign", data=data)
    assert r.status_code == 409 and f"chevauche l&#39;intervention {busy.id}" in r.text
    assert len(_week_visits(db, alice)) == 5  # nothing changed
    r = c.post("/planning/week/reassign", data={**data, "confirm": "on"})
    assert r.history and str(r.url).endswith(f"caregiver_id={bruno}&msg=saved")
    assert _week_visits(db, alice) == []
    assert 'class="week-visit vs-planned conflict"' in r.text  # Tuesday now overlaps
    with db() as s:
        moved = s.scalars(select(AuditLog).where(AuditLog.action == "reassign",
                                                 AuditLog.target.startswith("visit:"))).all()
        assert len(moved) == 5
        summary = s.scalars(select(AuditLog).where(AuditLog.target == f"caregiver:{bruno}")
                            ).one()
        assert summary.detail["visits"] == ids and summary.who == "user:manager@agency.fr"


def test_the_client_week_has_seven_columns(as_role, db):
    c = as_role("manager")
    client, alice, _ = _people(db)
    _new_series(c, client, alice)
    page = c.get(f"/planning/week?day=2030-04-10&client_id={client}").text
    assert page.count('class="week-day"') == 7 and page.count("week-visit vs-planned") == 5
    assert 'name="visit_id"' not in page  # reassignment is per caregiver


def test_a_reassignment_reaches_the_readers_at_the_next_push(as_role, db, demo):
    """A visit in the next hours given to another caregiver: the home's reader gets a new
    config version (the new caregiver's card) at the pusher's next poll."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    with db() as s:
        reader = s.scalars(select(Device).order_by(Device.id)).first()
        alice, *_, david = s.scalars(select(Caregiver).order_by(Caregiver.id)).all()
        first = Visit(organisation_id=reader.organisation_id, client_id=reader.client_id,
                      caregiver_id=alice.id, planned_start=now + timedelta(hours=3),
                      planned_end=now + timedelta(hours=4))
        s.add(first)
        s.commit()
        others = [david.id]
    pusher = ConfigPusher(db, lambda *a: None)
    pusher.poll()
    with db() as s:
        readers = {d.client_id: (d.ident, d.config_version) for d in s.scalars(select(Device))}
    c = as_role("manager")
    page = c.get("/planning/week").text
    r = c.post("/planning/week/reassign", data={
        "csrf": csrf_of(page), "day": now.date().isoformat(),
        "caregiver_id": first.caregiver_id, "visit_id": [first.id], "to": others[-1],
        "confirm": "on"})
    assert r.history, r.text
    assert pusher.poll() >= 1
    ident, version = readers[first.client_id]
    with db() as s:
        device = s.scalars(select(Device).where(Device.ident == ident)).one()
        assert device.config_version == version + 1


def test_an_absent_caregiver_is_a_conflict_in_the_week_and_for_a_reassignment(as_role, db):
    """fleet.week.conflicts_for knows approved absences (fleet.absences): the week shows the
    visits of an absent caregiver as conflicts, and reassigning to her asks first."""
    from fleet.models import Absence

    c = as_role("manager")
    client, alice, bruno = _people(db)
    _new_series(c, client, alice)
    with db() as s:  # Bruno is away Wednesday 10 April; a refused request changes nothing
        org_id = s.get(Caregiver, bruno).organisation_id
        for state in ("approved", "refused"):
            s.add(Absence(organisation_id=org_id, caregiver_id=bruno, kind="sick",
                          starts_at=datetime(2030, 4, 9, 22, tzinfo=timezone.utc),
                          ends_at=datetime(2030, 4, 10, 22, tzinfo=timezone.utc),
                          requested_by="test", state=state, request_key=state))
        s.commit()
    ids = [v.id for v in _week_visits(db, alice)]
    page = c.get(f"/planning/week?day=2030-04-10&caregiver_id={alice}").text
    assert "intervenant absent" not in page  # Alice is not away
    r = c.post("/planning/week/reassign", data={
        "csrf": csrf_of(page), "day": "2030-04-08", "caregiver_id": alice,
        "visit_id": ids, "to": bruno})
    assert r.status_code == 409 and r.text.count("intervenant absent") == 1
    assert len(_week_visits(db, alice)) == 5  # nothing changed
    r = c.post("/planning/week/reassign", data={
        "csrf": csrf_of(page), "day": "2030-04-08", "caregiver_id": alice,
        "visit_id": ids, "to": bruno, "confirm": "on"})
    assert 'class="week-visit vs-planned conflict"' in r.text
    assert r.text.count("intervenant absent") == 1  # Wednesday only
