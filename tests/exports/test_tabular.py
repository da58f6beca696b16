"""Payroll and billing CSV: totals per day, ISO week, client and funder; raw beside retained;
formula injection neutralised; the excel-fr dialect."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from fleet.exports import tabular
from fleet.exports.rows import ExportError

NOV = (date(2026, 11, 1), date(2026, 11, 30))


def table(session, org, kind, dialect="csv", first=NOV[0], last=NOV[1], funder=None):
    t = tabular.prepare(session, org.id, kind, first, last, dialect, funder)
    data = b"".join(t.chunks()).decode()
    if dialect == "excel-fr":
        assert data.startswith("\ufeff")
        data = data[1:]
    return t, list(csv.DictReader(io.StringIO(data), delimiter=";" if dialect == "excel-fr"
                                  else ","))


@pytest.fixture
def month(session, office):
    durand, petit = office.clients
    alice, bruno = office.carers
    # Monday 23 and Tuesday 24 November (ISO week 48), Monday 30 (week 49)
    office.visit(durand, alice, "2026-11-23", "09:00", arrival="09:00", departure="10:05",
                 retained=("09:00", "10:00"), km=12, expenses_cents=450)
    office.visit(petit, alice, "2026-11-23", "14:00", arrival="14:00", departure="15:20",
                 retained=("14:00", "15:30"), km=3)
    office.visit(durand, alice, "2026-11-24", "09:00", arrival="09:00", departure="09:40",
                 retained=("09:00", "09:45"))
    office.visit(durand, alice, "2026-11-30", "09:00", arrival="09:00", departure="10:00",
                 retained=("09:00", "10:00"))
    office.visit(durand, alice, "2026-11-25", "09:00", arrival="09:00", departure="09:05",
                 code="SUP")  # deleted: counts nowhere
    office.visit(petit, bruno, "2026-11-24", "08:00", arrival="08:00", departure="08:30")  # HOR
    office.visit(petit, bruno, "2026-10-20", "08:00", arrival="08:00", departure="09:00",
                 retained=("08:00", "09:00"))  # October: no plan for Petit yet
    session.commit()
    return office


def test_payroll_per_day_and_week(session, month):
    t, rows = table(session, month.org, "payroll")
    assert t.filename == f"payroll-org{month.org.id}-20261101_20261130.csv"
    alice = [r for r in rows if r["caregiver"] == "Alice Martin"]
    assert [(r["period"], r["day_or_week"], r["visits"], r["raw_hours"], r["retained_hours"])
            for r in alice] == [
        ("day", "2026-11-23", "2", "2.42", "2.50"),
        ("day", "2026-11-24", "1", "0.67", "0.75"),
        ("week", "2026-W48", "3", "3.08", "3.25"),
        ("day", "2026-11-30", "1", "1.00", "1.00"),
        ("week", "2026-W49", "1", "1.00", "1.00"),
    ]
    assert alice[0]["km"] == "15" and alice[0]["expenses_eur"] == "4.50"
    assert alice[2]["km"] == "15"
    bruno = [r for r in rows if r["caregiver"] == "Bruno Leroy"]
    assert [(r["period"], r["raw_hours"], r["retained_hours"]) for r in bruno] == [
        ("day", "0.50", "0.00"), ("week", "0.50", "0.00")]


def test_billing_per_client_and_funder(session, month):
    _, rows = table(session, month.org, "billing", first=date(2026, 10, 1))
    got = [(r["client"], r["funder"], r["funder_kind"], r["order_reference"], r["visits"],
            r["raw_hours"], r["retained_hours"]) for r in rows]
    assert got == [
        ("Mme Durand", "CD 75 APA", "APA", "APA-2026-001", "3", "2.75", "2.75"),
        ("M. Petit", "CD 94 PCH", "PCH", "PCH-77", "2", "1.83", "1.50"),
        ("M. Petit", "", "", "", "1", "1.00", "1.00"),
    ]
    _, rows = table(session, month.org, "billing", first=date(2026, 10, 1),
                    funder=month.funders["PCH"].id)
    assert [(r["client"], r["visits"]) for r in rows] == [("M. Petit", "2")]


def test_excel_fr_writes_semicolons_and_decimal_commas(session, month):
    _, rows = table(session, month.org, "payroll", dialect="excel-fr")
    first = rows[0]
    assert first["raw_hours"] == "2,42" and first["retained_hours"] == "2,50"
    assert first["expenses_eur"] == "4,50"


def test_formula_injection_is_neutralised(session, month):
    alice = month.carers[0]
    alice.name = "=HYPERLINK(\"http://evil\",\"x\")"
    month.clients[0].name = "+33 rue"
    month.carers[1].name = "@SUM(A1)"
    month.clients[1].name = "-2+3"
    session.commit()
    _, rows = table(session, month.org, "payroll")
    names = {r["caregiver"] for r in rows}
    assert names == {"'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(A1)"}
    _, rows = table(session, month.org, "billing", dialect="excel-fr")
    assert {r["client"] for r in rows} == {"'+33 rue", "'-2+3"}
    assert tabular.neutralise("\tcmd") == "'\tcmd"
    assert tabular.neutralise("Mme Durand") == "Mme Durand"


def test_empty_range_is_a_header_only(session, month):
    _, rows = table(session, month.org, "payroll", first=date(2026, 6, 1),
                    last=date(2026, 6, 30))
    assert rows == []
    t = tabular.prepare(session, month.org.id, "billing", date(2026, 6, 1), date(2026, 6, 30))
    assert b"".join(t.chunks()).decode().splitlines() == [",".join(tabular.BILLING_HEADER)]


def test_many_rows_stream_in_chunks(session, office):
    durand, alice = office.clients[0], office.carers[0]
    for day in range(1, 31):
        for hour in range(7, 19):
            office.visit(durand, office.carers[hour % 2], f"2026-11-{day:02d}",
                         f"{hour:02d}:00", 50, arrival=f"{hour:02d}:00",
                         departure=f"{hour:02d}:50", retained=(f"{hour:02d}:00",
                                                               f"{hour:02d}:50"))
    session.commit()
    tabular.FLUSH_ROWS, old = 10, tabular.FLUSH_ROWS
    try:
        t = tabular.prepare(session, office.org.id, "payroll", *NOV)
        chunks = list(t.chunks())
    finally:
        tabular.FLUSH_ROWS = old
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert len(chunks) > 3
    assert sum(int(r["visits"]) for r in rows if r["period"] == "day") == 30 * 12
    assert sum(int(r["visits"]) for r in rows if r["period"] == "week") == 30 * 12


def test_bad_arguments(session, office):
    with pytest.raises(ExportError, match="dialect"):
        tabular.prepare(session, office.org.id, "payroll", *NOV, dialect="tsv")
    with pytest.raises(ExportError, match="per caregiver"):
        tabular.prepare(session, office.org.id, "payroll", *NOV,
                        funder_id=office.funders["APA"].id)
    with pytest.raises(ExportError) as e:
        tabular.prepare(session, office.org.id, "billing", *NOV, funder_id=12345)
    assert e.value.status == 404
