"""`telegest export ...` as a person runs it: files written, one-line errors, no traceback."""
from __future__ import annotations

import csv

from lxml import etree

from fleet.exports import esppadom
from tests.helpers import telegest


def test_export_commands(database_url, session, office, tmp_path):
    durand, alice = office.clients[0], office.carers[0]
    office.visit(durand, alice, "2026-11-23", "09:00", arrival="09:00", departure="10:05",
                 retained=("09:00", "10:00"), km=4)
    office.visit(durand, alice, "2026-11-24", "09:00", departure="10:00", code="COA",
                 retained=("09:00", "10:00"))
    session.commit()
    org = str(office.org.id)
    out = tmp_path / "delivery.xml"
    r = telegest("export", "esppadom", "--db", database_url, "--org", org, "--from",
                 "2026-11-01", "--to", "2026-11-30", "--funder",
                 str(office.funders["APA"].id), "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = etree.parse(str(out))
    etree.XMLSchema(etree.parse(str(esppadom.SCHEMA))).assertValid(doc)
    assert len(doc.getroot()) == 2
    assert "SAAD449-202611-APA-" in r.stderr
    pay = tmp_path / "pay.csv"
    r = telegest("export", "payroll", "--db", database_url, "--org", org, "--from",
                 "2026-11-01", "--to", "2026-11-30", "--dialect", "excel-fr", "--out",
                 str(pay))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(pay.read_text("utf-8-sig").splitlines(), delimiter=";"))
    assert [(x["period"], x["retained_hours"]) for x in rows] == [
        ("day", "1,00"), ("day", "1,00"), ("week", "2,00")]
    r = telegest("export", "billing", "--db", database_url, "--org", org, "--from",
                 "2026-11-01", "--to", "2026-11-30", "--out", "-")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1].startswith(f"{durand.id},Mme Durand,B75-0042,")


def test_export_bad_arguments_are_one_line(database_url, session, office, tmp_path):
    office.org.siret = ""
    session.commit()
    base = ["--db", database_url, "--org", str(office.org.id), "--to", "2026-11-30"]
    out = tmp_path / "x.xml"
    cases = [
        (["export", "esppadom", *base, "--from", "1/11/2026", "--out", str(out)], "--from"),
        (["export", "esppadom", *base, "--from", "2026-11-01", "--out", str(out)], "SIRET"),
        (["export", "payroll", *base, "--from", "2026-12-01", "--out", str(out)],
         "before it starts"),
        (["export", "payroll", "--db", database_url, "--org", "999", "--from", "2026-11-01",
          "--to", "2026-11-30", "--out", str(out)], "organisation 999 not found"),
        (["export", "billing", *base, "--from", "2026-11-01", "--out", str(tmp_path)],
         "is a folder"),
        (["export", "billing", *base, "--from", "2026-11-01", "--funder", "999", "--out",
          str(out)], "funder 999 not found"),
    ]
    for argv, words in cases:
        r = telegest(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("telegest: "), r.stderr
        assert words in lines[0]
    assert not out.exists()
    # no half-written file left behind: only the database (and its WAL files)
    assert all(p.name.startswith("telegest.db") for p in tmp_path.iterdir())
