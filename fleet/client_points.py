"""Import of the clients' home points from a CSV file (docs/api.md, "Home points import").

Columns: `client` (name or id; `usager`), `lat`, `lon` (`latitude`, `longitude`), as an
agency's geocoding of its addresses gives them; `,` or `;` separators, decimal commas and
Excel's Windows-1252 accepted (the planning import's reading, fleet.visit_import). An empty
lat and lon clear a point. All or nothing: one bad row and nothing is written, every bad row
is named with its column and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import Client, Organisation
from fleet.presence import parse_coord
from fleet.visit_import import Names, read_rows

ALIASES = {"client": "client", "usager": "client", "beneficiaire": "client", "lat": "lat",
           "latitude": "lat", "lon": "lon", "lng": "lon", "longitude": "lon"}
REQUIRED = ("client", "lat", "lon")


@dataclass
class PointsResult:
    encoding: str
    rows: int = 0
    errors: list[dict] = field(default_factory=list)
    points: list[tuple[Client, float | None, float | None]] = field(default_factory=list)


def parse_points(session: Session, org: Organisation, data: bytes) -> PointsResult:
    encoding, _delimiter, rows = read_rows(data, ALIASES, REQUIRED)
    clients = Names(session.scalars(select(Client).where(
        Client.organisation_id == org.id)).all(), "name")
    result = PointsResult(encoding)
    for number, row in rows:
        result.rows += 1
        errors, got = [], {}
        for column, read in (("client", lambda v: clients.find(v, "client")),
                             ("lat", lambda v: parse_coord(v, "lat")),
                             ("lon", lambda v: parse_coord(v, "lon"))):
            try:
                got[column] = read(row[column])
            except ValueError as e:
                errors.append({"row": number, "column": column, "message": str(e)})
        if not errors and (got["lat"] is None) != (got["lon"] is None):
            errors.append({"row": number, "column": "lon" if got["lon"] is None else "lat",
                           "message": "lat and lon go together · lat et lon vont ensemble"})
        result.errors += errors
        if not errors:
            result.points.append((got["client"], got["lat"], got["lon"]))
    return result
