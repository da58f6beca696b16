"""An agency with funders, funding plans and visits in every state an export meets.

Records are written as the office side leaves them: raw times from clock events (with their
method), the retained period and the correction code in force."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fleet.models import (Caregiver, Client, ClockEvent, Device, Funder, FundingPlan,
                          Organisation, Service, Visit, VisitRecord)

PARIS = ZoneInfo("Europe/Paris")


def local(day: str, hhmm: str) -> datetime:
    return datetime.combine(date.fromisoformat(day),
                            datetime.strptime(hhmm, "%H:%M").time(), PARIS)


class Office:
    """Builds visits with records; `session` is committed by the caller."""

    def __init__(self, session, org, device) -> None:
        self.session, self.org, self.device = session, org, device
        self.seq = 0

    def event(self, when: datetime, dir: str, method: str) -> ClockEvent:
        self.seq += 1
        ev = ClockEvent(device_id=self.device.id, seq=self.seq, badge_uid="04A1B2C3D4E5F6",
                        dir=dir, method=method, device_ts=when, received_at=when,
                        time_quality="synced", raw={}, match_status="matched",
                        reason="tag unreadable" if method == "manual" else None)
        self.session.add(ev)
        self.session.flush()
        return ev

    def visit(self, client, carer, day: str, start: str, planned_min: int = 60, *,
              arrival: str | None = None, departure: str | None = None,
              retained: tuple[str, str] | None = None, code: str | None = None,
              methods: tuple[str, str] = ("nfc", "nfc"), service=None, km: int | None = None,
              expenses_cents: int | None = None, record: bool = True) -> Visit:
        planned = local(day, start)
        v = Visit(organisation_id=self.org.id, client_id=client.id, caregiver_id=carer.id,
                  service_id=service.id if service else None, planned_start=planned,
                  planned_end=planned + timedelta(minutes=planned_min), status="done")
        self.session.add(v)
        self.session.flush()
        if not record:
            return v
        rec = VisitRecord(visit_id=v.id, status="done", correction_code=code, km=km,
                          expenses_cents=expenses_cents)
        if arrival:
            ev = self.event(local(day, arrival), "in", methods[0])
            rec.actual_start, rec.start_event_id = ev.device_ts, ev.id
        if departure:
            ev = self.event(local(day, departure), "out", methods[1])
            rec.actual_end, rec.end_event_id = ev.device_ts, ev.id
        if retained:
            rec.retained_start, rec.retained_end = local(day, retained[0]), local(day,
                                                                                  retained[1])
        self.session.add(rec)
        self.session.flush()
        return v


@pytest.fixture
def office(session):
    return build_office(session)


def build_office(session) -> Office:
    """The agency: two clients (APA, PCH plans), two caregivers, a service, a reader."""
    org = Organisation(name="Aide à domicile du Val", timezone="Europe/Paris",
                       siret="12345678900011", esppadom_id="SAAD449")
    session.add(org)
    session.flush()
    durand = Client(organisation_id=org.id, name="Mme Durand", address="1 rue des Lilas",
                    postcode="75011", city="Paris", birth_date=date(1938, 4, 2))
    petit = Client(organisation_id=org.id, name="M. Petit", address="2 place du Marché",
                   postcode="94300", city="Vincennes")
    alice = Caregiver(organisation_id=org.id, name="Alice Martin")
    bruno = Caregiver(organisation_id=org.id, name="Bruno Leroy")
    lever = Service(organisation_id=org.id, name="Aide au lever", code="LEV")
    session.add_all([durand, petit, alice, bruno, lever])
    session.flush()
    apa = Funder(organisation_id=org.id, kind="APA", name="CD 75 APA", identifier="CD75-APA")
    pch = Funder(organisation_id=org.id, kind="PCH", name="CD 94 PCH", identifier="CD94-PCH")
    am = Funder(organisation_id=org.id, kind="AM", name="CPAM", identifier="")
    session.add_all([apa, pch, am])
    session.flush()
    session.add_all([
        FundingPlan(organisation_id=org.id, client_id=durand.id, funder_id=apa.id,
                    reference="APA-2026-001", beneficiary_ref="B75-0042",
                    valid_from=date(2026, 1, 1)),
        FundingPlan(organisation_id=org.id, client_id=petit.id, funder_id=pch.id,
                    reference="PCH-77", valid_from=date(2026, 11, 1),
                    valid_to=date(2026, 12, 31)),
    ])
    device = Device(ident="r-exp", kind="reader", organisation_id=org.id, client_id=durand.id)
    session.add(device)
    session.commit()
    o = Office(session, org, device)
    o.clients, o.carers, o.service = (durand, petit), (alice, bruno), lever
    o.funders = {"APA": apa, "PCH": pch, "AM": am}
    return o
