"""The demo agency's past two weeks, so that the office side has something real to show: visits
clocked by the caregivers' phones (through ingest and matching, as a phone's batches would
be), late ones, forgotten departures and arrivals, manual clock-ins, visits corrected with
their ESPPADOM codes (COD, COA, CRE, SUP, MDT), validated ones, km, expenses, reports and
tasks, funders and funding plans.

Run by `telegest fleet demo` and `telegest up` after fleet.demo.seed_demo (the tests' demo
fixture leaves it out: its today stays as it was). Idempotent: a second run adds nothing.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import corrections, validation
from fleet.ingest import ingest_batch
from fleet.matching import match_pending
from fleet.models import (AlertSettings, Caregiver, Client, Device, Funder, FundingPlan,
                          Organisation, Service, ServiceTask, Visit, VisitRecord, VisitTaskCheck)

TZ = ZoneInfo("Europe/Paris")
DAYS = 14
COORDINATOR = "user:coordination@agence-demo.example"
# (hour, minute) of each caregiver's three visits of a day, shifted by 15 min per caregiver
SLOTS = ((8, 0), (10, 30), (14, 0))
HOMES = {  # near each client's address, for the phones' positions
    "Mme Jeanne Durand": (45.7578, 4.8520), "M. Paul Petit": (45.7676, 4.8345),
    "Mme Odette Moreau": (45.7719, 4.8902), "M. René Garnier": (45.7448, 4.8421),
    "Mme Lucie Fabre": (45.7772, 4.7755)}
CITIES = {"Mme Jeanne Durand": ("69003", "Lyon", date(1936, 4, 12)),
          "M. Paul Petit": ("69001", "Lyon", date(1941, 9, 3)),
          "Mme Odette Moreau": ("69100", "Villeurbanne", date(1929, 1, 27)),
          "M. René Garnier": ("69007", "Lyon", date(1945, 6, 18)),
          "Mme Lucie Fabre": ("69130", "Écully", date(1938, 11, 30))}
FUNDERS = (("APA", "Département du Rhône — APA", "69-APA-0001"),
           ("PCH", "Métropole de Lyon — PCH", "69M-PCH-0002"),
           ("AM", "CPAM du Rhône", "CPAM-691"))
# what happened at each visit, by its number in the fortnight (the rest: on time)
STORY = {3: "late", 8: "no_out", 11: "manual", 15: "no_in", 19: "late", 22: "nobody",
         27: "no_out", 31: "cancelled", 34: "manual", 38: "late", 41: "mdt", 45: "no_out",
         52: "late", 57: "no_in", 61: "no_out", 66: "manual", 70: "late", 75: "nobody",
         82: "no_out", 88: "late", 93: "no_out", 97: "manual", 101: "no_in", 106: "late",
         112: "no_out", 118: "manual", 123: "late", 129: "no_out", 133: "no_in", 137: "nobody",
         140: "late"}  # 12 working days of 12 visits: 144


def _days(today: date) -> list[date]:
    """The past fortnight's working days (no Sundays), oldest first."""
    return [d for d in (today - timedelta(days=n) for n in range(DAYS, 0, -1))
            if d.weekday() != 6]


def _identities(session: Session, org: Organisation, clients: list[Client]) -> None:
    """What the exports need: the provider's identity, the beneficiaries, funders, plans."""
    org.siret = org.siret or "81234567800019"
    org.esppadom_id = org.esppadom_id or "SAAD-DEMO-69"
    for c in clients:
        postcode, city, born = CITIES.get(c.name, ("69000", "Lyon", None))
        c.postcode, c.city = c.postcode or postcode, c.city or city
        c.birth_date = c.birth_date or born
    funders = []
    for kind, name, ident in FUNDERS:
        f = session.scalars(select(Funder).where(Funder.organisation_id == org.id,
                                                 Funder.name == name)).first()
        if f is None:
            f = Funder(organisation_id=org.id, kind=kind, name=name, identifier=ident)
            session.add(f)
            session.flush()
        funders.append(f)
    start = (date.today() - timedelta(days=180)).replace(day=1)
    for i, c in enumerate(clients):
        if session.scalars(select(FundingPlan).where(FundingPlan.client_id == c.id)).first():
            continue
        funder = funders[0] if i < 3 else funders[1] if i == 3 else funders[2]
        session.add(FundingPlan(
            organisation_id=org.id, client_id=c.id, funder_id=funder.id,
            reference=f"PA-2026-{i + 1:04d}",  # every service of the client's plan
            beneficiary_ref=f"BEN{c.id:06d}", minutes_per_month=1800 + 300 * i,
            valid_from=start))
    settings = session.get(AlertSettings, org.id)
    if settings is None:
        session.add(AlertSettings(organisation_id=org.id,
                                  oncall_emails="astreinte@agence-demo.example"))


def _phones(session: Session, org: Organisation, caregivers: list) -> dict[int, Device]:
    """The caregivers' phones (caregiver id -> device): they clocked the past fortnight."""
    out = {}
    for i, g in enumerate(caregivers, 1):
        ident = f"demo-p{i}"
        d = session.scalars(select(Device).where(Device.ident == ident)).first()
        if d is None:
            d = Device(ident=ident, kind="phone", organisation_id=org.id, caregiver_id=g.id,
                       status="active")
            session.add(d)
            session.flush()
        out[g.id] = d
    return out


def _event(seq: int, tag: str, direction: str, at: datetime, home: tuple[float, float],
           rng: random.Random, method: str | None = None) -> dict:
    ev = {"seq": seq, "tag": tag, "dir": direction, "method": method or rng.choice(
        ("nfc", "nfc", "nfc", "qr")), "ts": int(at.timestamp()), "tq": "synced",
          "pos": [round(home[0] + rng.uniform(-3e-4, 3e-4), 6),
                  round(home[1] + rng.uniform(-3e-4, 3e-4), 6), rng.choice((8, 12, 25))]}
    if method == "manual":
        ev["reason"] = rng.choice(("tag unreadable · badge illisible",
                                   "phone NFC off · NFC du téléphone désactivé"))
    return ev


def seed_history(session: Session, info: dict, now: datetime) -> dict:
    """Add the past two weeks to the demo agency `info` (seed_demo's answer); the caller
    commits. Returns {"visits": n, "corrected": {code: n}, "validated": n} (zeros when the
    fortnight is there already)."""
    org = session.get(Organisation, info["organisation_id"])
    today = now.astimezone(TZ).date()
    days = _days(today)
    lo = datetime.combine(days[0], time(0), TZ)
    hi = datetime.combine(today, time(0), TZ)
    summary: dict = {"visits": 0, "corrected": {}, "validated": 0}
    clients = list(session.scalars(select(Client).where(Client.organisation_id == org.id)
                                   .order_by(Client.id)))
    caregivers = list(session.scalars(select(Caregiver).where(
        Caregiver.organisation_id == org.id).order_by(Caregiver.id)))
    services = list(session.scalars(select(Service).where(Service.organisation_id == org.id)
                                    .order_by(Service.id)))
    _identities(session, org, clients)
    if session.scalars(select(Visit.id).where(Visit.organisation_id == org.id,
                                              Visit.planned_start >= lo,
                                              Visit.planned_start < hi).limit(1)).first():
        return summary
    phones = _phones(session, org, caregivers)
    rng = random.Random(20261205)
    plan: list[tuple[Visit, str]] = []
    n = 0
    for day in days:
        for c, g in enumerate(caregivers):
            for k, (hh, mm) in enumerate(SLOTS):
                start = datetime.combine(day, time(hh, mm), TZ) + timedelta(minutes=15 * c)
                visit = Visit(organisation_id=org.id,
                              client_id=clients[(c + k + day.toordinal()) % len(clients)].id,
                              caregiver_id=g.id, service_id=services[(c + k) % 2].id,
                              planned_start=start, planned_end=start + timedelta(hours=1))
                session.add(visit)
                n += 1
                plan.append((visit, STORY.get(n, "on_time")))
    session.flush()
    _clock(session, plan, phones, info["tags"], {c.id: c.name for c in clients}, rng)
    while match_pending(session):
        pass
    session.flush()
    _notes(session, plan, rng)
    summary["visits"] = len(plan)
    _correct(session, plan, today, summary)
    return summary


def _clock(session: Session, plan: list[tuple[Visit, str]], phones: dict[int, Device],
           tags: dict[str, str], names: dict[int, str], rng: random.Random) -> None:
    """The phones' batches, a day at a time, through ingest as the gateway hands them in."""
    per_phone: dict[int, list[dict]] = {}
    for visit, story in plan:
        if story in ("nobody", "cancelled"):
            continue
        name = names[visit.client_id]
        tag, home = tags[name], HOMES.get(name, (45.76, 4.84))
        events = per_phone.setdefault(visit.caregiver_id, [])
        delay = (rng.randint(35, 50) if story == "late" else rng.randint(-5, 4))
        stay = timedelta(minutes=rng.randint(-4, 8))
        if story != "no_in":
            events.append(_event(0, tag, "in", visit.planned_start + timedelta(minutes=delay),
                                 home, rng, "manual" if story == "manual" else None))
        if story != "no_out":
            events.append(_event(0, tag, "out", visit.planned_end + stay, home, rng))
    messages = []
    for caregiver_id, events in per_phone.items():
        phone = phones[caregiver_id]
        events.sort(key=lambda e: e["ts"])
        for seq, ev in enumerate(events, phone.acked_seq + 1):
            ev["seq"] = seq
        for i in range(0, len(events), 4):  # a batch of 4 fits in 1 KiB with tokens
            chunk = events[i:i + 4]
            sent = chunk[-1]["ts"] + 30
            messages.append((f"tg/v1/{phone.ident}/up/clock",
                             json.dumps({"now": sent, "events": chunk}).encode(), sent))
    messages.sort(key=lambda m: m[2])
    counts: Counter = Counter()
    ingest_batch(session, messages, counters=counts, source="demo")
    sent = sum(len(e) for e in per_phone.values())
    if counts["stored"] != sent:  # the demo must show what it says it seeded
        raise RuntimeError(f"demo history: {counts['stored']} of {sent} events stored "
                           f"({dict(counts)})")


def _notes(session: Session, plan: list[tuple[Visit, str]], rng: random.Random) -> None:
    """km, expenses, the report and the tasks, as the caregiver app's visit report writes
    them (fleet.gateway.routes.visit_report)."""
    records = {r.visit_id: r for r in session.scalars(select(VisitRecord).where(
        VisitRecord.visit_id.in_([v.id for v, _ in plan])))}
    tasks: dict[int, list[int]] = {}
    for sid, tid in session.execute(select(ServiceTask.service_id, ServiceTask.id)):
        tasks.setdefault(sid, []).append(tid)
    for visit, story in plan:
        record = records.get(visit.id)
        if record is None or record.actual_start is None:
            continue
        record.km = rng.choice((0, 0, 3, 5, 8, 12))
        record.expenses_cents = rng.choice((None, None, 450, 1280))
        record.report = rng.choice((
            "RAS · Rien à signaler", "Bonne humeur, a bien mangé",
            "Fatigue en fin de matinée, famille prévenue", "Courses faites, frigo rangé"))
        for j, tid in enumerate(tasks.get(visit.service_id, [])):
            done = not (story == "manual" and j == 2)
            session.add(VisitTaskCheck(visit_id=visit.id, service_task_id=tid, done=done,
                                       at=visit.planned_end,
                                       comment=None if done else "pas le temps · manque de temps"))


def _correct(session: Session, plan: list[tuple[Visit, str]], today: date,
             summary: dict) -> None:
    """The coordinator's week: older visits corrected with their codes and validated; the
    last three days' left to review."""
    recent = today - timedelta(days=3)
    done = summary["corrected"]
    for visit, story in plan:
        day = visit.planned_start.astimezone(TZ).date()
        if day >= recent:
            continue
        change = {
            "no_out": ("COD", None, visit.planned_end,
                       "departure forgotten, confirmed by phone · départ oublié, confirmé "
                       "par téléphone"),
            "no_in": ("COA", visit.planned_start, None,
                      "arrival forgotten, confirmed by the client · arrivée oubliée, "
                      "confirmée par l'usager"),
            "nobody": ("CRE", visit.planned_start, visit.planned_end,
                       "phone out of battery, visit confirmed by the family · téléphone "
                       "déchargé, intervention confirmée par la famille"),
            "cancelled": ("SUP", None, None, "client in hospital · usager hospitalisé"),
            "mdt": ("MDT", None, None, "meals, not personal care · prestation repas, pas "
                                       "toilette"),
        }.get(story)
        if change:
            code, arrival, departure, why = change
            corrections.correct(session, visit, code=code, arrival=arrival,
                                departure=departure, why=why, who=COORDINATOR, role="manager",
                                organisation_id=visit.organisation_id)
            done[code] = done.get(code, 0) + 1
        if day < today - timedelta(days=7) and story != "manual":
            if corrections.record_of(session, visit.id) is not None:
                validation.validate_visit(session, visit, COORDINATOR, "manager")
                summary["validated"] += 1
