"""The flash journal: format, power cuts at every byte, damage, ack, full (CPython and
MicroPython, one source; what only CPython can see, fsync and inodes, is in
test_journal_host.py)."""
import binascii
import os
import struct

import firmware.journal as journal
from firmware.journal import Journal, JournalFull, record
from tests.firmware.support import copytree, raises, tmpdir


def crc32(data, start=0):
    return binascii.crc32(data, start) & 0xFFFFFFFF


def payload(i):
    return b'{"badge":"04A1B2C3D4E5F6","dir":"in","n":%d}' % i


def fill(path, n, **kw):
    j = Journal(path, **kw)
    for i in range(1, n + 1):
        assert j.append(payload(i)) == i
    return j


def seg(path, first):
    return path + "/s%08d.log" % first


SIZE = len(record(1, payload(1)))  # one record of payload(1) to payload(9), on flash


def append_to(path, first, data):
    """Bytes that reach the end of segment `first` (a torn write, garbage, a forged record)."""
    with open(seg(path, first), "ab") as f:
        f.write(data)


def overwrite(path, first, at, data):
    """Flash damage: `data` in place of the bytes at offset `at` of segment `first`."""
    with open(seg(path, first), "r+b") as f:
        f.seek(at)
        f.write(data)


def write_ack(path, data):
    with open(path + "/ack", "wb") as f:
        f.write(data)


def test_record_exact_bytes():
    # magic A5, version 01, length 0002, seq 00000001, crc32 over the 8 header bytes + payload
    assert record(1, b"ab").hex() == "a501020001000000ea33a3ed6162"
    assert crc32(b"\xa5\x01\x02\x00\x01\x00\x00\x00" + b"ab") == 0xEDA333EA
    assert record(258, b"").hex() == "a501000002010000899f338a"


def test_append_read_and_properties():
    tmp_path = tmpdir("journal")
    j = fill(tmp_path + "/j", 10, segment_records=4)
    assert (j.acked, j.last_seq, j.depth, j.full, j.first_seq) == (0, 10, 10, False, 1)
    assert sorted(os.listdir(tmp_path + "/j")) == ["s00000001.log", "s00000005.log",
                                                  "s00000009.log"]
    assert j.read_from(1, 100) == [(i, payload(i)) for i in range(1, 11)]
    assert j.read_from(6, 3) == [(6, payload(6)), (7, payload(7)), (8, payload(8))]
    assert j.read_from(11, 5) == []
    with open(seg(tmp_path + "/j", 1), "rb") as f:
        assert f.read() == b"".join(record(i, payload(i)) for i in range(1, 5))


def test_reopen_keeps_seq():
    tmp_path = tmpdir("journal")
    fill(tmp_path + "/j", 5)
    j = Journal(tmp_path + "/j")
    assert (j.last_seq, j.torn, j.corrupt) == (5, 0, 0)
    assert j.append(b"x") == 6
    assert Journal(tmp_path + "/j").read_from(6, 1) == [(6, b"x")]


def test_power_cut_at_every_byte():
    # mid-segment, at the start of a new segment, the second record, the first ever
    for before in [5, 8, 1, 0]:
        power_cut_at_every_byte(tmpdir("journal"), before)


def power_cut_at_every_byte(tmp_path, before):
    base = tmp_path + "/base"
    fill(base, before, segment_records=4).ack(0)
    cut = record(before + 1, payload(before + 1))
    first = (before // 4) * 4 + 1  # the segment the next record goes to
    for k in range(len(cut) + 1):
        d = tmp_path + "/" + ("k%d" % k)
        copytree(base, d)
        append_to(d, first, cut[:k])  # power went after k bytes reached flash
        j = Journal(d, segment_records=4)
        complete = k == len(cut)
        assert j.torn == (1 if 0 < k < len(cut) else 0)
        assert j.corrupt == 0
        assert j.last_seq == before + (1 if complete else 0)
        want = [(i, payload(i)) for i in range(1, before + 1)]
        if complete:
            want.append((before + 1, payload(before + 1)))
        assert j.read_from(1, 100) == want
        nxt = j.append(b"after")
        assert nxt == len(want) + 1
        j2 = Journal(d, segment_records=4)
        assert (j2.torn, j2.corrupt) == (0, 0)
        assert j2.read_from(1, 100) == want + [(nxt, b"after")]


def test_bad_crc_at_tail_is_torn():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 3)
    with open(seg(d, 1), "r+b") as f:
        f.seek(-1, 2)
        f.write(b"X")
    j = Journal(d)
    assert (j.torn, j.corrupt, j.last_seq) == (1, 0, 2)
    assert j.append(b"x") == 3


def test_damage_mid_segment_keeps_the_rest_and_never_reuses_a_seq():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 6)
    overwrite(d, 1, SIZE + 20, b"#")  # inside record 2's payload
    j = Journal(d)
    assert (j.torn, j.corrupt, j.last_seq) == (0, 1, 6)
    got = j.read_from(1, 100)
    assert got[1] == (2, b"")  # placeholder: the fleet rejects it, which acks seq 2
    assert got[0] == (1, payload(1)) and got[2:] == [(i, payload(i)) for i in range(3, 7)]
    assert j.append(b"x") == 7
    assert Journal(d).corrupt == 0  # repaired on flash


def test_a_flipped_byte_in_a_payload_is_a_placeholder_and_the_rest_is_kept():
    d = tmpdir("journal") + "/j"
    fill(d, 6, segment_records=64)
    with open(seg(d, 1), "rb") as f:
        data = bytearray(f.read())
    data[SIZE + 20] ^= 0xFF
    with open(seg(d, 1), "wb") as f:
        f.write(data)
    j = Journal(d)
    assert (j.torn, j.corrupt, j.last_seq) == (0, 1, 6)
    got = j.read_from(1, 100)
    assert got[1] == (2, b"") and got[5] == (6, payload(6))
    assert j.append(b"x") == 7


def test_damaged_header_in_last_segment():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 5)
    overwrite(d, 1, 2 * SIZE, b"\x00")  # magic of record 3
    j = Journal(d)
    assert (j.corrupt, j.last_seq) == (1, 5)
    assert [s for s, p in j.read_from(1, 100) if p] == [1, 2, 4, 5]


def test_damaged_end_of_older_segment_fills_up_to_the_next():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 6, segment_records=4)
    with open(seg(d, 1), "rb") as f:
        data = f.read()
    with open(seg(d, 1), "wb") as f:
        f.write(data[:-10])  # record 4 cut short: not the tail of the journal
    j = Journal(d, segment_records=4)
    assert (j.torn, j.corrupt, j.last_seq) == (0, 1, 6)
    assert j.read_from(4, 1) == [(4, b"")]
    assert j.read_from(5, 2) == [(5, payload(5)), (6, payload(6))]


def test_ack_frees_whole_segments_only():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = fill(d, 10, segment_records=4)
    j.ack(4)
    assert sorted(os.listdir(d)) == ["ack", "s00000005.log", "s00000009.log"]
    j.ack(5)
    assert "s00000005.log" in os.listdir(d)
    assert (j.acked, j.depth, j.first_seq) == (5, 5, 5)
    j.ack(3)  # backwards: ignored
    assert j.acked == 5
    j.ack(100)  # beyond what was written: clamped
    assert (j.acked, j.depth) == (10, 0)
    assert sorted(os.listdir(d)) == ["ack"]
    assert open(d + "/ack").read() == "10\n"
    j2 = Journal(d, segment_records=4)
    assert (j2.acked, j2.last_seq) == (10, 10)
    assert j2.append(b"x") == 11  # continues from the ack file when everything was freed
    assert "s00000011.log" in os.listdir(d)


def test_full_journal_raises_and_drops_nothing():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = fill(d, 5, max_records=5, segment_records=2)
    assert j.full
    with raises(JournalFull):
        j.append(b"x")
    assert j.last_seq == 5
    assert j.read_from(1, 10) == [(i, payload(i)) for i in range(1, 6)]
    j.ack(2)
    assert not j.full
    assert j.append(b"x") == 6
    assert j.append(b"y") == 7
    with raises(JournalFull):
        j.append(b"y")


def test_torn_ack_tmp_is_ignored():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = fill(d, 6, segment_records=2)
    j.ack(2)
    with open(d + "/ack.tmp", "wb") as f:
        f.write(b"4")  # power went before the rename: segments 3-4 were not freed
    j2 = Journal(d, segment_records=2)
    assert (j2.acked, j2.last_seq) == (2, 6)
    assert "ack.tmp" not in os.listdir(d)
    assert j2.read_from(3, 10)[0] == (3, payload(3))


def test_cut_between_ack_and_free():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 6, segment_records=2)
    write_ack(d, b"4\n")  # the ack was persisted, the segments not yet deleted
    j = Journal(d, segment_records=2)
    assert (j.acked, j.first_seq) == (4, 5)
    assert sorted(os.listdir(d)) == ["ack", "s00000005.log"]


def test_segments_imply_a_lower_bound_for_the_ack():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = fill(d, 6, segment_records=2)
    j.ack(4)
    os.remove(d + "/ack")  # lost: segments 1-4 were freed, so 4 was acked
    assert Journal(d, segment_records=2).acked == 4


def test_oversized_payload_and_meta():
    tmp_path = tmpdir("journal")
    j = Journal(tmp_path + "/j")
    with raises(ValueError):
        j.append(b"x" * 1025)
    assert j.read_meta("taps.json") is None
    j.write_meta("taps.json", b"{}")
    assert Journal(tmp_path + "/j").read_meta("taps.json") == b"{}"


# -- edges a mutation run found unpinned (issue #14 item 12) --------------------------------

def _foreign_record(seq, payload, magic=0xA5, version=1):
    """A record with a good CRC over a header this journal must not take."""
    head = struct.pack("<BBHI", magic, version, len(payload), seq)
    return head + struct.pack("<I", crc32(payload, crc32(head))) + payload


def test_a_record_of_another_format_is_not_taken_even_with_a_good_crc():
    for kw in [dict(magic=0xA6), dict(version=2), dict(version=0)]:
        d = tmpdir("journal") + "/j"
        fill(d, 2)
        append_to(d, 1, _foreign_record(3, payload(3), **kw))
        j = Journal(d)
        assert (j.last_seq, j.torn) == (2, 1), kw  # one record's worth at the tail: torn
        assert j.read_from(1, 10) == [(1, payload(1)), (2, payload(2))]


def test_a_payload_of_1024_bytes_is_stored_and_one_of_1025_is_not():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = Journal(d)
    assert j.append(b"x" * 1024) == 1
    with raises(ValueError):
        j.append(b"x" * 1025)
    assert Journal(d).read_from(1, 1) == [(1, b"x" * 1024)]
    # a record claiming 1,025 bytes, CRC and all, is not one this journal wrote: damage (more
    # than one record's worth of bytes), its seqs kept as placeholders
    append_to(d, 1, _foreign_record(2, b"y" * 1025))
    j = Journal(d)
    assert j.read_from(1, 1) == [(1, b"x" * 1024)]
    assert j.last_seq > 1 and all(p == b"" for s, p in j.read_from(2, 100))


def test_the_default_segment_holds_64_records_and_the_journal_2000():
    """docs/firmware.md: `Journal(path, max_records=2000, segment_records=64)`; the 64th record
    ends segment 1, the 65th opens s00000065.log."""
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = Journal(d)
    assert (j.max_records, j.segment_records) == (2000, 64)
    for i in range(1, 65):
        j.append(payload(i))
    assert os.listdir(d) == ["s00000001.log"]
    assert j.append(payload(65)) == 65
    assert sorted(os.listdir(d)) == ["s00000001.log", "s00000065.log"]
    j.ack(63)  # one record of segment 1 still unacked: nothing freed
    assert j.first_seq == 1 and "s00000001.log" in os.listdir(d)
    j.ack(64)  # the whole of segment 1
    assert j.first_seq == 65 and sorted(os.listdir(d)) == ["ack", "s00000065.log"]
    assert Journal(d).read_from(1, 10) == [(65, payload(65))]


def test_a_torn_record_of_the_largest_size_is_still_a_torn_write():
    """One record's worth of bytes (12 + 1,024) at the tail is the record being written when
    power went; one byte more is damage (test_a_payload_of_1024_bytes...)."""
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 2)
    cut = bytearray(record(3, b"x" * 1024))
    cut[-1] ^= 0xFF  # bad CRC
    append_to(d, 1, bytes(cut))
    j = Journal(d)
    assert (j.torn, j.corrupt, j.last_seq) == (1, 0, 2)


def test_magic_bytes_in_the_damage_are_skipped():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 4)
    overwrite(d, 1, SIZE, b"\xa5\xa5\xa5\xa5")  # record 2's header: magic that starts no record
    j = Journal(d)
    assert (j.corrupt, j.last_seq) == (1, 4)
    assert j.read_from(1, 10) == [(1, payload(1)), (2, b""), (3, payload(3)), (4, payload(4))]


def test_first_seq_of_an_empty_journal_is_the_next_seq():
    tmp_path = tmpdir("journal")
    j = Journal(tmp_path + "/j")
    assert (j.first_seq, j.last_seq) == (1, 0)
    fill(tmp_path + "/k", 3).ack(3)
    k = Journal(tmp_path + "/k")
    assert (k.first_seq, k.last_seq, k.depth) == (4, 3, 0)


def test_files_that_are_not_segments_are_left_alone():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 2)
    others = ["notes.log", "s1.log", "sABCDEFGH.log", "s0000000x.log", "sx0000009.log",
              "s00000009.txt", "x00000009.log"]
    for name in others:
        with open(d + "/" + name, "wb") as f:
            f.write(b"not a segment")
    j = Journal(d)
    assert (j.last_seq, j.corrupt, j.torn) == (2, 0, 0)
    assert j.read_from(1, 10) == [(1, payload(1)), (2, payload(2))]
    assert set(others) <= set(os.listdir(d))


def test_an_unreadable_ack_file_counts_as_damage_and_falls_back_to_the_segments():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 3)
    write_ack(d, b"\xff2\n")
    j = Journal(d)
    assert (j.acked, j.corrupt, j.last_seq) == (0, 1, 3)
    assert j.read_from(1, 10) == [(i, payload(i)) for i in range(1, 4)]


def test_a_failed_sync_never_hands_out_the_same_seq_twice():
    """Found by the mutation run (#14 item 12): when the flush/fsync of a record failed after
    its bytes reached flash, the repair counted the record but left last_seq behind, so the
    next append returned that seq again; its record, written after the first, was lost on the
    next open. Now the repair does what a reboot would: the record on flash keeps its seq."""
    d = tmpdir("journal") + "/j"
    j = fill(d, 5, segment_records=4)  # the second segment holds seq 5
    real_sync = journal._sync

    def failing_sync(f):
        real_sync(f)  # the bytes are on flash, then the device reports an I/O error
        raise OSError(5, "EIO")

    journal._sync = failing_sync
    try:
        with raises(OSError):
            j.append(b"c")
    finally:
        journal._sync = real_sync
    assert j.last_seq == 6  # as after a reboot
    assert j.append(b"d") == 7
    assert j.read_from(1, 10) == [(i, payload(i)) for i in range(1, 6)] + [(6, b"c"), (7, b"d")]
    j2 = Journal(d, segment_records=4)
    assert (j2.last_seq, j2.corrupt, j2.torn) == (7, 0, 0)
    assert j2.read_from(1, 10) == j.read_from(1, 10)


def test_a_stray_byte_before_a_record_loses_no_record():
    """Resync starts at the byte right after the damaged spot."""
    for stray in [b"\x00", b"\x00\xa5"]:  # a byte, a magic byte
        d = tmpdir("journal") + "/j"
        fill(d, 3)
        with open(seg(d, 1), "rb") as f:
            data = f.read()
        with open(seg(d, 1), "wb") as f:
            f.write(data[:SIZE] + stray + data[SIZE:])
        j = Journal(d)
        assert (j.last_seq, j.corrupt, j.torn) == (3, 0, 0)
        assert j.read_from(1, 10) == [(i, payload(i)) for i in range(1, 4)]


def test_read_from_stops_at_the_limit_inside_a_segment():
    tmp_path = tmpdir("journal")
    j = fill(tmp_path + "/j", 8, segment_records=4)
    assert j.read_from(1, 2) == [(1, payload(1)), (2, payload(2))]
    assert j.read_from(3, 3) == [(3, payload(3)), (4, payload(4)), (5, payload(5))]
    assert j.read_from(1, 1) == [(1, payload(1))]


def test_damage_after_open_sends_a_placeholder_and_stops():
    """Flash that went bad since the journal was opened: the record read back is a
    placeholder, counted, and nothing after it is trusted in that read."""
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = fill(d, 4)
    overwrite(d, 1, SIZE + 20, b"#")  # inside record 2's payload
    assert j.read_from(1, 10) == [(1, payload(1)), (2, b"")]
    assert j.corrupt == 1
    overwrite(d, 1, SIZE, record(9, payload(2)))  # a whole, valid record, another seq
    assert j.read_from(2, 10) == [(2, b"")] and j.corrupt == 2


def test_damage_at_the_tail_keeps_every_seq_that_may_have_been_written():
    """More garbage than one record could be is not a torn write: records were lost there, and
    their seqs may have been sent, so they are never reused."""
    for segment_records, garbage, last in [
        (64, 1100, 64),  # 91 headers' worth of bytes, but the segment ends at 64
        (200, 1200, 2 + 1200 // 12),  # as many records as the bytes could hold: 100
    ]:
        d = tmpdir("journal") + "/j"
        fill(d, 2, segment_records=segment_records)
        append_to(d, 1, b"\xff" * garbage)
        j = Journal(d, segment_records=segment_records)
        assert (j.last_seq, j.corrupt, j.torn) == (last, last - 2, 0)
        assert all(p == b"" for s, p in j.read_from(3, 100))
        assert j.append(b"x") == last + 1


def test_an_unreadable_ack_file_and_no_segment_start_again_from_1():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    Journal(d)
    write_ack(d, b"garbage\n")
    j = Journal(d)
    assert (j.acked, j.last_seq, j.corrupt) == (0, 0, 1)
    assert j.append(b"x") == 1


def test_a_segment_named_with_all_eight_digits_is_found_again():
    """Segment names carry 8 decimal digits: seq 10,000,001 is s10000001.log."""
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    Journal(d)
    write_ack(d, b"10000000\n")
    assert Journal(d).append(b"x") == 10000001
    assert "s10000001.log" in os.listdir(d)
    j = Journal(d)
    assert (j.first_seq, j.last_seq) == (10000001, 10000001)
    assert j.read_from(1, 5) == [(10000001, b"x")]


def test_damage_in_an_older_segment_finds_the_records_after_it():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    fill(d, 8, segment_records=4)
    overwrite(d, 1, SIZE + 20, b"#")  # inside record 2's payload; records 3 and 4 follow
    j = Journal(d, segment_records=4)
    assert (j.corrupt, j.last_seq) == (1, 8)
    assert j.read_from(1, 10) == [(1, payload(1)), (2, b"")] + [
        (i, payload(i)) for i in range(3, 9)]


def test_a_segment_cut_mid_header_after_open_gives_a_placeholder():
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    j = fill(d, 3)
    with open(seg(d, 1), "rb") as f:
        data = f.read()
    with open(seg(d, 1), "wb") as f:
        f.write(data[:2 * SIZE + 3])  # record 3: three bytes of its header left
    assert j.read_from(1, 10) == [(1, payload(1)), (2, payload(2)), (3, b"")]
    assert j.corrupt == 1


def test_damage_among_large_seqs_finds_the_records_after_it():
    """Resync compares seqs with seqs: with seqs past ten million, not a byte offset either."""
    tmp_path = tmpdir("journal")
    d = tmp_path + "/j"
    Journal(d)
    write_ack(d, b"10000000\n")
    j = Journal(d)
    for i in range(1, 5):
        j.append(payload(i))
    first = 10000001
    overwrite(d, first, SIZE + 20, b"#")  # inside the second record's payload
    j = Journal(d)
    assert (j.corrupt, j.last_seq) == (1, first + 3)
    assert j.read_from(first, 10) == [(first, payload(1)), (first + 1, b""),
                                      (first + 2, payload(3)), (first + 3, payload(4))]
