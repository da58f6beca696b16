"""Rollouts end to end: a real mosquitto, the worker as a process, ten virtual readers
running the firmware's updater. One reader fails its post-install health check: it rolls
back by itself, reports it, and the rollout pauses at a threshold of one failure without
offering the remaining waves. A tampered bundle, or an offer changed after signing (its expiry
or its channel), is refused by the device."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from fleet.db import make_engine, session_factory
from fleet.models import Device, DeviceCommand
from fleet.updates import rollout_status, start_rollout, store_bundle, write_bundle
from tests.helpers import reader_for, wait_until
from tests.updates.bundles import PUB, signed, signed_offer

pytestmark = pytest.mark.e2e


@pytest.fixture
def sessions(demo):
    engine = make_engine(demo[0])
    yield session_factory(engine)
    engine.dispose()


def readers(demo, mosquitto, tmp_path, sessions, n=10, **kw):
    idents = list(demo[1]["devices"])
    with sessions() as s:
        org = demo[1]["organisation_id"]
        for i in range(len(idents), n):
            s.add(Device(ident=f"upd-r{i}", kind="reader", organisation_id=org,
                         status="active"))
            idents.append(f"upd-r{i}")
        s.commit()
    config = {"version": 0, "badges": [], "tolerance_min": 30, "tz": "UTC", "visits": []}
    out = []
    for ident in idents[:n]:
        if ident.startswith("demo-"):
            r = reader_for(demo[0], mosquitto, tmp_path, ident, trust_keys=[PUB], **kw)
        else:
            from tools.sim.reader import VirtualReader
            r = VirtualReader(ident, mosquitto.host, mosquitto.port, tmp_path / "flash" / ident,
                              config, trust_keys=[PUB], **kw)
        out.append(r.start())
    for r in out:
        assert r.connected.wait(10), r.device_id
    return out


def upload(sessions, bundle, check=True):
    with sessions() as s:
        row = store_bundle(s, write_bundle(bundle), "release-manager", check_signature=check,
                           keys=[PUB])
        s.commit()
        return row.id


def status(sessions, rid):
    with sessions() as s:
        return rollout_status(s, rid)


def test_rollout_in_waves_pauses_when_a_reader_rolls_back(demo, mosquitto, worker, tmp_path,
                                                          sessions):
    rs = readers(demo, mosquitto, tmp_path, sessions, ota_deadline_s=4)
    try:
        b = signed("0.2.0")
        bid = upload(sessions, b)
        offer = signed_offer(b)
        idents = [r.device_id for r in rs]
        bad = rs[3]  # in the second wave (waves of 1, 4, 5)
        bad.reader_status = "error"  # its reader fails after the reboot: unhealthy
        with sessions() as s:
            rid = start_rollout(s, bid, "release-manager", devices=idents,
                                waves=[10, 50, 100], max_failures=1, offer=offer,
                                keys=[PUB]).id
            s.commit()
        st = wait_until(lambda: (x := status(sessions, rid))["state"] == "paused" and x, 90,
                        what="the rollout to pause")
        assert "threshold of 1" in st["reason"]
        by = {t["device"]: t for t in st["targets"]}
        assert by[bad.device_id]["state"] == "failed"
        assert by[bad.device_id]["why"] == "rolled_back"
        assert [by[i]["wave"] for i in idents] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 2]
        assert all(by[i]["state"] == "waiting" for i in idents[5:]), st  # not offered
        assert st["wave"] == 1
        # the others of the first two waves run the new version, confirmed healthy
        wait_until(lambda: all(status(sessions, rid)["targets"][k]["state"] == "ok"
                               for k in (0, 1, 2, 4)) or None, 30, what="wave 2 done")
        for r in rs[:5]:
            if r is not bad:
                assert r.fw == "0.2.0" and "try" not in r.updater.state
        # the bad one rolled back by itself and runs the old firmware again
        assert bad.fw == "0.1.0" and bad.reboots == 2 and bad.updater.state.get("cur") is None
        for r in rs[5:]:
            assert r.fw == "0.1.0" and r.reboots == 0 and r.updater.counters()["ota_offers"] == 0
        with sessions() as s:
            cmds = s.scalars(select(DeviceCommand).where(DeviceCommand.kind == "update")).all()
            assert len(cmds) == 5
            assert sorted(c.state for c in cmds) == ["done"] * 4 + ["failed"]
            # what went to the devices: the offer as the release manager signed it
            assert {(c.payload["oid"], c.payload["ch"], c.payload["exp"], c.payload["osig"])
                    for c in cmds} == {(offer["oid"], "stable", offer["exp"], offer["sig"])}
        # the fleet saw the new version in their health
        for r in rs[:5]:
            r.send_health()
        wait_until(lambda: _fw(sessions, rs[0].device_id) == "0.2.0" or None, 10,
                   what="fw in health")
    finally:
        for r in rs:
            r.stop()


def _fw(sessions, ident):
    with sessions() as s:
        return s.scalar(select(Device.fw_version).where(Device.ident == ident))


@pytest.mark.parametrize("tamper", ["file_changed_after_signing", "bad_signature",
                                    "offer_relabelled_to_another_channel"])
def test_tampered_bundle_is_refused_and_the_old_firmware_keeps_running(
        demo, mosquitto, worker, tmp_path, sessions, tamper):
    rs = readers(demo, mosquitto, tmp_path, sessions, n=2)
    try:
        b = signed("0.2.0")
        offer = signed_offer(b, ch="beta" if tamper.startswith("offer") else "stable")
        bid = upload(sessions, b)
        if tamper == "file_changed_after_signing":
            with sessions() as s:  # one stored file changed after signing and upload
                from fleet.models import UpdateBundleFile
                f = s.scalar(select(UpdateBundleFile).where(UpdateBundleFile.bundle_id == bid,
                                                            UpdateBundleFile.idx == 2))
                f.content = f.content[:-1] + b"X"
                s.commit()
        with sessions() as s:
            r = start_rollout(s, bid, "release-manager", devices=[r.device_id for r in rs],
                              waves=[50, 100], max_failures=1, offer=offer, keys=[PUB])
            if tamper == "bad_signature":  # a compromised fleet changes the signed offer
                r.offer = dict(offer, exp=offer["exp"] + 30 * 86400)
            elif tamper.startswith("offer"):  # ... or relabels it for the readers' channel
                r.offer = dict(offer, ch="stable")
            rid = r.id
            s.commit()
        st = wait_until(lambda: (x := status(sessions, rid))["state"] == "paused" and x, 60,
                        what="the rollout to pause")
        t = st["targets"][0]
        why = "sha_mismatch" if tamper == "file_changed_after_signing" else "bad_signature"
        assert t["state"] == "failed" and t["why"] == why, st
        assert st["targets"][1]["state"] == "waiting"
        r = rs[0]
        assert r.fw == "0.1.0" and r.reboots == 0 and r.updater.state == {"cur": None}
        assert r.updater.counters()["ota_refused"] == 1
        seq = r.last_seq
        r.tap("04A1B2C3D4E5F6")  # the old firmware still journals taps and sends them
        assert r.last_seq == seq + 1 and r.wait_drained(10)
    finally:
        for r in rs:
            r.stop()
