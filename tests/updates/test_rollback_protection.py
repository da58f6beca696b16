"""Issue #14 item 9, updates that cannot be rolled back by a thief: the release key signs the
offer (its id, expiry, channel, version, manifest digest), so a replayed, expired or
relabelled offer is refused; the device keeps a minimum version in flash, raised when an
update is confirmed good, and refuses anything older even when it is correctly signed."""
from __future__ import annotations

import base64
import json
import os

from firmware.ota import boot, read_min, read_state
from firmware.ota.updater import Updater
from tests.updates.bundles import PUB, offer, serve, signed, wire_files
from tools.sim.hardware import SimClock

T = 1_800_000_000  # "now" as the commands layer passes it to on_offer


def device(root, fw="0.1.0", channel="stable", clock=None):
    """A box as it boots: boot() then its updater, connected. The updater asks the clock for
    its quality only (the time comes with each offer)."""
    u = Updater(str(root), fw, keys=[PUB], clock=clock or SimClock(), deadline_s=30,
                boot_state=boot(str(root), []), channel=channel)
    u.connected = True
    u.outgoing(0)  # the last update's outcome, sent after every boot
    return u


def reports(u):
    return [json.loads(p) for k, p in u.outgoing(0) if k == "report"]


def refused(u, cmd, now=T):
    """Offer `cmd`; the refusal's reason (nothing fetched, nothing switched)."""
    u.on_offer(cmd, now)
    r = reports(u)
    assert u.job is None and not u.reboot, r
    assert [x["st"] for x in r] == ["failed"], r
    return r[0]["why"]


def install_and_confirm(root, bundle, id, fw):
    u = device(root, fw)
    u.on_offer(offer(bundle, id=id, exp=T + 3600), T)
    assert serve(u, wire_files(bundle))[-1]["st"] == "installed"
    u = device(root, fw)  # the reboot into the trial
    u.health(True, 5)
    assert reports(u)[-1] == {"id": id, "v": bundle.version, "st": "ok"}
    return u


def test_replayed_expired_offer_refused(tmp_path):
    b = signed("0.2.0")
    captured = offer(b, id=5, exp=T + 3600)  # what went over the broker during the rollout
    u = device(tmp_path)
    assert refused(u, captured, T + 3601) == "expired"
    # pushing the expiry forward breaks the signature: it covers exp
    stretched = dict(captured, id=6, exp=T + 10 * 86400)
    assert refused(u, stretched, T + 3601) == "bad_signature"
    # and an offer without the signed fields (the old format) is no way round it
    old = {k: v for k, v in captured.items() if k not in ("oid", "ch", "osig")}
    assert refused(u, dict(old, id=7, exp=T + 10 * 86400), T + 3601) == "bad_offer"
    assert read_state(str(tmp_path)) == {"cur": None}
    assert not os.path.exists(tmp_path / "a" / "firmware" / "m1.py")


def test_offer_relabelled_to_another_channel_refused(tmp_path):
    b = signed("0.2.0")
    beta = offer(b, id=1, ch="beta")
    stable_box = device(tmp_path / "stable")
    assert refused(stable_box, beta) == "wrong_channel"  # signed for beta: not for this box
    relabelled = dict(beta, id=2, ch="stable")  # the label changed, the signature kept
    assert refused(stable_box, relabelled) == "bad_signature"
    other_id = dict(offer(b, id=3, ch="stable", oid=7), oid=8)  # the offer id is signed too
    assert refused(stable_box, other_id) == "bad_signature"
    beta_box = device(tmp_path / "beta", channel="beta")  # the box it was signed for takes it
    beta_box.on_offer(beta, T)
    assert serve(beta_box, wire_files(b))[-1]["st"] == "installed"


def test_older_signed_bundle_refused_after_newer_installed_across_reboot(tmp_path):
    old, new = signed("0.2.0"), signed("0.3.0")
    install_and_confirm(tmp_path, new, id=1, fw="0.1.0")
    assert read_min(str(tmp_path)) == "0.3.0"
    u = device(tmp_path)  # a reboot: the minimum is read from flash
    assert (u.fw, u.min) == ("0.3.0", "0.3.0")
    assert refused(u, offer(old, id=2)) == "below_minimum"
    # state.json lost (flash trouble, or wiped to force the factory firmware): the box runs
    # the factory 0.1.0, and the old bundle, correctly signed and not expired, is refused
    os.remove(tmp_path / "state.json")
    u = device(tmp_path)
    assert (u.fw, u.min) == ("0.1.0", "0.3.0")
    assert refused(u, offer(old, id=3)) == "below_minimum"
    assert read_state(str(tmp_path)) == {"cur": None}
    # the minimum itself is taken again (a reinstall after such a loss)
    u.on_offer(offer(new, id=4), T)
    assert serve(u, wire_files(new))[-1]["st"] == "installed"


def test_failed_update_keeps_the_minimum(tmp_path):
    install_and_confirm(tmp_path, signed("0.2.0"), id=1, fw="0.1.0")
    u = device(tmp_path)
    b = signed("0.3.0")
    u.on_offer(offer(b, id=2), T)
    serve(u, wire_files(b))
    boot(str(tmp_path), [])  # the trial boot, then a crash: the next boot rolls back
    u = device(tmp_path)
    assert read_state(str(tmp_path))["v"] == "0.2.0"
    assert (u.fw, u.min) == ("0.2.0", "0.2.0")  # not raised by the failed 0.3.0


def test_unsynced_clock_refuses_offer(tmp_path):
    b = signed("0.2.0")
    u = device(tmp_path, clock=SimClock(quality="unsynced"))
    assert refused(u, offer(b, id=1, exp=T + 3600)) == "no_clock"
    u.clock = SimClock(quality="rtc")  # the battery RTC kept the time: trusted
    u.on_offer(offer(b, id=2, exp=T + 3600), T)
    assert serve(u, wire_files(b))[-1]["st"] == "installed"


def test_bad_offer_fields_refused(tmp_path):
    b = signed("0.2.0")
    u = device(tmp_path)
    good = offer(b, id=1)
    for i, bad in enumerate([dict(good, ch="Stable!"), dict(good, oid="7"),
                             dict(good, osig=5), dict(good, exp="soon")], 10):
        assert refused(u, dict(bad, id=i)) == "bad_offer", bad
    short = bytearray(base64.b64decode(good["osig"]))[:10]
    assert refused(u, dict(good, id=20, osig=base64.b64encode(short).decode())) == \
        "bad_signature"
