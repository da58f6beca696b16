"""A reader and a lossy fake fleet in pure Python: every event ends up stored exactly once
and acked, the journal is freed, across dropped batches, duplicated and late acks,
reconnects and reader restarts. CPython and MicroPython, one source: the same draws on both
(support.Rng)."""
import json
import os

from firmware.journal import Journal
from firmware.planning import Planning
from firmware.reader import ReaderCore
from tests.firmware.fakes import Clock
from tests.firmware.support import Rng, tmpdir

BADGES = ["04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "DEADBEEF", "0102030405060708"]
T = 1795420000


class LossyFleet:
    """Stores by seq (a resend is a no-op), acks the highest gap-free seq after storing."""

    def __init__(self, rng):
        self.rng = rng
        self.stored = {}
        self.duplicates = 0
        self.acks = []  # in flight to the reader

    def receive(self, topic, payload, qos):
        assert topic == "tg/v1/r1/up/clock" and qos == 1 and len(payload) <= 1024
        if self.rng.random() < 0.3:
            return  # lost on the way
        msg = json.loads(payload)
        for e in msg["events"]:
            seq = e.pop("seq")
            if seq in self.stored:
                assert self.stored[seq] == e  # a resend carries the same event
                self.duplicates += 1
            self.stored[seq] = e
        ack = 0
        while ack + 1 in self.stored:
            ack += 1
        if self.rng.random() < 0.2:
            return  # the ack is lost
        body = json.dumps({"ack": ack, "rejected": []}).encode()
        self.acks.append(body)
        if self.rng.random() < 0.3:
            self.acks.append(body)  # QoS 1 delivers twice

    def deliver(self, reader):
        self.rng.shuffle(self.acks)  # late acks arrive after newer ones
        for body in self.acks:
            reader.on_message("tg/v1/r1/down/ack", body)
        self.acks = []


def test_lossy_exchange_loses_and_duplicates_nothing():
    for seed in range(4):
        lossy_exchange(tmpdir("exchange"), seed)


def lossy_exchange(tmp_path, seed):
    rng = Rng(seed)
    clock = Clock(T)
    planning = Planning.from_config({"version": 1, "tolerance_min": 30, "badges": BADGES[:3],
                                     "visits": [[1, BADGES[0], T, T + 3600]]})
    path = tmp_path + "/j"

    def boot():
        return ReaderCore("r1", Journal(path, max_records=500, segment_records=8), planning,
                          clock, ack_timeout=5, window=32)

    reader = boot()
    fleet = LossyFleet(rng)
    taken = {}
    resends = 0
    for step in range(600):
        clock.t += rng.randint(1, 4)
        if step < 400 and rng.random() < 0.5:
            fb = reader.tap(rng.choice(BADGES))
            assert fb != "full"
            taken[reader.journal.last_seq] = reader.journal.read_from(reader.journal.last_seq, 1)
        if rng.random() < 0.02:
            resends += reader.resends
            reader = boot()  # power cut: the journal and the tap state come back from flash
        if rng.random() < 0.05:
            reader.on_connect()
        for msg in reader.outgoing(clock.t):
            fleet.receive(*msg)
        fleet.deliver(reader)
    for _ in range(100):  # drain
        clock.t += 5
        for msg in reader.outgoing(clock.t):
            fleet.receive(*msg)
        fleet.deliver(reader)
    n = max(taken)
    assert sorted(fleet.stored) == list(range(1, n + 1))  # none lost, gap-free
    for seq, [(s, ev)] in taken.items():
        assert fleet.stored[seq] == json.loads(ev)  # stored exactly as journaled
    assert reader.journal.acked == n and reader.journal.depth == 0
    assert not [f for f in os.listdir(path) if f.endswith(".log")]  # journal freed
    assert fleet.duplicates > 0 and resends + reader.resends > 0  # the losses were exercised
