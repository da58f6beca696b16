"""The flash journal, what only CPython shows: fsync calls and inodes (the rest of the journal's
tests run on both interpreters: test_journal.py)."""
import os
import stat

from firmware.journal import Journal
from tests.firmware.test_journal import fill

ON_MICROPYTHON = False  # MicroPython has no fsync, and its os.stat gives no inode


def test_records_and_new_segments_are_fsynced(tmp_path, monkeypatch):
    """docs/firmware.md: a record is flushed and fsynced before its seq is returned, and a new
    segment's directory entry is made durable too (CPython; MicroPython has no fsync)."""
    import firmware.journal as journal
    synced = []

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    real_fsync = os.fsync
    monkeypatch.setattr(journal.os, "fsync", fsync)
    j = Journal(str(tmp_path / "j"), segment_records=2)
    synced.clear()
    j.append(b"a")  # a new segment: the file, then its directory
    assert synced == [False, True]
    synced.clear()
    j.append(b"b")  # the same segment: the file only
    assert synced == [False]


def test_an_ack_at_the_current_one_writes_nothing(tmp_path):
    d = tmp_path / "j"
    j = fill(str(d), 3)
    j.ack(2)
    ino = os.stat(os.path.join(d, "ack")).st_ino
    j.ack(2)  # ignored: no flash write (an atomic write would replace the file)
    assert os.stat(os.path.join(d, "ack")).st_ino == ino
    j.ack(3)
    assert os.stat(os.path.join(d, "ack")).st_ino != ino


def test_opening_a_whole_journal_rewrites_no_segment(tmp_path):
    """A full older segment that ends just before the next one is whole: opening the journal
    leaves it as it is (no flash write)."""
    d = tmp_path / "j"
    fill(str(d), 6, segment_records=4)
    inodes = {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d)}
    j = Journal(str(d), segment_records=4)
    assert {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d)} == inodes
    assert (j.last_seq, j.corrupt, j.torn) == (6, 0, 0)
