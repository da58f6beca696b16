"""A demo agency with a realistic day, so the simulator and the console have something to show."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet import tagtokens
from fleet.models import (Badge, Caregiver, Client, Device, Organisation, Service, ServiceTask,
                          Visit)

DEMO_ORG = "Agence démo"
TZ = ZoneInfo("Europe/Paris")
CLIENTS = [("Mme Jeanne Durand", "3 rue des Lilas, 69003 Lyon"),
           ("M. Paul Petit", "12 place du Marché, 69001 Lyon"),
           ("Mme Odette Moreau", "5 impasse des Tilleuls, 69100 Villeurbanne"),
           ("M. René Garnier", "48 avenue Jean Jaurès, 69007 Lyon"),
           ("Mme Lucie Fabre", "9 chemin du Moulin, 69130 Écully")]
CAREGIVERS = [("Alice Martin", "0601020304"), ("Bruno Leroy", "0605060708"),
              ("Chloé Bernard", "0611121314"), ("David Roux", "0615161718")]
SERVICES = [("Aide à la toilette", "TOIL", ["Toilette", "Habillage", "Soins de confort"]),
            ("Aide aux repas", "REPAS", ["Préparation du repas", "Aide à la prise du repas",
                                         "Vaisselle"])]
VISIT_MIN, SPACING_MIN = 60, 120
DAY_START, DAY_END = time(7, 0), time(20, 0)


def _get(session: Session, model, defaults: dict | None = None, **key):
    obj = session.scalars(select(model).filter_by(**key)).first()
    if obj is None:
        obj = model(**key, **(defaults or {}))
        session.add(obj)
        session.flush()
    return obj


def _slots(day: date, now: datetime) -> list[datetime]:
    """Visit starts for caregiver 0, 07:00..20:00 local, anchored near `now` when `now` is
    within the day so that some visits are past, some in progress and some to come."""
    first = datetime.combine(day, DAY_START, TZ)
    last = datetime.combine(day, DAY_END, TZ) - timedelta(minutes=VISIT_MIN)
    anchor = first
    if first <= now <= last:
        local = now.astimezone(TZ)
        anchor = local.replace(minute=local.minute // 15 * 15, second=0, microsecond=0)
        anchor -= timedelta(minutes=30)
    step = timedelta(minutes=SPACING_MIN)
    while anchor - step >= first:
        anchor -= step
    out = []
    while anchor <= last:
        out.append(anchor)
        anchor += step
    return out


def _evening_visits(session: Session, org_id: int, clients: list, caregivers: list,
                    services: list, day: date, now: datetime) -> None:
    """When the demo starts outside its working hours on its own day (in the evening, with
    nothing left to do at a home today, or at night, before the day's first visit), a home gets
    one visit under way now, so that every reader has a caregiver to expect."""
    local = now.astimezone(TZ)
    if local.date() != day:
        return
    lo = datetime.combine(day, time(0), TZ)
    start = max(lo, local.replace(minute=local.minute // 15 * 15, second=0, microsecond=0))
    night = local.time() < DAY_START
    pending = [v for v in session.new if isinstance(v, Visit)]
    for i, c in enumerate(clients):
        if any(v.client_id == c.id and v.planned_end > now
               and (not night or v.planned_start <= now + timedelta(minutes=30))
               for v in pending):
            continue
        session.add(Visit(organisation_id=org_id, client_id=c.id,
                          # the last caregiver first: Alice and Bruno stay free at Mme Durand's
                          # for the visits the caregiver-app tests plan there
                          caregiver_id=caregivers[-1 - i % len(caregivers)].id,
                          service_id=services[i % len(services)].id, planned_start=start,
                          planned_end=start + timedelta(minutes=VISIT_MIN)))


def demo_day(now: datetime) -> date:
    """The demo agency's today at `now`: its day in Paris, not the UTC date (from 23:00 or
    22:00 UTC they differ, and the day's planning would be yesterday's)."""
    return now.astimezone(TZ).date()


def seed_demo(session: Session, day: date, now: datetime) -> dict:
    """Create (or find) the demo agency and its planning of `day`; the caller commits.

    Returns {"organisation_id", "devices": ["demo-r1", ...], "badges": {caregiver: uid},
    "tags": {client: tag}, "visits": [{"id", "device", "client", "caregiver", "badge",
    "start", "end", "when"}]} with Unix-second times and `when` in past | now | later.
    Running it again for the same day returns the same agency and visits, adding nothing.
    """
    org = _get(session, Organisation, {"timezone": "Europe/Paris", "tolerance_min": 30,
                                       "rounding_mode": "none"}, name=DEMO_ORG)
    clients = [_get(session, Client, {"address": a}, organisation_id=org.id, name=n)
               for n, a in CLIENTS]
    caregivers = [_get(session, Caregiver, {"phone": p}, organisation_id=org.id, name=n)
                  for n, p in CAREGIVERS]
    services = []
    for name, code, tasks in SERVICES:
        svc = _get(session, Service, {"name": name}, organisation_id=org.id, code=code)
        if not svc.tasks:
            svc.tasks = [ServiceTask(position=i, label=t) for i, t in enumerate(tasks, 1)]
        services.append(svc)
    badges = {}
    for i, g in enumerate(caregivers):
        uid = f"04A1B2C3D4E5{0xF6 + i:02X}"
        _get(session, Badge, {"organisation_id": org.id, "caregiver_id": g.id},
             kind="caregiver_card", uid=uid)
        badges[g.name] = uid
    tags, devices = {}, []
    for i, c in enumerate(clients, 1):
        # signed like every tag the fleet issues; a fixed serial keeps a rerun idempotent
        tags[c.name] = tagtokens.mint(org.tag_secret, org.id, c.id, f"DEMOTAG{'ABCDEFGH'[i]}")
        _get(session, Badge, {"organisation_id": org.id, "client_id": c.id},
             kind="client_tag", uid=tags[c.name])
        _get(session, Device, {"kind": "reader", "organisation_id": org.id, "client_id": c.id,
                               "status": "active"}, ident=f"demo-r{i}")
        devices.append(f"demo-r{i}")
    lo = datetime.combine(day, time(0), TZ)
    existing = session.scalars(select(Visit).where(
        Visit.organisation_id == org.id, Visit.planned_start >= lo,
        Visit.planned_start < lo + timedelta(days=1))).all()
    if not existing:
        for k, start in enumerate(_slots(day, now)):
            for c, g in enumerate(caregivers):
                s = start + timedelta(minutes=15 * c)
                if s + timedelta(minutes=VISIT_MIN) > datetime.combine(day, DAY_END, TZ):
                    continue
                session.add(Visit(organisation_id=org.id, client_id=clients[(c + k) % 5].id,
                                  caregiver_id=g.id, service_id=services[(c + k) % 2].id,
                                  planned_start=s, planned_end=s + timedelta(minutes=VISIT_MIN)))
        _evening_visits(session, org.id, clients, caregivers, services, day, now)
        session.flush()
        existing = session.scalars(select(Visit).where(
            Visit.organisation_id == org.id, Visit.planned_start >= lo,
            Visit.planned_start < lo + timedelta(days=1))).all()
    by_client = {c.id: (devices[i], c.name) for i, c in enumerate(clients)}
    by_caregiver = {g.id: g.name for g in caregivers}
    visits = []
    for v in sorted(existing, key=lambda v: (v.planned_start, v.id)):
        device, client = by_client[v.client_id]
        caregiver = by_caregiver[v.caregiver_id]
        when = ("past" if v.planned_end <= now else "now" if v.planned_start <= now
                else "later")
        visits.append({"id": v.id, "device": device, "client": client, "caregiver": caregiver,
                       "badge": badges[caregiver], "start": int(v.planned_start.timestamp()),
                       "end": int(v.planned_end.timestamp()), "when": when})
    return {"organisation_id": org.id, "devices": devices, "badges": badges, "tags": tags,
            "visits": visits}
