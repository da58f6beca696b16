"""device_config and the demo agency."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fleet.demo import seed_demo
from fleet.models import Badge, Visit
from fleet.planning import device_config

from .conftest import NOW, TS


@pytest.fixture
def planned(session, agency):
    org, (c1, c2), (g1, g2) = agency["org"], agency["clients"], agency["caregivers"]
    visits = [Visit(organisation_id=org.id, client_id=c1.id, caregiver_id=g, planned_start=s,
                    planned_end=s + timedelta(hours=1))
              for g, s in ((g1.id, NOW + timedelta(hours=1)), (g2.id, NOW + timedelta(hours=3)),
                           (g1.id, NOW + timedelta(days=3)), (g1.id, NOW - timedelta(hours=3)))]
    visits.append(Visit(organisation_id=org.id, client_id=c2.id, caregiver_id=g2.id,
                        planned_start=NOW, planned_end=NOW + timedelta(hours=1)))
    session.add_all(visits)
    session.commit()
    return visits


def test_reader_config(session, planned):
    cfg = device_config(session, "r1", NOW)
    assert cfg["tz"] == "Europe/Paris" and cfg["tolerance_min"] == 30
    assert cfg["badges"] == ["04A1B2C3D4E5F6", "04A1B2C3D4E5F7"]
    assert cfg["visits"] == [[planned[0].id, "04A1B2C3D4E5F6", TS + 3600, TS + 7200],
                             [planned[1].id, "04A1B2C3D4E5F7", TS + 10800, TS + 14400]]
    assert cfg["version"] == 1 and len(cfg["hash"]) == 64
    assert device_config(session, "r1", TS)["version"] == 1  # unchanged: same version


def test_config_version_follows_content(session, planned):
    first = device_config(session, "r1", NOW)
    session.execute(Badge.__table__.update().where(Badge.uid == "04A1B2C3D4E5F7")
                    .values(active=False))
    second = device_config(session, "r1", NOW)
    assert second["version"] == first["version"] + 1 and second["hash"] != first["hash"]
    assert second["badges"] == ["04A1B2C3D4E5F6"]


def test_unknown_device(session, agency):
    with pytest.raises(LookupError):
        device_config(session, "nope", NOW)


def test_demo_is_realistic_and_idempotent(session):
    now = NOW + timedelta(hours=2)  # 12:00 in Paris
    info = seed_demo(session, now.date(), now)
    session.commit()
    assert info["devices"] == [f"demo-r{i}" for i in range(1, 6)]
    assert len(info["badges"]) == 4 and "04A1B2C3D4E5F6" in info["badges"].values()
    when = Counter(v["when"] for v in info["visits"])
    assert when["past"] and when["now"] and when["later"]
    for v in info["visits"]:
        local = (v["start"] + 3600) % 86400 / 3600  # Paris is UTC+1 in November
        assert 7 <= local and (v["end"] + 3600) % 86400 / 3600 <= 20
    again = seed_demo(session, now.date(), now)
    session.commit()
    assert again == info
    assert session.scalar(select(func.count()).select_from(Visit)) == len(info["visits"])
    cfg = device_config(session, "demo-r1", now - timedelta(hours=6))
    assert cfg["visits"] and set(cfg["badges"]) <= set(info["badges"].values())


@pytest.mark.parametrize("hour", [0, 2, 6, 7, 12, 18, 19, 20, 21, 23])
def test_demo_gives_every_reader_a_visit_to_come_and_one_starting_now_at_any_hour(
        session, hour):
    """`telegest up` and the e2e tests start at any hour: after about 19:00 in Paris the demo
    once planned nothing more for some homes, so their readers tapped nothing."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    now = datetime(2026, 11, 23, hour, 10, tzinfo=ZoneInfo("Europe/Paris"))
    info = seed_demo(session, now.date(), now)
    session.commit()
    ts = now.timestamp()
    to_come = {v["device"] for v in info["visits"] if v["end"] > ts}
    assert to_come == set(info["devices"]), hour
    # a visit within the tolerance (30 min) of its start: what the e2e helpers tap on
    assert any(v["start"] - 1800 <= ts <= v["start"] + 1800 for v in info["visits"]), hour


@pytest.mark.parametrize("now", ["2026-11-23T23:10:00+00:00", "2026-06-23T22:10:00+00:00"])
def test_up_seeds_the_agencys_day_not_the_utc_date(database_url, now):
    """From 23:00 UTC in winter (22:00 in summer) it is already tomorrow in Paris: `telegest
    up` seeded the UTC date's planning, all of it past, and the readers tapped nothing (a CI
    run at 00:03 Paris failed the board's tests)."""
    from datetime import datetime

    from tools.up import seed

    now = datetime.fromisoformat(now)
    info = seed(database_url, now=now)
    ts = now.timestamp()
    assert {v["device"] for v in info["visits"] if v["end"] > ts} == set(info["devices"])
    assert any(v["when"] == "now" for v in info["visits"])
