"""The exports on PostgreSQL: a server-side cursor fetched in batches, the same files."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from lxml import etree

from fleet.db import make_engine, migrate, session_factory
from fleet.exports import esppadom, rows, tabular

from .conftest import build_office

pytestmark = pytest.mark.postgres
SCHEMA = etree.XMLSchema(etree.parse(str(esppadom.SCHEMA)))


@pytest.fixture
def pg_session(pg_database_url):
    migrate(pg_database_url)
    engine = make_engine(pg_database_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_esppadom_and_payroll_on_postgres(pg_session, monkeypatch):
    monkeypatch.setattr(rows, "BATCH", 50)  # many round trips of the server-side cursor
    office = build_office(pg_session)
    durand, petit = office.clients
    alice, bruno = office.carers
    codes = (None, "COD", "COA", "CO2", "CRE", "MDT", "SUP", "HOR")
    made, sup = [], 0
    for day in range(1, 31):
        for k, hour in enumerate(range(7, 17)):
            code = codes[(day + k) % len(codes)]
            hh = f"{hour:02d}"
            arrival = None if code in ("COA", "CO2", "CRE") else f"{hh}:02"
            departure = None if code in ("COD", "CO2", "CRE") else f"{hh}:58"
            retained = None if code in ("SUP", "HOR") else (f"{hh}:00", f"{hh}:45")
            sup += code == "SUP"
            made.append(office.visit((durand, petit)[k % 2], (alice, bruno)[day % 2],
                                     f"2026-11-{day:02d}", f"{hh}:00", 45, arrival=arrival,
                                     departure=departure, retained=retained, code=code,
                                     methods=(("nfc", "qr", "manual")[k % 3], "nfc")))
    pg_session.commit()
    d = esppadom.prepare(pg_session, office.org.id, date(2026, 11, 1), date(2026, 11, 30))
    doc = etree.fromstring(b"".join(d.chunks()))
    SCHEMA.assertValid(doc)
    assert len(doc) == len(made) == 300
    got = {adv.findtext("ns:CIDDHExchangedDocument/ram:ID", namespaces=esppadom.NS)
           for adv in doc}
    assert got == {f"TG-{office.org.id}-{v.id}" for v in made}
    type_codes = {t.text for t in doc.iter(f"{{{esppadom.NS['ram']}}}TypeCode")}
    assert type_codes == set(codes) - {None}
    # in planned order, across the batches
    ids = [int(adv.findtext("ns:CIDDHExchangedDocument/ram:ID",
                            namespaces=esppadom.NS).rsplit("-", 1)[1]) for adv in doc]
    assert ids == sorted(ids)
    t = tabular.prepare(pg_session, office.org.id, "payroll", date(2026, 11, 1),
                        date(2026, 11, 30))
    table = list(csv.DictReader(io.StringIO(b"".join(t.chunks()).decode())))
    days = [r for r in table if r["period"] == "day"]
    # SUP visits count nowhere
    assert sup and sum(int(r["visits"]) for r in days) == 300 - sup
