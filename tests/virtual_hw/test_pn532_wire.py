"""The PN532 driver (core + HSU transport) against the wire-level simulator, through pyserial."""
import time

import pytest
import serial

from firmware import ndef
from firmware.drivers import ntag
from firmware.drivers.pn532 import PN532, PN532Error, PN532Timeout
from firmware.drivers.pn532_uart import PN532UART
from tools.sim.pn532 import ntag_image

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(30)]

UID = bytes.fromhex("04a1b2c3d4e5f6")


def test_firmware_version(reader):
    assert reader.get_firmware_version() == (0x32, 1, 6, 7)


def test_begin_sends_sam_configuration_and_rf_retries(reader, sim):
    assert sim.commands[:2] == [0x14, 0x32]
    reader.sam_configuration()
    assert sim.commands[-1] == 0x14


def test_asleep_chip_is_woken_by_the_hsu_preamble(port, sim):
    sim.power_down()
    r = PN532(PN532UART(port), ack_timeout_ms=100)
    r.begin()
    assert sim.awake and r.get_firmware_version()[0] == 0x32


def test_no_tag_then_tag_placed_then_removed(reader, sim):
    assert reader.list_target() is None
    sim.place_tag(UID)
    assert reader.list_target() == UID
    sim.remove_tag()
    assert reader.list_target() is None


def test_four_byte_uid(reader, sim):
    sim.place_tag(bytes.fromhex("deadbeef"), ntag_image(bytes.fromhex("deadbeef")))
    assert reader.list_target() == bytes.fromhex("deadbeef")


def test_ntag_read_write_round_trip(reader, sim):
    sim.place_tag(UID)
    assert reader.list_target() == UID
    head = reader.ntag_read(0)
    assert head[:3] == UID[:3] and head[4:8] == UID[3:7] and head[12] == 0xE1
    for page, data in ((4, b"tele"), (5, b"gest"), (39, b"\x01\x02\x03\x04")):
        reader.ntag_write(page, data)
    assert reader.ntag_read(4)[:8] == b"telegest"
    assert reader.ntag_read(39)[:4] == b"\x01\x02\x03\x04"
    assert bytes(sim.pages[16:24]) == b"telegest"


def test_ntag_errors_are_pn532errors(reader, sim):
    sim.place_tag(UID)
    with pytest.raises(PN532Error, match="status 0x27"):
        reader.ntag_read(4)  # no target listed yet
    reader.list_target()
    with pytest.raises(PN532Error, match="status 0x01: target timeout"):
        reader.ntag_read(200)  # past the end of an NTAG213
    sim.remove_tag()
    with pytest.raises(PN532Error, match="target timeout"):
        reader.ntag_write(4, b"gone")


def test_ndef_text_written_then_read_back_through_the_reader(reader, sim):
    sim.place_tag(UID)
    reader.list_target()
    msg = ndef.encode_message([ndef.text_record("client 42 — Mme Dupré", "fr"),
                               ndef.uri_record("https://telegest.org/b/42")])
    ntag.write_message(reader, msg)
    sim.remove_tag()
    sim.place_tag(UID, bytes(sim.pages))  # tag taken away and tapped again
    assert reader.list_target() == UID
    recs = ndef.decode_message(ntag.read_message(reader))
    assert ndef.decode_text(recs[0]) == ("fr", "client 42 — Mme Dupré")
    assert ndef.decode_uri(recs[1]) == "https://telegest.org/b/42"


def test_garbled_answer_recovered_with_nack(reader, sim):
    sim.place_tag(UID)
    reader.list_target()
    sim.garble_next()
    assert reader.ntag_read(0)[:3] == UID[:3]
    assert reader.stats["frame_errors"] == 1 and reader.stats["nacks"] == 1


def test_nacked_command_is_resent(reader, sim):
    sim.nack_next(2)
    assert reader.get_firmware_version()[0] == 0x32
    assert sim.commands[-3:] == [0x02, 0x02, 0x02]
    assert reader.stats["retries"] == 2


def test_corrupted_host_frame_gets_the_error_frame(port, sim, reader):
    port.write(bytes.fromhex("0000ff02fed4022b00"))  # bad DCS
    t0 = time.monotonic()
    while sim.bad_frames == 0 and time.monotonic() - t0 < 2:
        time.sleep(0.01)
    kind, _ = reader.read_frame(500)
    assert sim.bad_frames == 1 and kind == 4  # KIND_ERROR: 00 00 FF 01 FF 7F 81 00
    assert reader.get_firmware_version()[0] == 0x32


def test_garbled_forever_gives_a_clear_error(reader, sim):
    sim.garble_next(100)
    # a NACKed answer resent late (a busy machine) lands after the drain and reads as a
    # garbled ACK: either way the exchange ends, bounded, with the reason
    with pytest.raises(PN532Error, match=r"failed after \d+ attempts: garbled (answer|ACK)"):
        reader.get_firmware_version()


@pytest.mark.serial  # a bound in CPU time: alone, after the others
def test_reader_that_stops_answering_times_out_bounded(reader, sim):
    sim.stop_answering()
    t0 = time.monotonic()
    with pytest.raises(PN532Timeout, match="PN532 not answering command 0x4a: no ACK within"):
        reader.list_target()
    assert time.monotonic() - t0 < 2.0  # 3 attempts x 100 ms, plus wake-ups
    assert reader.stats["timeouts"] >= 3
    sim.resume()
    reader.reset()
    assert reader.get_firmware_version()[0] == 0x32


def test_over_a_pseudo_terminal(sim):
    sim.place_tag(UID)
    path = sim.serve_pty()
    with serial.Serial(path, 115200, timeout=0) as ser:
        r = PN532(PN532UART(ser), ack_timeout_ms=100)
        r.begin()
        assert r.get_firmware_version() == (0x32, 1, 6, 7)
        assert r.list_target() == UID
        r.ntag_write(6, b"ptty")
        assert r.ntag_read(6)[:4] == b"ptty"
