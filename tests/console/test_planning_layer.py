"""One planning layer (fleet.visits, fleet.directory): each rule once, through the REST API and
the console's forms alike; a refusal is the same status and message, and nothing is kept."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from fleet.models import Caregiver, Client, MonthValidation, Organisation, Service, Visit
from tests.console.conftest import csrf_of, form_id_of

# 2030-01-07 09:00 in Paris (winter: UTC+1)
START = datetime(2030, 1, 7, 8, 0, tzinfo=timezone.utc)


class Api:
    """The REST API (an admin key on the demo database)."""

    def __init__(self, client, org_id: int) -> None:
        self.c, self.org_id = client, org_id

    def create(self, client_id, caregiver_id, start, end, service_id=None):
        r = self.c.post("/api/v1/visits", json={
            "client_id": client_id, "caregiver_id": caregiver_id, "service_id": service_id,
            "planned_start": start.isoformat(), "planned_end": end.isoformat()})
        return r.status_code, r.text

    def update(self, visit_id, **fields):
        body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
        r = self.c.patch(f"/api/v1/visits/{visit_id}", json=body)
        return r.status_code, r.text

    def thing(self, path, body, obj_id=None):
        if obj_id is None:
            r = self.c.post(f"/api/v1/{path}", json={"organisation_id": self.org_id, **body})
        else:
            r = self.c.patch(f"/api/v1/{path}/{obj_id}", json=body)
        return r.status_code, r.text


class Console:
    """The console's forms, signed in as a manager who reads French: the console shows the
    French half of the message the API gives in both languages."""

    def __init__(self, client) -> None:
        self.c = client

    @staticmethod
    def _local(t: datetime) -> tuple[str, str]:
        local = t.astimezone(timezone(timedelta(hours=1)))  # Paris in January
        return local.date().isoformat(), local.strftime("%H:%M")

    def _form(self, url, page_url, fields):
        page = self.c.get(page_url).text
        r = self.c.post(url, data={"csrf": csrf_of(page), "form_id": form_id_of(page),
                                   **fields})
        return (201 if r.history else r.status_code), r.text  # saved: a redirect

    def create(self, client_id, caregiver_id, start, end, service_id=None, day=None):
        d, s = self._local(start)
        _, e = self._local(end)
        return self._form("/planning/visits", "/planning/visits/new", {
            "client_id": client_id, "caregiver_id": caregiver_id, "service_id": service_id or "",
            "day": day or d, "start": s, "end": e})

    def update(self, visit_id, **fields):
        page = self.c.get(f"/planning/visits/{visit_id}").text
        values = dict(re.findall(r'name="(\w+)"[^>]*? value="([^"]*)"', page))
        for sel in ("client_id", "caregiver_id", "service_id", "status"):
            options = re.search(rf'name="{sel}"[^>]*>(.*?)</select>', page, re.S).group(1)
            m = re.search(r'<option value="([^"]*)" selected', options)
            values[sel] = m.group(1) if m else ""
        if "planned_start" in fields:
            values["day"], values["start"] = self._local(fields.pop("planned_start"))
        if "planned_end" in fields:
            _, values["end"] = self._local(fields.pop("planned_end"))
        values.update({k: str(v) for k, v in fields.items()})
        r = self.c.post(f"/planning/visits/{visit_id}", data=values)
        return (200 if r.history else r.status_code), r.text

    def thing(self, path, body, obj_id=None):
        url = f"/planning/{path}" + (f"/{obj_id}" if obj_id else "")
        page = self.c.get(url if obj_id else f"{url}/new").text
        data = {"csrf": csrf_of(page), "form_id": form_id_of(page), "active": "on",
                **{k: ("\n".join(v) if isinstance(v, list) else "" if v is None else v)
                   for k, v in body.items()}}
        r = self.c.post(url, data=data)
        return (201 if r.history else r.status_code), r.text  # saved: a redirect


@pytest.fixture(params=["api", "console"])
def entry(request, db):
    with db() as s:
        org_id = s.scalars(select(Organisation.id)).first()
    if request.param == "api":
        return Api(request.getfixturevalue("api"), org_id)
    return Console(request.getfixturevalue("as_role")("manager", "fr"))


@pytest.fixture
def people(db):
    with db() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first()
        caregivers = s.scalars(select(Caregiver).order_by(Caregiver.id)).all()
        return client.id, caregivers[0].id, caregivers[1].id


def _visits(db) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(Visit))


def test_a_visit_is_made_by_either_entry(entry, people, db):
    client, alice, _ = people
    status, _ = entry.create(client, alice, START, START + timedelta(hours=1))
    assert status == 201
    with db() as s:
        v = s.scalars(select(Visit).where(Visit.planned_start == START)).one()
        assert (v.client_id, v.caregiver_id, v.planned_end) == (client, alice,
                                                                START + timedelta(hours=1))


def test_references_belong_to_the_agency(entry, people, db):
    client, alice, _ = people
    before = _visits(db)
    status, text = entry.create(client, 999999, START, START + timedelta(hours=1))
    assert status == 422 and ("introuvable" in text or "choisissez" in text)
    assert _visits(db) == before


def test_the_end_follows_the_start(entry, people, db):
    client, alice, _ = people
    before = _visits(db)
    status, text = entry.create(client, alice, START, START - timedelta(minutes=30))
    assert status == 422 and "la fin doit suivre le début" in text
    assert _visits(db) == before


def test_a_duplicate_visit_is_refused(entry, people, db):
    client, alice, _ = people
    assert entry.create(client, alice, START, START + timedelta(hours=1))[0] == 201
    status, text = entry.create(client, alice, START, START + timedelta(hours=2))
    assert status == 409 and "déjà planifiée" in text
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Visit).where(
            Visit.planned_start == START)) == 1


def test_a_cancelled_visit_is_no_duplicate(entry, people, db):
    client, alice, _ = people
    assert entry.create(client, alice, START, START + timedelta(hours=1))[0] == 201
    with db() as s:
        v = s.scalars(select(Visit).where(Visit.planned_start == START)).one()
        v.status = "cancelled"
        s.commit()
    assert entry.create(client, alice, START, START + timedelta(hours=1))[0] == 201


def test_an_edit_that_makes_a_duplicate_is_refused(entry, people, db):
    client, alice, bruno = people
    assert entry.create(client, alice, START, START + timedelta(hours=1))[0] == 201
    assert entry.create(client, bruno, START, START + timedelta(hours=1))[0] == 201
    with db() as s:
        second = s.scalars(select(Visit).where(Visit.planned_start == START,
                                               Visit.caregiver_id == bruno)).one()
    status, text = entry.update(second.id, caregiver_id=alice)
    assert status == 409 and "déjà planifiée" in text
    with db() as s:
        assert s.get(Visit, second.id).caregiver_id == bruno


def test_a_validated_month_is_locked(entry, people, db):
    client, alice, bruno = people
    assert entry.create(client, alice, START, START + timedelta(hours=1))[0] == 201
    with db() as s:
        visit = s.scalars(select(Visit).where(Visit.planned_start == START)).one()
        s.add(MonthValidation(organisation_id=visit.organisation_id, month="2030-01",
                              validated_who="test"))
        s.commit()
    status, text = entry.update(visit.id, caregiver_id=bruno)
    assert status == 409 and "validée" in text
    with db() as s:
        assert s.get(Visit, visit.id).caregiver_id == alice


def test_times_are_the_agencys(entry, people, db):
    """The console reads local times (a time clocks skip is refused); the API wants offsets."""
    client, alice, _ = people
    before = _visits(db)
    if isinstance(entry, Console):
        status, text = entry.c.post("/planning/visits", data={
            **_fresh(entry.c), "client_id": client, "caregiver_id": alice,
            "day": "2030-03-31", "start": "02:30", "end": "04:00"}).status_code, None
        assert status == 422
    else:
        r = entry.c.post("/api/v1/visits", json={
            "client_id": client, "caregiver_id": alice, "planned_start": "2030-03-31T02:30:00",
            "planned_end": "2030-03-31T04:00:00"})
        assert r.status_code == 422
    assert _visits(db) == before


def _fresh(c) -> dict:
    page = c.get("/planning/visits/new").text
    return {"csrf": csrf_of(page), "form_id": form_id_of(page)}


def test_a_service_code_is_unique_in_the_agency(entry, db):
    status, _ = entry.thing("services", {"name": "Courses", "code": "COURSES", "tasks": []})
    assert status == 201
    status, text = entry.thing("services", {"name": "Autre", "code": "COURSES", "tasks": []})
    assert status == 409 and "Ce code existe déjà" in text
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Service).where(
            Service.code == "COURSES")) == 1


def test_a_name_is_required(entry, db):
    status, text = entry.thing("caregivers", {"name": "   ", "phone": ""})
    assert status == 422 and "obligatoire" in text
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Caregiver).where(
            Caregiver.name == "")) == 0


def test_a_home_point_is_both_coordinates(entry, db):
    with db() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first()
        client.lat = client.lon = None
        s.commit()
    body = {"name": client.name, "lat": "45.75", "lon": None}
    if isinstance(entry, Api):
        body["lat"] = 45.75
    status, text = entry.thing("clients", body, obj_id=client.id)
    assert status == 422 and "vont ensemble" in text
    with db() as s:
        assert s.get(Client, client.id).lat is None
