"""Import of the clients' home points from a CSV file (docs/api.md, "Home points import").

Columns: `client` (name or id; `usager`), `lat`, `lon` (`latitude`, `longitude`), as an
agency's geocoding of its addresses gives them; `,` or `;` separators, decimal commas and
Excel's Windows-1252 accepted (the planning import's reading, fleet.visit_import). An empty
lat and lon clear a point. All or nothing: one bad row and nothing is written, every bad row
is named with its column and why.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import Client, Organisation
from fleet.presence import parse_coord
from fleet.visit_import import ImportFileError, _Names, decode

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
    text, encoding = decode(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = text.split("\n", 1)[0]
    # a decimal comma needs `;` between cells: a header tells which one the file uses
    delimiter = max((";", ",", "\t"), key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as e:
        raise ImportFileError([{"row": None, "column": None,
                                "message": f"not a readable CSV file: {e}"}]) from None
    if not rows:
        raise ImportFileError([{"row": 1, "column": None, "message": "the file is empty"}])
    columns = [ALIASES.get(h.strip().casefold(), h.strip().casefold()) for h in rows[0]]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ImportFileError([{"row": 1, "column": c, "message": f"missing column {c!r}"}
                               for c in missing])
    clients = _Names(session.scalars(select(Client).where(
        Client.organisation_id == org.id)).all(), "name")
    result = PointsResult(encoding)
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        result.rows += 1
        row = {c: (values[i].strip() if i < len(values) else "") for i, c in enumerate(columns)}
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
