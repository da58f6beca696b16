"""`badge write` / `badge read` through the firmware's PN532 driver against the PN532 simulator
(socket://), and `badge sheet`: the PDF's pages, images and the QR pixels of every token."""
from __future__ import annotations

import re

import pytest

from firmware import ndef
from fleet import tagtokens
from tests.helpers import pdf_images_and_text
from tools.field.badge import BadgeError, read_badge, write_badge
from tools.field.sheet import BadgeLabel, badge_sheet, qr_image, read_csv, token_lines

pytestmark = [pytest.mark.virtual_hw, pytest.mark.timeout(60)]
UID = bytes.fromhex("04a1b2c3d4e5f6")


def test_write_then_read_a_badge(pn532_sim):
    pn532_sim.place_tag(UID)
    b = write_badge(pn532_sim.url, "C12-7F3A", uri="https://tg.example/t/C12-7F3A")
    assert b.uid == "04A1B2C3D4E5F6" and b.token == "C12-7F3A"
    # the tag's memory holds the NDEF message the firmware reads
    msg = ndef.find_message(bytes(pn532_sim.pages[16:]))
    assert ndef.decode_text(ndef.decode_message(msg)[0]) == ("fr", "C12-7F3A")
    back = read_badge(pn532_sim.url)
    assert back.records == [{"type": "text", "lang": "fr", "text": "C12-7F3A"},
                            {"type": "uri", "uri": "https://tg.example/t/C12-7F3A"}]


def test_a_signed_token_is_written_whole_or_not_at_all(pn532_sim):
    pn532_sim.place_tag(UID)
    token = tagtokens.mint("ab" * 32, 3, 12)
    assert write_badge(pn532_sim.url, token).token == token
    with pytest.raises(BadgeError, match="not a whole TG1 token.*nothing was written"):
        write_badge(pn532_sim.url, token[:-3])  # a truncated copy-paste
    assert read_badge(pn532_sim.url).token == token


def test_no_tag_says_lay_the_badge_on_the_antenna(pn532_sim):
    with pytest.raises(BadgeError, match="no tag on the reader after 0.3 s"):
        read_badge(pn532_sim.url, timeout=0.3)


def test_a_blank_tag_reads_as_empty(pn532_sim):
    pn532_sim.place_tag(UID)
    assert read_badge(pn532_sim.url).records == []


def test_a_silent_reader_is_explained(pn532_sim):
    pn532_sim.stop_answering()
    with pytest.raises(BadgeError, match="no PN532 answers on .*SEL0 off"):
        read_badge(pn532_sim.url)


def test_a_tag_taken_away_mid_write_is_explained_and_a_rewrite_fixes_it(pn532_sim):
    pn532_sim.place_tag(UID)
    real = pn532_sim._exchange
    calls = []

    def leave_after_two_pages(cmd):
        calls.append(cmd[0])
        if calls.count(0xA2) == 2:
            pn532_sim.uid = None  # the badge moved away
        return real(cmd)

    pn532_sim._exchange = leave_after_two_pages
    with pytest.raises(BadgeError, match="the badge probably moved"):
        write_badge(pn532_sim.url, "C12-7F3A" * 4)
    pn532_sim._exchange = real
    pn532_sim.place_tag(UID, bytes(pn532_sim.pages))  # back on the reader, half-written
    assert write_badge(pn532_sim.url, "C12-7F3A" * 4).token == "C12-7F3A" * 4
    assert read_badge(pn532_sim.url).token == "C12-7F3A" * 4


# -- the PDF sheet --------------------------------------------------------------------------------
def test_the_sheet_has_the_pages_and_one_qr_per_token(tmp_path):
    labels = [BadgeLabel(f"Hélène Martin {i}", f"C{i:02d}-7F3A") for i in range(14)]
    out = tmp_path / "badges.pdf"
    assert badge_sheet(labels, out) == 2
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type /Page\b", pdf)) == 2
    assert b"/MediaBox [0 0 595.28 841.89]" in pdf  # A4
    images, text = pdf_images_and_text(pdf)
    assert len(images) == 14
    expected = {qr_image(b.token).tobytes() for b in labels}
    assert set(images) == expected  # each token's QR code, pixel for pixel
    for b in labels:
        assert f"({b.token})".encode() in text
    assert "Hélène Martin 3".encode("latin-1") in text
    assert text.count(b" l") >= 2 * (2 * 4 + 2 * 5 + 2 * 2 * 3)  # cut marks on both pages


def test_long_tokens_are_printed_whole_inside_their_cell(tmp_path):
    """A TG1 token is cut after a dot onto two lines of Courier 8 that fit the 60 mm cell."""
    signed = tagtokens.mint("ab" * 32, 9_999_999_999, 9_999_999_999)
    labels = [BadgeLabel("Mme Durand", signed), BadgeLabel("M. Petit", "X" * 64)]
    for b in labels:
        lines = token_lines(b.token)
        assert "".join(lines) == b.token and len(lines) == 2
        assert all(len(line) * 0.6 * 8 * 25.4 / 72 <= 56 for line in lines)  # mm, margins 2
    assert token_lines(signed)[0].endswith(".")
    out = tmp_path / "long.pdf"
    badge_sheet(labels, out)
    images, text = pdf_images_and_text(out.read_bytes())
    assert set(images) == {qr_image(b.token).tobytes() for b in labels}
    for b in labels:
        for line in token_lines(b.token):
            assert f"({line})".encode() in text


def test_the_csv_takes_a_header_and_reports_bad_rows(tmp_path):
    good = tmp_path / "b.csv"
    good.write_text("name,token\nMme Durand,C1-AAAA\n\nM. Petit,C2-BBBB\n", encoding="utf-8")
    assert read_csv(good) == [BadgeLabel("Mme Durand", "C1-AAAA"),
                              BadgeLabel("M. Petit", "C2-BBBB")]
    bad = tmp_path / "bad.csv"
    bad.write_text("Mme Durand\n")
    with pytest.raises(Exception, match="row 1 needs two columns"):
        read_csv(bad)
