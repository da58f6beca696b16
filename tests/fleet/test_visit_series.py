"""Visit series (fleet.visit_series) through /api/v1/visit-series: recurrences, exceptions,
"this one" and "this and following", the rolling horizon, bad input."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet import visit_series
from fleet.api import create_app
from fleet.config import Settings
from fleet.keys import create_api_key
from fleet.models import Visit, VisitSeries

PARIS = ZoneInfo("Europe/Paris")
# the horizon is reckoned from the agency's today: series start in 2030, far ahead of it, so
# tests expand them from their first day by moving "today" there (fleet.visit_series.today_in)
FIRST = date(2030, 3, 25)  # a Monday; clocks go forward on Sunday 2030-03-31


@pytest.fixture
def app(database_url, monkeypatch):
    monkeypatch.setattr(visit_series, "today_in", lambda session, org, now=None: FIRST)
    return create_app(Settings(database_url=database_url))


@pytest.fixture
def api(app):
    with app.state.sessions() as s:
        key = create_api_key(s, "admin", "series")
        s.commit()
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


@pytest.fixture
def org(api):
    org = api.post("/api/v1/organisations", json={"name": "Val d'Aide"}).json()
    c = api.post("/api/v1/clients", json={"organisation_id": org["id"], "name": "Mme Durand"})
    a = api.post("/api/v1/caregivers", json={"organisation_id": org["id"], "name": "Alice"})
    b = api.post("/api/v1/caregivers", json={"organisation_id": org["id"], "name": "Bruno"})
    return {**org, "client": c.json()["id"], "alice": a.json()["id"], "bruno": b.json()["id"]}


def _series(api, org, rrule, **extra):
    return api.post("/api/v1/visit-series", json={
        "client_id": org["client"], "caregiver_id": org["alice"], "rrule": rrule,
        "starts_on": FIRST.isoformat(), "at": "08:00", "duration_min": 60, **extra})


def _local(visit: dict) -> datetime:
    return datetime.fromisoformat(visit["planned_start"]).astimezone(PARIS)


def _count(app, *where) -> int:
    with app.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(Visit).where(*where))


def test_every_weekday_for_eight_weeks_at_eight_local_across_the_clock_change(api, org):
    r = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    assert r.status_code == 201, r.text
    s = r.json()
    assert len(s["visits"]) == 8 * 5 and s["expanded_until"] == "2030-05-19"
    local = [_local(v) for v in s["visits"]]
    assert {t.strftime("%H:%M") for t in local} == {"08:00"}
    assert {t.weekday() for t in local} == {0, 1, 2, 3, 4}
    # the same local hour is another UTC hour after the clocks changed
    assert s["visits"][0]["planned_start"].startswith("2030-03-25T07:00")
    assert s["visits"][5]["planned_start"].startswith("2030-04-01T06:00")
    assert api.get(f"/api/v1/visit-series/{s['id']}").json()["rrule"] == s["rrule"]
    assert api.get("/api/v1/visit-series", params={"client_id": org["client"]}
                   ).json()["total"] == 1


def test_monday_wednesday_friday_every_other_week(api, org):
    s = _series(api, org, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR").json()
    days = [_local(v).date() for v in s["visits"]]
    assert days[:4] == [date(2030, 3, 25), date(2030, 3, 27), date(2030, 3, 29),
                        date(2030, 4, 8)]
    assert len(days) == 4 * 3


def test_a_count_ends_the_series_and_no_end_is_bounded_by_the_horizon(api, org):
    assert len(_series(api, org, "FREQ=DAILY;COUNT=3").json()["visits"]) == 3
    endless = _series(api, org, "FREQ=DAILY", caregiver_id=org["bruno"]).json()
    assert len(endless["visits"]) == visit_series.HORIZON_DAYS


@pytest.mark.parametrize("rrule, says", [
    ("FREQ=WEEKLY;BYDAY=XX", "récurrence mal formée"),
    ("every monday", "récurrence mal formée"),
    ("FREQ=HOURLY", "fréquence invalide"),
    ("FREQ=DAILY;COUNT=0", "nombre d'occurrences invalide"),
    ("FREQ=DAILY;COUNT=100000", "nombre d'occurrences invalide"),
    ("FREQ=DAILY;COUNT=5;UNTIL=20300401", "l'un ou l'autre"),
    ("FREQ=DAILY;UNTIL=20200101", "date de fin invalide"),
    ("FREQ=DAILY;BYHOUR=8", "élément de récurrence refusé"),
    ("FREQ=WEEKLY;BYDAY=SA;UNTIL=20300329", "aucune occurrence"),
])
def test_a_bad_recurrence_is_refused_and_nothing_is_made(api, org, app, rrule, says):
    r = _series(api, org, rrule)
    assert r.status_code == 422 and says in r.json()["detail"], r.text
    assert _count(app) == 0
    with app.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(VisitSeries)) == 0


def test_a_series_over_a_planned_visit_is_refused_whole(api, org, app):
    start = datetime(2030, 4, 3, 8, tzinfo=PARIS)
    assert api.post("/api/v1/visits", json={
        "client_id": org["client"], "caregiver_id": org["alice"],
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(hours=1)).isoformat()}).status_code == 201
    r = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,WE")
    assert r.status_code == 409 and "2030-04-03" in r.json()["detail"]
    assert "déjà planifiée" in r.json()["detail"]
    assert _count(app) == 1


def test_cancel_one_occurrence_then_the_daily_job_does_not_bring_it_back(api, org, app):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR").json()
    r = api.post(f"/api/v1/visit-series/{s['id']}/occurrences/2030-03-27/cancel")
    assert r.status_code == 200 and r.json()["exdates"] == ["2030-03-27"]
    cancelled = [v for v in r.json()["visits"] if v["status"] == "cancelled"]
    assert [_local(v).date() for v in cancelled] == [date(2030, 3, 27)]
    # a day the rule does not have is no occurrence
    assert api.post(f"/api/v1/visit-series/{s['id']}/occurrences/2030-03-30/cancel"
                    ).status_code == 404
    with app.state.sessions() as session:
        now = datetime(2030, 3, 25, 12, tzinfo=timezone.utc)
        assert visit_series.extend_all(session, now) == 0  # idempotent
        later = visit_series.extend_all(session, now + timedelta(days=7))
        session.commit()
    assert later == 5  # one more week at the horizon
    assert _count(app, Visit.status == "cancelled") == 1


def test_change_this_one(api, org, app):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR").json()
    r = api.patch(f"/api/v1/visit-series/{s['id']}", json={
        "scope": "this", "day": "2030-03-26", "caregiver_id": org["bruno"], "at": "10:30"})
    assert r.status_code == 200, r.text
    changed = [v for v in r.json()["visits"] if v["caregiver_id"] == org["bruno"]]
    assert [_local(v).strftime("%d %H:%M") for v in changed] == ["26 10:30"]
    assert r.json()["caregiver_id"] == org["alice"]  # the series itself is unchanged


def test_change_this_and_following_splits_the_series(api, org, app):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR").json()
    api.post(f"/api/v1/visit-series/{s['id']}/occurrences/2030-04-10/cancel")
    r = api.patch(f"/api/v1/visit-series/{s['id']}", json={
        "scope": "following", "day": "2030-04-08", "caregiver_id": org["bruno"],
        "rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR"})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["split_from_id"] == s["id"] and new["starts_on"] == "2030-04-08"
    assert new["exdates"] == ["2030-04-10"]
    assert {_local(v).weekday() for v in new["visits"]} == {0, 2, 4}
    assert {v["caregiver_id"] for v in new["visits"]} == {org["bruno"]}
    assert "2030-04-10" not in {str(_local(v).date()) for v in new["visits"]}
    old = api.get(f"/api/v1/visit-series/{s['id']}").json()
    assert old["ends_on"] == "2030-04-07"
    live = [v for v in old["visits"] if v["status"] != "cancelled"]
    assert max(_local(v).date() for v in live) == date(2030, 4, 5)
    # the old series' Tuesdays and Thursdays from the split on are cancelled, none is lost;
    # the occurrence cancelled before stays with it
    assert {_local(v).weekday() for v in old["visits"] if v["status"] == "cancelled"
            and _local(v).date() > date(2030, 4, 10)} == {1, 3}


def test_a_split_that_would_plan_twice_changes_nothing(api, org, app):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO").json()
    other = _series(api, org, "FREQ=WEEKLY;BYDAY=MO", caregiver_id=org["bruno"]).json()
    before = api.get(f"/api/v1/visit-series/{s['id']}").json()
    r = api.patch(f"/api/v1/visit-series/{other['id']}", json={
        "scope": "following", "day": "2030-04-15", "caregiver_id": org["alice"]})
    assert r.status_code == 409 and "déjà planifiée" in r.json()["detail"]
    assert api.get(f"/api/v1/visit-series/{s['id']}").json() == before
    after = api.get(f"/api/v1/visit-series/{other['id']}").json()
    assert after["ends_on"] is None and {v["caregiver_id"] for v in after["visits"]} == {
        org["bruno"]}
    with app.state.sessions() as session:
        assert session.scalar(select(func.count()).select_from(VisitSeries)) == 2


def test_the_worker_job_extends_the_series(api, org, database_url, monkeypatch):
    from fleet.worker import IngestWorker

    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO").json()
    assert len(s["visits"]) == 8
    w = IngestWorker(database_url, publish=lambda *a: None)
    w.open_database()
    w.extend_series()  # today (2026) is before the series' horizon: nothing to add
    assert w.counts["series_visits"] == 0 and w.counts["errors"] == 0


def test_the_series_are_in_the_openapi(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/visit-series", "/api/v1/visit-series/{series_id}",
            "/api/v1/visit-series/{series_id}/occurrences/{day}/cancel"} <= set(paths)


@pytest.mark.postgres
def test_on_postgres_a_series_its_exceptions_and_a_refused_split(pg_database_url, monkeypatch):
    monkeypatch.setattr(visit_series, "today_in", lambda session, org, now=None: FIRST)
    app = create_app(Settings(database_url=pg_database_url))
    with app.state.sessions() as s:
        key = create_api_key(s, "admin", "series")
        s.commit()
    pg = TestClient(app)
    pg.headers["Authorization"] = f"Bearer {key}"
    o = pg.post("/api/v1/organisations", json={"name": "Val d'Aide"}).json()
    people = {n: pg.post("/api/v1/caregivers", json={"organisation_id": o["id"], "name": n}
                         ).json()["id"] for n in ("alice", "bruno")}
    client = pg.post("/api/v1/clients", json={"organisation_id": o["id"], "name": "Mme D"}
                     ).json()["id"]
    ids = {"client": client, **people}
    s = _series(pg, ids, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR").json()
    assert len(s["visits"]) == 40
    assert pg.post(f"/api/v1/visit-series/{s['id']}/occurrences/2030-03-27/cancel"
                   ).status_code == 200
    other = _series(pg, ids, "FREQ=WEEKLY;BYDAY=MO", caregiver_id=ids["bruno"]).json()
    r = pg.patch(f"/api/v1/visit-series/{other['id']}", json={
        "scope": "following", "day": "2030-04-15", "caregiver_id": ids["alice"]})
    assert r.status_code == 409
    assert pg.get(f"/api/v1/visit-series/{other['id']}").json()["ends_on"] is None
    with app.state.sessions() as session:
        now = datetime(2030, 3, 25, 12, tzinfo=timezone.utc)
        assert visit_series.extend_all(session, now) == 0
        assert visit_series.extend_all(session, now + timedelta(days=7)) == 5 + 1
        session.commit()
        assert session.scalar(select(func.count()).select_from(Visit).where(
            Visit.status == "cancelled")) == 1
    app.state.engine.dispose()


def test_week_and_reassignment_through_the_api(api, org, app):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR").json()
    monday = datetime(2030, 4, 1, 8, 30, tzinfo=PARIS)
    busy = api.post("/api/v1/visits", json={
        "client_id": org["client"], "caregiver_id": org["bruno"],
        "planned_start": monday.isoformat(),
        "planned_end": (monday + timedelta(hours=1)).isoformat()}).json()
    w = api.get("/api/v1/week", params={"day": "2030-04-03", "caregiver_id": org["alice"]})
    assert w.status_code == 200 and w.json()["monday"] == "2030-04-01"
    week_ids = [v["id"] for v in w.json()["visits"]]
    assert len(week_ids) == 5 and w.json()["conflicts"] == {}
    assert api.get("/api/v1/week", params={"day": "2030-04-03"}).status_code == 422
    r = api.post("/api/v1/reassignments", json={"visit_ids": week_ids,
                                                "caregiver_id": org["bruno"]})
    assert r.status_code == 409 and f"visit {busy['id']}" in r.json()["detail"]
    assert _count(app, Visit.caregiver_id == org["bruno"]) == 1  # nothing changed
    r = api.post("/api/v1/reassignments", json={"visit_ids": week_ids,
                                                "caregiver_id": org["bruno"], "confirm": True})
    assert r.status_code == 200 and r.json()["reassigned"] == week_ids
    assert list(r.json()["conflicts_accepted"]) == [str(week_ids[0])]
    w = api.get("/api/v1/week", params={"day": "2030-04-03", "caregiver_id": org["bruno"]})
    assert set(w.json()["conflicts"]) == {str(week_ids[0]), str(busy["id"])}
    assert len(s["visits"]) == 40


def test_change_following_from_the_first_day_changes_the_whole_series(api, org):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO,WE").json()
    r = api.patch(f"/api/v1/visit-series/{s['id']}", json={
        "scope": "following", "day": FIRST.isoformat(), "at": "09:15"})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["starts_on"] == FIRST.isoformat() and len(new["visits"]) == 16
    assert {_local(v).strftime("%H:%M") for v in new["visits"]} == {"09:15"}
    old = api.get(f"/api/v1/visit-series/{s['id']}").json()
    assert old["visits"] == [] and old["ends_on"] == "2030-03-24"


def test_dates_out_of_reason_are_a_clear_refusal(api, org):
    r = _series(api, org, "FREQ=WEEKLY;BYDAY=TU", starts_on="9999-12-01")
    assert r.status_code == 422 and "premier jour invalide" in r.json()["detail"]
    leap = _series(api, org, "FREQ=WEEKLY;BYDAY=TU", starts_on="2028-02-29",
                   ends_on="2040-01-01")
    assert leap.status_code == 422 and "fin trop lointaine" in leap.json()["detail"]
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO").json()
    assert api.patch(f"/api/v1/visit-series/{s['id']}", json={
        "scope": "this", "day": "9999-12-27", "at": "09:00"}).status_code == 404


def test_another_agencys_key_neither_sees_nor_reassigns_them(api, org, app):
    s = _series(api, org, "FREQ=WEEKLY;BYDAY=MO").json()
    other = api.post("/api/v1/organisations", json={"name": "Agence B"}).json()
    with app.state.sessions() as session:
        key = create_api_key(session, "admin", "B", organisation_id=other["id"])
        session.commit()
    b = TestClient(app)
    b.headers["Authorization"] = f"Bearer {key}"
    assert b.get(f"/api/v1/visit-series/{s['id']}").status_code == 404
    assert b.get("/api/v1/visit-series").json()["total"] == 0
    mine = b.post("/api/v1/caregivers", json={"name": "Zoé"}).json()["id"]
    r = b.post("/api/v1/reassignments", json={"visit_ids": [s["visits"][0]["id"]],
                                              "caregiver_id": mine, "confirm": True})
    assert r.status_code == 404
    assert b.get("/api/v1/week", params={"day": "2030-04-01",
                                         "caregiver_id": org["alice"]}).status_code == 404
    assert api.get(f"/api/v1/visit-series/{s['id']}").json()["visits"] == s["visits"]
