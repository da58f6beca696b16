"""The device's updater (firmware/ota): verify, fetch, switch, confirm or roll back; refused
bundles; a power cut at every flash operation of an install, a confirm and a rollback."""
from __future__ import annotations

import base64
import json
import os

import pytest

import firmware.ota as ota
import firmware.ota.updater as upd
from firmware.commands import Commands
from firmware.ota import boot, file_sha256, read_state
from firmware.ota.updater import Updater
from tests.updates.bundles import OTHER_PEM, PEM, PUB, offer, serve, signed, wire_files


class Clock:
    t = 1_800_000_000

    def time(self):
        return self.t


def updater(root, fw="0.1.0", **kw):
    st = boot(str(root), [])
    return Updater(str(root), fw, keys=[PUB], deadline_s=30, boot_state=st, **kw)


def install(root, bundle, id=1, fw="0.1.0"):
    u = updater(root, fw)
    u.connected = True
    u.on_offer(offer(bundle, id=id), Clock.t)
    return u, serve(u, wire_files(bundle))


def running(root):
    """(version, complete) of what a boot now runs: the slot's files all match its manifest."""
    st = boot(str(root), [])
    if not st.get("cur"):
        return st.get("v") or "factory", True
    slot = f"{root}/{st['cur']}"
    doc = json.loads(open(f"{slot}/.manifest").read())
    ok = all(file_sha256(f"{slot}/{f['name']}") == f["sha256"] for f in doc["files"])
    return st["v"], ok and doc["v"] == st["v"]


def test_install_switch_confirm(tmp_path):
    b = signed("0.2.0")
    u, reports = install(tmp_path, b)
    assert [r["st"] for r in reports][0] == "downloading" and reports[-1]["st"] == "installed"
    assert u.reboot
    st = read_state(str(tmp_path))
    assert st["cur"] == "a" and st["v"] == "0.2.0" and st["try"] == 1 and st["prev"] is None
    assert open(tmp_path / "a" / "firmware" / "m1.py", "rb").read() == b.files["firmware/m1.py"]
    # the reboot: the slot goes first on sys.path, the trial boot is counted
    path = ["", ".frozen", "/lib"]
    st = boot(str(tmp_path), path)
    assert path[0] == f"{tmp_path}/a" and st["try"] == 0
    u2 = Updater(str(tmp_path), "0.1.0", keys=[PUB], deadline_s=30, boot_state=st)
    assert u2.fw == "0.2.0"
    u2.health(True, 5)  # healthy but not connected yet: not confirmed
    assert "try" in u2.state
    u2.connected = True
    u2.health(True, 6)
    assert [json.loads(p) for _, p in u2.outgoing(0)] == [{"id": 1, "v": "0.2.0", "st": "ok"}]
    assert running(tmp_path) == ("0.2.0", True)
    # the next update goes to the other slot and keeps this one as prev
    u3, reports = install(tmp_path, signed("0.3.0"), id=2, fw="0.2.0")
    st = read_state(str(tmp_path))
    assert (st["cur"], st["prev"], st["pv"]) == ("b", "a", "0.2.0")


def test_unhealthy_new_version_rolls_back_by_itself(tmp_path):
    install(tmp_path, signed("0.2.0"))
    st = boot(str(tmp_path), [])
    u = Updater(str(tmp_path), "0.1.0", keys=[PUB], deadline_s=30, boot_state=st)
    u.connected = True
    u.health(False, 10)
    assert not u.reboot
    u.health(False, 31)  # the deadline: ask for a reboot
    assert u.reboot
    path = []
    st = boot(str(tmp_path), path)  # that reboot finds the trial used up
    assert st["cur"] is None and path == []  # back to the factory firmware
    u = Updater(str(tmp_path), "0.1.0", keys=[PUB], boot_state=st)
    assert [json.loads(p) for _, p in u.outgoing(0)] == [
        {"id": 1, "v": "0.2.0", "st": "failed", "why": "rolled_back"}]
    # a crash loop does the same without any help from the new code: boot, boot
    install(tmp_path, signed("0.2.1"), id=2)
    boot(str(tmp_path), [])
    assert boot(str(tmp_path), [])["out"]["why"] == "rolled_back"


def reports_of(u):
    return [json.loads(p) for k, p in u.outgoing(0) if k == "report"]


@pytest.mark.parametrize("case,why", [
    ("bad_signature", "bad_signature"), ("other_key", "bad_signature"),
    ("tampered_file", "sha_mismatch"), ("old", "not_newer"), ("expired", "expired"),
    ("no_key", "no_trusted_key"), ("manifest_lies", "bad_manifest"),
])
def test_refused_bundles_keep_the_old_firmware(tmp_path, case, why):
    b = signed("0.2.0", pem=OTHER_PEM if case == "other_key" else None) \
        if case == "other_key" else signed("0.1.0" if case == "old" else "0.2.0")
    o = offer(b, exp=Clock.t - 1 if case == "expired" else 2_000_000_000,
              pem=OTHER_PEM if case == "other_key" else PEM,
              v="0.9.0" if case == "manifest_lies" else None)  # signed, but not the manifest's
    files = wire_files(b)
    if case == "bad_signature":
        sig = bytearray(base64.b64decode(o["osig"]))
        sig[0] ^= 1
        o["osig"] = base64.b64encode(bytes(sig)).decode()
    if case == "tampered_file":
        files[2] = files[2][:-1] + b"X"  # one file changed after signing
    u = updater(tmp_path)
    if case == "no_key":
        u.keys = ()
    u.connected = True
    u.on_offer(o, Clock.t)
    reports = serve(u, files)
    assert reports[-1]["st"] == "failed" and reports[-1]["why"] == why, reports
    assert read_state(str(tmp_path)) == {"cur": None} and not u.reboot
    assert not os.path.exists(tmp_path / "a" / "firmware" / "m2.py")
    if case in ("bad_signature", "other_key"):
        assert len(reports) == 1  # refused before a single chunk was asked


class PowerCut(Exception):
    pass


def cut_after(monkeypatch, n):
    """Every flash change (open for write, each write, rename, remove) counts; the n-th one
    never happens: the power is gone."""
    count = [0]

    def tick():
        count[0] += 1
        if count[0] == n:
            raise PowerCut

    class File:
        def __init__(self, path):
            tick()
            self.f = open(path, "wb")

        def write(self, data):
            tick()
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_rename, real_remove = os.rename, ota._remove

    def rename(a, b):
        tick()
        real_rename(a, b)

    def remove(p):
        tick()
        real_remove(p)

    for mod in (ota, upd):
        monkeypatch.setattr(mod, "_open_w", File)
        monkeypatch.setattr(mod, "_rename", rename)
        monkeypatch.setattr(mod, "_remove", remove)
    return count


def test_power_cut_at_every_step_never_bricks(tmp_path, monkeypatch):
    first, second = signed("0.2.0"), signed("0.3.0")
    # how many flash operations an install of 0.3.0 over a confirmed 0.2.0 takes
    ref = tmp_path / "ref"
    install(ref, first)
    u = updater(ref)
    u.connected = True
    u.health(True, 1)
    with monkeypatch.context() as m:
        total = cut_after(m, 10 ** 9)
        install(ref, second, id=2, fw="0.2.0")
        ops = total[0]
    assert ops > 10
    seen = set()
    for n in range(1, ops + 2):
        root = tmp_path / f"cut{n}"
        install(root, first)
        u = updater(root)
        u.connected = True
        u.health(True, 1)
        with monkeypatch.context() as m:
            cut_after(m, n)
            try:
                install(root, second, id=2, fw="0.2.0")
            except PowerCut:
                pass
        v, complete = running(root)
        assert complete and v in ("0.2.0", "0.3.0"), (n, v)
        seen.add(v)
    assert seen == {"0.2.0", "0.3.0"}


def test_power_cut_during_the_rollback_and_the_confirm(tmp_path, monkeypatch):
    for n in range(1, 8):  # the confirm: state (open, write, rename), then min.json (same)
        root = tmp_path / f"rb{n}"
        install(root, signed("0.2.0"))
        boot(str(root), [])  # trial boot: try 1 -> 0
        with monkeypatch.context() as m:
            cut_after(m, n)
            try:
                boot(str(root), [])  # would roll back; the cut may stop it
            except PowerCut:
                pass
        v, complete = running(root)  # this boot completes the rollback if it was cut
        assert complete and v in ("0.1.0", "factory", None)
        root = tmp_path / f"ok{n}"
        install(root, signed("0.2.0"))
        st = boot(str(root), [])
        u = Updater(str(root), "0.1.0", keys=[PUB], boot_state=st)
        u.connected = True
        with monkeypatch.context() as m:
            cut_after(m, n)
            try:
                u.health(True, 1)
            except PowerCut:
                pass
        v, complete = running(root)  # unconfirmed: this boot rolls back; confirmed: stays
        assert complete and v in ("0.2.0", "0.1.0", None)
        # the minimum follows what runs confirmed: raised at the next boot if the cut
        # came between the confirm and min.json, never left above a rolled-back version
        st = boot(str(root), [])
        assert Updater(str(root), "0.1.0", keys=[PUB], boot_state=st).min == (
            "0.2.0" if v == "0.2.0" else None), n


def test_resume_after_a_power_cut_mid_download(tmp_path, monkeypatch):
    b = signed("0.2.0", None)
    files = wire_files(b)
    with monkeypatch.context() as m:
        cut_after(m, 12)
        try:
            install(tmp_path, b)
        except PowerCut:
            pass
    assert read_state(str(tmp_path)).get("cur") is None
    u = updater(tmp_path)
    u.connected = True
    u.on_offer(offer(b), Clock.t)  # the fleet offers again
    served = [0]
    real = u.on_chunk

    def count(p):
        served[0] += 1
        real(p)
    u.on_chunk = count
    reports = serve(u, files)
    assert reports[-1]["st"] == "installed"
    assert served[0] < sum((len(f) + 639) // 640 for f in files)  # complete files skipped


def test_commands_route_update_ping_and_chunks():
    class U:
        fw, reboot, connected = "0.1.0", False, False
        offers, chunks = [], []

        def on_offer(self, cmd, now):
            self.offers.append(cmd)

        def on_chunk(self, p):
            self.chunks.append(p)

        def outgoing(self, now):
            return [("get", b"{}")]

        def counters(self):
            return {}

    c = Commands("r1", Clock(), U())
    assert c.handles("tg/v1/r1/down/cmd") and c.handles("tg/v1/r1/down/ota")
    assert not c.handles("tg/v1/r2/down/cmd")
    assert c.on_message("tg/v1/r1/down/cmd", b'{"id":3,"cmd":"ping","exp":1900000000}')
    assert c.on_message("tg/v1/r1/down/cmd", b'{"id":4,"cmd":"update","v":"0.2.0"}')
    assert c.on_message("tg/v1/r1/down/ota", b'{"b":1}')
    assert not c.on_message("tg/v1/r1/down/cmd", b'{"id":5,"cmd":"wipe"}')
    assert not c.on_message("tg/v1/r1/down/cmd", b"nope")
    assert c.outgoing(0) == [("tg/v1/r1/up/ota", b'{"id":3,"st":"ok","fw":"0.1.0"}', 1),
                             ("tg/v1/r1/up/ota", b"{}", 0)]
    assert c.counters()["cmd_unknown"] == 1 and c.counters()["cmd_bad"] == 1
