"""`telegest fleet series add|extend` and `telegest fleet visit reassign` on the demo database:
the planning layer's rules hold from the command line too (exit 2, nothing changed)."""
from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import func, select

from fleet.db import make_engine, session_factory
from fleet.models import AuditLog, Caregiver, Client, Visit, VisitSeries
from tools.cli import main


def _db(url):
    engine = make_engine(url)
    return engine, session_factory(engine)


def test_series_and_reassignment_from_the_command_line(demo, capsys):
    url = demo[0]
    engine, sessions = _db(url)
    with sessions() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first().id
        alice, bruno = s.scalars(select(Caregiver.id).order_by(Caregiver.id)).all()[:2]
    first = date.today() + timedelta(days=30 - date.today().weekday())  # a Monday ahead
    base = ["fleet", "series", "add", "--db", url, "--client", str(client), "--caregiver",
            str(alice), "--first", first.isoformat(), "--at", "08:00", "--minutes", "60",
            "--by", "ops"]
    assert main(base + ["--rrule", "FREQ=WEEKLY;BYDAY=XX"]) == 2
    assert "récurrence mal formée" in capsys.readouterr().err
    assert main(base + ["--rrule", "FREQ=WEEKLY;BYDAY=MO,TH"]) == 0
    made = json.loads(capsys.readouterr().out)
    with sessions() as s:
        series = s.get(VisitSeries, made["series"])
        ours = s.scalars(select(Visit).where(Visit.series_id == series.id)
                         .order_by(Visit.planned_start)).all()
        assert ours and {v.caregiver_id for v in ours} == {alice}
        # Bruno already has a visit at the first one's time
        s.add(Visit(organisation_id=series.organisation_id,
                    client_id=s.scalars(select(Client.id).order_by(Client.id.desc())).first(),
                    caregiver_id=bruno, planned_start=ours[0].planned_start,
                    planned_end=ours[0].planned_end))
        s.commit()
    assert main(["fleet", "series", "extend", "--db", url]) == 0
    assert json.loads(capsys.readouterr().out) == {"visits_made": 0}
    two = ",".join(str(v.id) for v in ours[:2])
    reassign = ["fleet", "visit", "reassign", "--db", url, "--visits", two, "--to", str(bruno),
                "--by", "ops"]
    assert main(reassign) == 2
    assert "intervenant non disponible" in capsys.readouterr().err
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Visit).where(
            Visit.series_id == series.id, Visit.caregiver_id == bruno)) == 0
    assert main(reassign + ["--confirm"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reassigned"] == [v.id for v in ours[:2]] and list(out["conflicts_accepted"]) == [
        str(ours[0].id)]
    with sessions() as s:
        assert s.scalars(select(AuditLog.who).where(AuditLog.action == "reassign",
                                                    AuditLog.target == f"caregiver:{bruno}")
                         ).all() == ["cli:ops"]
    engine.dispose()
