"""Frame building and parsing against byte strings written from the PN532 user manual."""
import pytest

from firmware.drivers.pn532 import (
    ACK, ERROR_FRAME, KIND_ACK, KIND_DATA, KIND_ERROR, KIND_NACK, NACK, FrameError,
    PN532Error, build_frame, checksum, parse_frame,
)

H = bytes.fromhex

# host -> PN532 frames, byte for byte
COMMAND_FRAMES = [
    ("GetFirmwareVersion", H("02"), H("0000ff02fed4022a00")),
    ("SAMConfiguration normal, 1 s, IRQ", H("14011401"), H("0000ff05fbd41401140102" "00")),
    ("InListPassiveTarget 1 x 106 kbps A", H("4a0100"), H("0000ff04fcd44a0100e100")),
    ("InDataExchange NTAG READ page 4", H("40013004"), H("0000ff05fbd440013004b700")),
    ("InDataExchange NTAG WRITE page 4 'abcd'", H("4001a20461626364"),
     H("0000ff09f7d44001a20461626364bb00")),
    ("RFConfiguration MaxRetries", H("3205ff0102"), H("0000ff06fad43205ff0102f300")),
]


@pytest.mark.parametrize("name,data,frame", COMMAND_FRAMES, ids=[c[0] for c in COMMAND_FRAMES])
def test_build_frame_exact_bytes(name, data, frame):
    assert build_frame(data) == frame


def test_fixed_frames_from_the_manual():
    assert ACK == H("0000ff00ff00")
    assert NACK == H("0000ffff0000")
    assert ERROR_FRAME == H("0000ff01ff7f8100")


def test_checksums():
    assert checksum(b"\x02", 0xD4) == 0x2A
    assert checksum(b"") == 0
    assert (sum(H("d503320106 07".replace(" ", ""))) + checksum(H("d50332010607"))) % 256 == 0


def test_build_answer_frame_with_chip_tfi():
    assert build_frame(H("0332010607"), tfi=0xD5) == H("0000ff06fad50332010607e800")


def test_build_refuses_oversized_data():
    with pytest.raises(PN532Error, match="too long"):
        build_frame(bytes(255))


def test_parse_firmware_answer():
    assert parse_frame(H("0000ff06fad50332010607e800")) == (KIND_DATA, H("0332010607"))


def test_parse_tolerates_long_preamble_and_missing_postamble():
    assert parse_frame(H("000000ff02fed51516")) == (KIND_DATA, H("15"))


def test_parse_ack_nack_error():
    assert parse_frame(ACK)[0] == KIND_ACK
    assert parse_frame(NACK)[0] == KIND_NACK
    assert parse_frame(ERROR_FRAME)[0] == KIND_ERROR


BAD_FRAMES = [
    (H("ff0000ff02fed51516"), "no start code"),
    (H("0000"), "no start code"),
    (H("0000ff02"), "truncated"),
    (H("0000ff02fdd5151800"), "bad length checksum"),
    (H("0000ff02fed5151900"), "bad data checksum"),
    (H("0000ff02fed51516ff"), "bad postamble"),
    (H("0000ff02fed515"), "truncated"),
    (H("0000ff02fed41517 00".replace(" ", "")), "unexpected TFI d4"),
    (H("0000ffffff000302"), "extended frames"),
    (H("0000ff0000"), "empty frame"),
]


@pytest.mark.parametrize("frame,reason", BAD_FRAMES)
def test_parse_bad_frames(frame, reason):
    with pytest.raises(FrameError, match=reason):
        parse_frame(frame)
