"""ConfigPusher on the demo agency with a recording publish (no broker; tests/push/test_e2e
has one): what is pushed, to whom, and when nothing is."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from fleet.db import make_engine, session_factory
from fleet.models import Badge, Caregiver, Device, Visit
from fleet.push import ConfigPusher, window_start


class Recorder:
    def __init__(self):
        self.sent: list[tuple[str, bytes, bool]] = []
        self.fail = False

    def __call__(self, topic, payload, retain):
        if self.fail:
            raise OSError("broker gone")
        self.sent.append((topic, payload, retain))

    def devices(self):
        return sorted({t.split("/")[2] for t, _, _ in self.sent})

    def take(self):
        out, self.sent = self.devices(), []
        return out


@pytest.fixture
def sessions(demo):
    engine = make_engine(demo[0])
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def pusher(sessions):
    rec = Recorder()
    return ConfigPusher(sessions, rec), rec


def test_first_poll_pushes_every_device_then_nothing(pusher, sessions):
    p, rec = pusher
    assert p.poll() == 5
    assert rec.devices() == [f"demo-r{i}" for i in range(1, 6)]
    assert all(retain for _, _, retain in rec.sent)
    manifests = {t: json.loads(m) for t, m, _ in rec.sent if t.endswith("/down/config")}
    with sessions() as s:
        for d in s.scalars(select(Device)):
            m = manifests[f"tg/v1/{d.ident}/down/config"]
            assert (m["v"], m["hash"]) == (d.config_version, d.config_hash)
    rec.take()
    assert p.poll() == 0 and rec.sent == []
    p.full_every_s = 0  # a full pass computes everything and still sends nothing
    assert p.poll() == 0 and rec.sent == [] and p.counts["unchanged"] == 10


def _visit_at(sessions, ident):
    with sessions() as s:
        d = s.scalars(select(Device).where(Device.ident == ident)).one()
        v = s.scalars(select(Visit).where(Visit.client_id == d.client_id)
                      .order_by(Visit.planned_start.desc())).first()
        return v.id, d.client_id


def test_a_visit_change_reaches_only_its_home(pusher, sessions):
    p, rec = pusher
    p.poll()
    rec.take()
    vid, _ = _visit_at(sessions, "demo-r2")
    with sessions() as s:
        v = s.get(Visit, vid)
        v.planned_start += timedelta(minutes=10)
        v.planned_end += timedelta(minutes=10)
        s.commit()
    assert p.poll() == 1 and rec.take() == ["demo-r2"]
    # moved to another home: the old home loses it, the new one gets it
    _, other = _visit_at(sessions, "demo-r4")
    with sessions() as s:
        s.get(Visit, vid).client_id = other
        s.commit()
    assert p.poll() == 2 and rec.take() == ["demo-r2", "demo-r4"]


def test_a_new_card_reaches_the_homes_of_its_caregiver(pusher, sessions):
    p, rec = pusher
    p.poll()
    rec.take()
    with sessions() as s:
        g = s.scalars(select(Caregiver).order_by(Caregiver.id)).first()
        homes = {d.ident for d in s.scalars(select(Device).where(Device.client_id.in_(
            select(Visit.client_id).where(Visit.caregiver_id == g.id))))}
        s.add(Badge(organisation_id=g.organisation_id, kind="caregiver_card",
                    uid="04AA000000000001", caregiver_id=g.id))
        s.commit()
    assert p.poll() == len(homes) and rec.take() == sorted(homes)


def test_publish_failure_is_retried_with_the_same_version(pusher, sessions):
    p, rec = pusher
    rec.fail = True
    p.poll()
    assert p.counts["errors"] == 5 and len(p._retry) == 5
    rec.fail = False
    assert p.poll() == 5 and len(rec.devices()) == 5
    versions = {json.loads(m)["v"] for t, m, _ in rec.sent if t.endswith("/down/config")}
    assert versions == {1}


def test_shrinking_config_deletes_the_extra_retained_parts(pusher, sessions):
    p, rec = pusher
    with sessions() as s:  # a long planning at demo-r1: many visits today
        d = s.scalars(select(Device).where(Device.ident == "demo-r1")).one()
        v = s.scalars(select(Visit).where(Visit.client_id == d.client_id)).first()
        start = window_start("Europe/Paris", __import__("time").time()) + timedelta(hours=1)
        for i in range(40):
            s.add(Visit(organisation_id=v.organisation_id, client_id=v.client_id,
                        caregiver_id=v.caregiver_id, planned_start=start + timedelta(minutes=i),
                        planned_end=start + timedelta(minutes=i + 30)))
        s.commit()
    p.poll()
    parts = [t for t, _, _ in rec.sent if t.startswith("tg/v1/demo-r1/down/config/")]
    assert len(parts) >= 2
    rec.take()
    with sessions() as s:
        for x in s.scalars(select(Visit).where(Visit.planned_start >= start,
                                               Visit.planned_start < start + timedelta(hours=1))):
            x.status = "cancelled"
        s.commit()
    p.poll()
    cleared = [t for t, m, _ in rec.sent if m == b""]
    assert cleared and set(cleared) <= set(parts)


class Receipt:
    """What fleet.down_path's publish returns: confirmed once the broker answered."""

    def __init__(self):
        self.done = False

    def is_published(self):
        return self.done


def test_a_config_counts_as_pushed_only_once_the_broker_confirmed_it(sessions):
    receipts: list[Receipt] = []

    def publish(topic, payload, retain):
        receipts.append(Receipt())
        return receipts[-1]

    clock = [1000.0]
    p = ConfigPusher(sessions, publish, clock=lambda: clock[0], confirm_s=30)
    p.poll()
    sent = len(receipts)
    assert sent >= 5 and p.counts["pushed"] == 0 and p.confirm() == 5
    for r in receipts[:-1]:  # all but the last message of the last device
        r.done = True
    assert p.confirm() == 1 and p.counts["pushed"] == 4
    clock[0] += 31  # never confirmed: sent again, same version, at the next poll
    assert p.confirm() == 0 and p.counts["unconfirmed"] == 1 and len(p._retry) == 1
    assert p.poll() == 1 and len(receipts) > sent
    for r in receipts[sent:]:
        r.done = True
    p.confirm()
    assert p.counts["pushed"] == 5 and p.counts["unconfirmed"] == 1


def test_a_receipt_that_says_it_failed_is_sent_again_at_once(sessions):
    class Failed:
        def is_published(self):  # as paho's MessageInfo of a publish it could not send
            raise RuntimeError("Message publish failed: The client is not currently connected.")

    p = ConfigPusher(sessions, lambda *_: Failed())
    p.poll()
    assert p.confirm() == 0 and p.counts["unconfirmed"] == 5 and len(p._retry) == 5
    assert p.counts["pushed"] == 0


def test_live_copies_of_a_whole_pass_go_before_any_retained_one(sessions):
    """On a cluster (announce): every device's config goes out live first, batch by batch, and
    the retained copies only after the pass; a live copy that fails changes nothing else."""
    order: list[tuple[str, str]] = []

    def announce(topic, payload):
        if topic.startswith("tg/v1/demo-r3/"):
            raise ConnectionError("no NATS connection")
        order.append(("live", topic))

    def publish(topic, payload, retain):
        assert retain
        order.append(("retained", topic))

    p = ConfigPusher(sessions, publish, announce=announce, batch=2)
    assert p.poll() == 5
    kinds = [k for k, _ in order]
    assert kinds == ["live"] * kinds.count("live") + ["retained"] * kinds.count("retained")
    live = sorted(t.split("/")[2] for k, t in order if k == "live" and t.endswith("/config"))
    assert live == ["demo-r1", "demo-r2", "demo-r4", "demo-r5"]
    retained = [t for k, t in order if k == "retained"]
    assert sorted({t.split("/")[2] for t in retained}) == [f"demo-r{i}" for i in range(1, 6)]
    assert p.counts["announced"] == 4 and p.counts["announce_errors"] == 1
    assert p.counts["pushed"] == 5
    live_payloads = [t for k, t in order if k == "live"]
    assert live_payloads == [t for t in retained if not t.startswith("tg/v1/demo-r3/")]


def test_a_device_back_before_its_retained_copy_is_stored_gets_the_live_copy_again(sessions):
    live: list[str] = []
    receipts: list[Receipt] = []

    def publish(topic, payload, retain):
        receipts.append(Receipt())
        return receipts[-1]

    p = ConfigPusher(sessions, publish, announce=lambda t, _p: live.append(t))
    p.poll()
    first = list(live)
    assert p.reannounce("demo-r2") and live[len(first):] == [
        t for t in first if t.startswith("tg/v1/demo-r2/")]
    assert not p.reannounce("demo-unknown") and p.counts["reannounced"] == 1
    for r in receipts:  # every retained copy stored: nothing to send again
        r.done = True
    p.confirm()
    assert not p.reannounce("demo-r2") and p._live == {}
