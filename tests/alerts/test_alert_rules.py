"""Every device-health rule, one open alert per (device, kind), and auto-resolution."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from fleet import alerts
from fleet.ingest import ingest_batch
from fleet.models import Alert, DeviceLink

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def health(now: datetime = NOW, **over) -> bytes:
    doc = {"now": int(now.timestamp()), "fw": "0.1.0", "up": 60, "heap": 40000, "jd": 0,
           "jfull": False, "rd": "ok", "tq": "synced", "bat": 80}
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def send(session, ident: str, payload: bytes, at: datetime = NOW, kind: str = "up/health"):
    ingest_batch(session, [(f"tg/v1/{ident}/{kind}", payload, at)])
    session.commit()


def rows(session, kind: str | None = None) -> list[Alert]:
    stmt = select(Alert).order_by(Alert.id)
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    session.expire_all()
    return list(session.scalars(stmt))


def open_kinds(session) -> list[str]:
    return sorted(a.kind for a in rows(session) if a.resolved_at is None)


@pytest.mark.parametrize("over, offset, expect", [
    ({"bat": 19}, 0, {"low_battery": True}),
    ({"bat": 20}, 0, {"low_battery": None}),   # between 20 and 25: leave as it is
    ({"bat": 25}, 0, {"low_battery": False}),
    ({"bat": None}, 0, {"low_battery": False}),
    ({"rd": "no_answer"}, 0, {"reader_failed": True}),
    ({"rd": "ok"}, 0, {"reader_failed": False}),
    ({}, 121, {"clock_drift": True}),
    ({}, -121, {"clock_drift": True}),
    ({}, 100, {"clock_drift": None}),
    ({}, -90, {"clock_drift": False}),
    ({"jfull": True}, 0, {"journal_full": True}),
    ({"jfull": False}, 0, {"journal_full": False, "device_offline": False}),
])
def test_health_conditions(over, offset, expect):
    doc = json.loads(health(**over))
    got = alerts.health_conditions(doc, offset)
    assert {k: got[k][0] for k in expect} == expect


def test_low_battery_opens_once_and_resolves_past_the_margin(session, fleet):
    for i in range(5):  # a report a minute: still one alert
        at = NOW + timedelta(minutes=i)
        send(session, "r1", health(at, bat=12), at)
    (alert,) = rows(session)
    assert (alert.kind, alert.detail, alert.resolved_at) == ("low_battery", {"bat": 12}, None)
    assert alert.device_id == fleet["devices"][0].id
    assert alert.organisation_id == fleet["org"].id and alert.opened_at == NOW
    send(session, "r1", health(NOW + timedelta(minutes=6), bat=22),
         NOW + timedelta(minutes=6))  # hysteresis: still open
    assert open_kinds(session) == ["low_battery"]
    send(session, "r1", health(NOW + timedelta(minutes=7), bat=40),
         NOW + timedelta(minutes=7))
    (alert,) = rows(session)
    assert alert.resolved and alert.resolved_at is not None
    send(session, "r1", health(NOW + timedelta(minutes=8), bat=10),
         NOW + timedelta(minutes=8))  # a new episode, new row
    assert [a.resolved for a in rows(session)] == [True, False]


def test_reader_failed_and_journal_full(session, fleet):
    send(session, "r1", health(rd="no_answer", jfull=True))
    send(session, "r2", health())
    assert open_kinds(session) == ["journal_full", "reader_failed"]
    assert {a.kind: a.detail for a in rows(session)}["reader_failed"] == {"rd": "no_answer"}
    send(session, "r1", health(rd="ok", jfull=True), NOW + timedelta(seconds=30))
    assert open_kinds(session) == ["journal_full"]
    send(session, "r1", health(jfull=False), NOW + timedelta(seconds=60))
    assert open_kinds(session) == []


def test_clock_drift_from_the_offset_the_fleet_measures(session, fleet):
    send(session, "r1", health(now=NOW - timedelta(seconds=300)))  # device 5 min behind
    (alert,) = rows(session)
    assert alert.kind == "clock_drift" and alert.detail["offset_s"] == 300
    send(session, "r1", health(now=NOW), NOW + timedelta(seconds=30))
    assert open_kinds(session) == []


def test_a_malformed_report_raises_nothing(session, fleet):
    send(session, "r1", b'{"bat": 3}')
    assert rows(session) == []


def test_one_open_alert_per_device_and_kind_even_with_two_writers(session, fleet):
    dev = fleet["devices"][0]
    row = {"kind": "low_battery", "organisation_id": fleet["org"].id, "device_id": dev.id,
           "detail": {}, "created_at": NOW, "opened_at": NOW, "resolved": False}
    alerts._open(session, [row])
    alerts._open(session, [row])  # what a second worker would do: ignored by the index
    session.commit()
    assert len(rows(session)) == 1


def test_offline_when_silent_longer_than_the_organisation_setting(session, fleet):
    send(session, "r1", health(), NOW)
    send(session, "r2", health(), NOW)
    alerts.sweep(session, NOW + timedelta(minutes=14))
    assert rows(session) == []
    alerts.sweep(session, NOW + timedelta(minutes=15, seconds=1))
    assert open_kinds(session) == ["device_offline", "device_offline"]
    alerts.sweep(session, NOW + timedelta(minutes=20))  # no flood
    assert len(rows(session)) == 2
    (alert, _) = rows(session)
    assert alert.opened_at == NOW and alert.detail["by"] == "silent"
    send(session, "r1", health(NOW + timedelta(minutes=21)), NOW + timedelta(minutes=21))
    assert [a.resolved for a in rows(session)] == [True, False]


def test_offline_by_last_will_with_a_short_setting(session, fleet):
    alerts.set_offline_after(session, fleet["org"].id, 60)
    send(session, "r1", health(), NOW)
    send(session, "r1", b"offline", NOW + timedelta(seconds=5), kind="state")
    link = session.get(DeviceLink, fleet["devices"][0].id)
    assert (link.state, link.changed_at) == ("offline", NOW + timedelta(seconds=5))
    alerts.sweep(session, NOW + timedelta(seconds=64))
    assert rows(session) == []
    alerts.sweep(session, NOW + timedelta(seconds=66))
    (alert,) = rows(session)
    assert alert.kind == "device_offline" and alert.detail["by"] == "will"
    # the retained copy again (a worker restart) does not move the time
    send(session, "r1", b"offline", NOW + timedelta(minutes=5), kind="state")
    assert session.get(DeviceLink, fleet["devices"][0].id).changed_at == NOW + timedelta(
        seconds=5)
    send(session, "r1", b"online", NOW + timedelta(minutes=6), kind="state")
    assert rows(session)[0].resolved
    alerts.sweep(session, NOW + timedelta(minutes=6, seconds=30))
    assert open_kinds(session) == []


def test_a_message_after_the_will_means_online(session, fleet):
    alerts.set_offline_after(session, fleet["org"].id, 60)
    send(session, "r1", b"offline", NOW, kind="state")
    send(session, "r1", health(NOW + timedelta(seconds=30)), NOW + timedelta(seconds=30))
    alerts.sweep(session, NOW + timedelta(seconds=70))
    assert rows(session) == []


def test_devices_not_in_service_are_not_watched(session, fleet):
    r1, r2 = fleet["devices"]
    r2.status = "registered"  # never installed
    session.commit()
    send(session, "r1", health(), NOW)
    alerts.sweep(session, NOW + timedelta(hours=1))
    assert len(rows(session)) == 1
    r1.status = "blocked"
    session.commit()
    alerts.sweep(session, NOW + timedelta(hours=2))
    assert open_kinds(session) == []


def test_bad_state_payloads_are_counted(session, fleet):
    from collections import Counter
    counts: Counter = Counter()
    ingest_batch(session, [("tg/v1/r1/state", b"maybe", NOW),
                           ("tg/v1/zz/state", b"online", NOW)], counters=counts)
    assert counts["bad_state"] == 1 and counts["unknown_device"] == 1


def test_acknowledge_keeps_the_first(session, fleet):
    send(session, "r1", health(bat=5))
    (alert,) = rows(session)
    assert alerts.acknowledge(session, alert, "api_key:1:alice", None, NOW)
    assert not alerts.acknowledge(session, alert, "api_key:2:bob", None, NOW)
    assert alert.acknowledged_who == "api_key:1:alice"


def test_the_sweep_reads_only_devices_silent_past_the_shortest_delay(session, fleet):
    """Devices heard from within the shortest delay of any organisation are not even read
    (50,000 reporting devices cost the leader 2 s a sweep), and the outcome is the same: a
    second organisation with a 60 s delay still gets its alert at 61 s, the first's devices
    at 15 minutes."""
    from fleet.models import Device, Organisation

    other = Organisation(name="Aide à Domicile du Lac")
    session.add(other)
    session.flush()
    session.add(Device(ident="r9", kind="reader", organisation_id=other.id, status="active"))
    session.commit()
    alerts.set_offline_after(session, other.id, 60)
    for ident in ("r1", "r2", "r9"):
        send(session, ident, health(), NOW)
    statements = []
    from sqlalchemy import event

    engine = session.get_bind()
    listen = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert alerts.sweep(session, NOW + timedelta(seconds=30))["alert_opened_device_offline"] == 0
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert any("last_seen <" in s or "last_seen IS NULL" in s for s in statements), statements
    alerts.sweep(session, NOW + timedelta(seconds=61))
    assert [a.device_id for a in rows(session) if not a.resolved] == [
        session.scalar(select(Device.id).where(Device.ident == "r9"))]
    alerts.sweep(session, NOW + timedelta(minutes=15, seconds=1))
    assert len(open_kinds(session)) == 3
    send(session, "r9", health(NOW + timedelta(minutes=16)), NOW + timedelta(minutes=16))
    alerts.sweep(session, NOW + timedelta(minutes=16, seconds=1))
    assert len(open_kinds(session)) == 2  # r9 back: resolved, although no longer read
