"""Proof of presence (docs/protocol.md, "Proof levels"): how far a clock event's position was
from the client's home, and how strongly the event proves the caregiver was there.

A position is `[lat, lon, accuracy_m]` as the phone sent it. Its accuracy works both ways: an
event is *near* the home when even the far edge of its accuracy circle lies within the
agency's radius (distance + accuracy <= radius), and *far* (`far_from_home`) only when even
its near edge lies beyond it (distance - accuracy > radius). In between it proves nothing
either way: no flag, no corroboration.

The home's reference point is the client's `lat`/`lon` when set; otherwise it is learned: the
median latitude and the median longitude of the client's last `LEARN_LAST` tag-proved clock
events (a SUN read or a static tag) of the last `LEARN_DAYS` with a position of at most
`LEARN_ACCURACY_M`, once there are `LEARN_MIN` of them. A median, not a mean: one reading off
by kilometres does not move it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import AlertSettings, ClockEvent, Client, Visit
from fleet.types import utcnow

# strongest first
LEVELS = ("sun_verified", "static_tag_near", "static_tag", "position", "manual")
LABELS = {"sun_verified": "verified tag · badge vérifié",
          "static_tag_near": "tag, at the home · badge, au domicile",
          "static_tag": "tag, no position · badge, sans position",
          "position": "position at the home · position au domicile",
          "manual": "manual · manuel"}
DEFAULT_RADIUS_M = 200
EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)
LEARN_LAST = 20
LEARN_MIN = 3
LEARN_ACCURACY_M = 100
LEARN_DAYS = 90


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


def parse_coord(raw: str | float | None, which: str) -> float | None:
    """A latitude ("lat") or longitude ("lon") as typed ("48.85", "48,85"); None when empty.
    ValueError, in words, for text, NaN, the infinities or a value out of range."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    lo, hi = (-90.0, 90.0) if which == "lat" else (-180.0, 180.0)
    try:
        value = float(str(raw).strip().replace(",", "."))
    except ValueError:
        raise ValueError(f"{raw!r} is not a number of degrees · nombre de degrés attendu") \
            from None
    if not lo <= value <= hi:  # NaN compares false
        raise ValueError(f"{raw}: expected {lo:g} to {hi:g} degrees · entre {lo:g} et {hi:g}")
    return value


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres (haversine): within a metre over a town."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def where(pos: Sequence[float] | None, home: Point | None,
          radius_m: int) -> tuple[str | None, float | None]:
    """("near" | "far" | None, distance in metres) of a position from the home; (None, None)
    without a position or a reference point."""
    if not pos or home is None:
        return None, None
    d = distance_m(Point(pos[0], pos[1]), home)
    accuracy = pos[2]
    if d + accuracy <= radius_m:
        return "near", d
    if d - accuracy > radius_m:
        return "far", d
    return None, d


def proof_level(tag_proof: str | None, device_kind: str, refused: bool,
                nearness: str | None) -> str | None:
    """The event's level: a verified SUN read; a static tag or card with a position near the
    home (a reader box is fixed at the home: its reads are near by construction); a static
    tag without one; a position near the home alone; a claim. None when the tag or card was
    refused (forged, revoked, replayed...): its anomaly says why."""
    if refused:
        return None
    if tag_proof == "sun":
        return "sun_verified"
    if tag_proof == "static":
        return "static_tag_near" if device_kind == "reader" or nearness == "near" \
            else "static_tag"
    return "position" if nearness == "near" else "manual"


def radius_of(session: Session, organisation_id: int) -> int:
    row = session.get(AlertSettings, organisation_id)
    return row.home_radius_m if row is not None else DEFAULT_RADIUS_M


def learned_point(positions: Iterable[Sequence[float]]) -> Point | None:
    """The median of the good positions given (most recent first), or None if too few."""
    good = [p for p in positions if p and p[2] <= LEARN_ACCURACY_M][:LEARN_LAST]
    if len(good) < LEARN_MIN:
        return None
    return Point(median(p[0] for p in good), median(p[1] for p in good))


def reference_points(session: Session, client_ids: set[int],
                     until: datetime | None = None) -> dict[int, Point]:
    """The home's reference point of each client that has one (set, or learned from the
    LEARN_DAYS before `until`, default now: positions are purged within 60 days anyway)."""
    if not client_ids:
        return {}
    out: dict[int, Point] = {}
    for cid, lat, lon in session.execute(select(Client.id, Client.lat, Client.lon).where(
            Client.id.in_(client_ids), Client.lat.is_not(None), Client.lon.is_not(None))):
        out[cid] = Point(lat, lon)
    unset = client_ids - set(out)
    if not unset:
        return out
    seen: dict[int, list] = defaultdict(list)
    rows = session.execute(
        select(Visit.client_id, ClockEvent.pos).join(Visit, Visit.id == ClockEvent.visit_id)
        .where(Visit.client_id.in_(unset), ClockEvent.tag_proof.in_(("sun", "static")),
               ClockEvent.pos.is_not(None), ClockEvent.match_status == "matched",
               ClockEvent.device_ts >= (until or utcnow()) - timedelta(days=LEARN_DAYS))
        .order_by(ClockEvent.device_ts.desc(), ClockEvent.id.desc()))
    for cid, pos in rows:
        if pos and len(seen[cid]) < 4 * LEARN_LAST:
            seen[cid].append(pos)
    for cid, positions in seen.items():
        point = learned_point(positions)
        if point is not None:
            out[cid] = point
    return out


def reference_of(session: Session, client: Client,
                 until: datetime | None = None) -> tuple[Point | None, str]:
    """A client's reference point and where it comes from: "set", "learned" or "none"."""
    if client.lat is not None and client.lon is not None:
        return Point(client.lat, client.lon), "set"
    point = reference_points(session, {client.id}, until).get(client.id)
    return point, "learned" if point else "none"
