"""down/config: the fleet's chunking (fleet/push.py) against the device's reassembly
(firmware/config.py), exact bytes, hash check, order, stale versions, persistence."""
import hashlib
import json
import random

import pytest

from firmware.config import MAX_TEXT, ConfigReceiver
from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from fleet.planning import canonical
from fleet.push import encode_config

A, B = "04A1B2C3D4E5F6", "04FFEEDDCCBBAA"
T = 1795420000
BASE = "tg/v1/r1/down/config"
ON_MICROPYTHON = False  # the fleet's own encoder (fleet/push.py) against the device's
# reassembly: host code. The device side alone runs on both: test_config_reassembly.py.


def body(visits=1, badge=A):
    return {"tz": "Europe/Paris", "tolerance_min": 30, "badges": [badge],
            "visits": [[100 + i, badge, T + 3600 * i, T + 3600 * i + 1800]
                       for i in range(visits)]}


def receiver(tmp_path):
    return ConfigReceiver("r1", str(tmp_path / "config.json"))


def feed(rx, messages):
    out = None
    for t, p in messages:
        got = rx.on_message(t, p)
        out = got or out
    return out


def test_small_config_is_one_inline_manifest_exact_bytes():
    text = canonical(body())
    assert text == ('{"badges":["04A1B2C3D4E5F6"],"tolerance_min":30,"tz":"Europe/Paris",'
                    '"visits":[[100,"04A1B2C3D4E5F6",1795420000,1795421800]]}')
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert encode_config("r1", 4, text) == [(BASE, (
        '{"v":4,"hash":"%s","parts":0,"d":"{\\"badges\\":[\\"04A1B2C3D4E5F6\\"],'
        '\\"tolerance_min\\":30,\\"tz\\":\\"Europe/Paris\\",\\"visits\\":[[100,'
        '\\"04A1B2C3D4E5F6\\",1795420000,1795421800]]}"}' % digest).encode())]


def test_large_config_parts_first_then_manifest_each_under_1kib():
    text = canonical(body(60))
    msgs = encode_config("r1", 9, text)
    assert len(text) > 2000 and len(msgs) >= 4
    *parts, manifest = msgs
    assert manifest == (BASE, ('{"v":9,"hash":"%s","parts":%d}' % (
        hashlib.sha256(text.encode()).hexdigest(), len(parts))).encode())
    assert [t for t, _ in parts] == [f"{BASE}/{i}" for i in range(len(parts))]
    assert all(len(p) <= 1024 for _, p in msgs)
    assert max(len(p) for _, p in parts[:-1]) >= 1000  # parts are filled, not half empty
    assert parts[0][1].startswith(b'{"v":9,"i":0,"d":"{\\"badges\\":[\\"04A1B2C3D4E5F6\\"]')
    assert "".join(json.loads(p)["d"] for _, p in parts) == text


def test_reassembly_in_any_order_applies_and_persists(tmp_path):
    text = canonical(body(60))
    msgs = encode_config("r1", 9, text)
    random.Random(1).shuffle(msgs)
    rx = receiver(tmp_path)
    plan = feed(rx, msgs)
    assert isinstance(plan, Planning) and plan.version == 9 and len(plan) == 60
    assert rx.applied == 9 and rx.applied_count == 1 and rx.bad == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["v"] == 9 and saved["config"] == body(60)
    assert not (tmp_path / "config.json.tmp").exists()
    again = receiver(tmp_path)  # a reboot
    p = again.load()
    assert again.load_status == "ok" and p.version == 9 and len(p) == 60
    assert feed(again, msgs) is None and again.stale == len(msgs)  # equal version: ignored


def test_hash_mismatch_keeps_old_planning(tmp_path):
    rx = receiver(tmp_path)
    feed(rx, encode_config("r1", 2, canonical(body(1))))
    text = canonical(body(40))
    msgs = encode_config("r1", 3, text)
    bad = json.loads(msgs[1][1])
    bad["d"] = bad["d"].replace("1795", "1796", 1)
    msgs[1] = (msgs[1][0], json.dumps(bad).encode())
    assert feed(rx, msgs) is None
    assert rx.bad == 1 and rx.applied == 2
    assert json.loads((tmp_path / "config.json").read_text())["v"] == 2


@pytest.mark.parametrize("text", ['{"badges":"x","tolerance_min":30,"tz":"UTC","visits":[]}',
                                  '{"badges":[],"tolerance_min":"30","tz":"UTC","visits":[]}',
                                  '{"badges":[],"tolerance_min":30,"tz":7,"visits":[]}',
                                  '{"badges":[],"tolerance_min":30,"visits":[[1,2]]}',
                                  '{"badges":[], "visits"', '[1, 2]'])
def test_bad_config_is_counted_and_not_applied(tmp_path, text):
    rx = receiver(tmp_path)
    assert feed(rx, encode_config("r1", 5, text)) is None
    assert rx.bad == 1 and rx.applied == 0 and not (tmp_path / "config.json").exists()
    assert not (tmp_path / "config.json.tmp").exists()


def test_bad_messages_are_counted(tmp_path):
    rx = receiver(tmp_path)
    for t, p in ((BASE, b"{"), (BASE, b'{"v":"3"}'), (BASE, b'{"v":3,"hash":"ab","parts":1}'),
                 (BASE, b'{"v":3,"hash":"%s","parts":99}' % (b"0" * 64)),
                 (BASE + "/x", b'{"v":3,"i":0,"d":""}'), (BASE + "/1", b'{"v":3,"i":0,"d":""}'),
                 (BASE + "/0", b'{"v":3,"i":0,"d":5}'), (BASE, b"\xff"), (BASE, b"x" * 1100)):
        assert rx.on_message(t, p) is None
    assert rx.bad == 9
    assert rx.on_message(BASE + "/3", b"") is None and rx.bad == 9  # a deleted retained part


def test_stale_version_parts_never_mix_in(tmp_path):
    rx = receiver(tmp_path)
    old = encode_config("r1", 4, canonical(body(50, badge=B)))
    new = encode_config("r1", 5, canonical(body(50)))
    # old parts, then the new ones, then the old manifest and its parts again (retained)
    plan = feed(rx, old[:2] + new[:-1] + old + new[-1:])
    assert plan.version == 5 and plan.known(A) and not plan.known(B)
    assert rx.applied == 5 and rx.applied_count == 1 and rx.bad == 0 and rx.stale >= len(old)
    # a newer version's part drops an older in-flight one
    rx2 = receiver(tmp_path / "x")
    (tmp_path / "x").mkdir()
    feed(rx2, new[:1])
    newer = encode_config("r1", 6, canonical(body(50, badge=B)))
    plan = feed(rx2, new[1:2] + newer[:1] + new[2:] + newer[1:])
    assert plan.version == 6 and plan.known(B) and rx2.applied_count == 1


def test_oversized_config_is_refused_with_a_counter(tmp_path):
    rx = receiver(tmp_path)
    text = canonical(body(MAX_TEXT // 40 + 50))
    assert len(text) > MAX_TEXT
    msgs = encode_config("r1", 7, text)
    assert feed(rx, msgs) is None
    assert rx.oversized == 1 and rx.applied == 0 and rx._size == 0


def test_reader_core_applies_config_and_reports_it_in_health(tmp_path):
    class Clock:
        def time(self):
            return T

        def quality(self):
            return "synced"

    j = Journal(str(tmp_path / "j"))
    r = ReaderCore("r1", j, Planning(), Clock())
    assert r.tap(B) == "unknown"
    for t, p in encode_config("r1", 3, canonical(body(30))):
        r.on_message(t, p)
    assert r.planning.version == 3 and r.planning.known(A)
    assert r.tap(A) == "in"
    assert json.loads(r.health(T, 1, 1000)[1])["cfg"] == 3
    assert r.counters()["cfg_applied"] == 1
    # restart with the empty planning: the one saved on flash is used
    r2 = ReaderCore("r1", Journal(str(tmp_path / "j")), Planning(), Clock())
    assert r2.planning.version == 3 and r2.planning.known(A) and r2.config.applied == 3
