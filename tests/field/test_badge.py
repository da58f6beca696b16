"""`badge write` / `badge read` through the firmware's PN532 driver against the PN532 simulator
(socket://), and `badge sheet`: the PDF's pages, images and the QR pixels of every token."""
from __future__ import annotations

import re

import pytest

from firmware import ndef
from fleet import tagtokens
from tests.helpers import pdf_images_and_text, pdf_text_runs
from tools.cli import main
from tools.errors import TelegestError
from tools.field.badge import BadgeError, check_with_db, read_badge, write_badge
from tools.field.sheet import (CELL_H, CELL_W, COLS, MARGIN, NAME_H, NAME_TOP, PAGE_H, PAGE_W,
                               ROWS, BadgeLabel, badge_sheet, qr_image, read_csv, read_labels,
                               token_lines)

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
    shown = [r[4] for r in pdf_text_runs(pdf)]
    for b in labels:
        assert b.token in shown and b.name in shown
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
    images, _ = pdf_images_and_text(out.read_bytes())
    assert set(images) == {qr_image(b.token).tobytes() for b in labels}
    shown = [r[4] for r in pdf_text_runs(out.read_bytes())]
    for b in labels:
        for line in token_lines(b.token):
            assert line in shown


def test_the_csv_takes_a_header_and_reports_bad_rows(tmp_path):
    good = tmp_path / "b.csv"
    good.write_text("name,token\nMme Durand,C1-AAAA\n\nM. Petit,C2-BBBB\n", encoding="utf-8")
    assert read_csv(good) == [BadgeLabel("Mme Durand", "C1-AAAA"),
                              BadgeLabel("M. Petit", "C2-BBBB")]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,token\nMme Durand\n")
    with pytest.raises(TelegestError, match="line 2: needs a name and a token"):
        read_csv(bad)


# -- the CSV as managers save it ------------------------------------------------------------------
ROWS_FR = [("Hélène Œuvray", "C1-AAAA"), ("François Lefèvre-Dupré", "C2-BBBB")]


@pytest.mark.parametrize("encoding,delimiter,end", [
    ("utf-8", ",", "\r\n"), ("utf-8-sig", ",", "\n"), ("cp1252", ";", "\r\n"),
    ("cp1252", ";", "\r"),  # an old Mac Excel: lone CRs
    ("utf-16", ";", "\r\n"), ("utf-16", "\t", "\n")])
def test_the_csv_is_read_in_the_encodings_managers_save(tmp_path, encoding, delimiter, end):
    f = tmp_path / "badges.csv"
    text = f"nom{delimiter}jeton{end}" + "".join(f"{n}{delimiter}{t}{end}" for n, t in ROWS_FR)
    f.write_bytes(text.encode(encoding))
    labels, used = read_labels(f)
    assert labels == [BadgeLabel(n, t) for n, t in ROWS_FR]
    assert used == {"utf-8": "utf-8-sig"}.get(encoding, encoding)


def test_the_encoding_can_be_given_and_undecodable_files_are_refused(tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes("name,token\nHélène,C1-AAAA\n".encode("latin-1"))
    assert read_labels(f, "latin-1")[0] == [BadgeLabel("Hélène", "C1-AAAA")]
    with pytest.raises(TelegestError, match="is not utf-8 .*--encoding cp1252"):
        read_labels(f, "utf-8")
    with pytest.raises(TelegestError, match="unknown encoding 'nope'"):
        read_labels(f, "nope")
    nul = tmp_path / "nobom16.csv"
    nul.write_bytes("name,token\nA,B\n".encode("utf-16-le"))  # UTF-16 without its BOM
    with pytest.raises(TelegestError, match="NUL bytes.*CSV UTF-8"):
        read_labels(nul)
    undefined = tmp_path / "bin.csv"
    undefined.write_bytes(b"name,token\n\x81\x8d,C1\n")  # neither UTF-8 nor cp1252
    with pytest.raises(TelegestError, match="neither UTF-8 nor Windows"):
        read_labels(undefined)
    with pytest.raises(TelegestError, match="is a folder"):
        read_labels(tmp_path)


def test_headers_are_checked_and_columns_found_by_name(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("jeton,id,Nom du client\nC1-AAAA,17,Mme Durand\n")  # any order, extra column
    assert read_csv(f) == [BadgeLabel("Mme Durand", "C1-AAAA")]
    f.write_text("Token,Name\nC1-AAAA,Mme Durand\n")  # swapped, and named: read right
    assert read_csv(f) == [BadgeLabel("Mme Durand", "C1-AAAA")]
    f.write_text("Mme Durand,C1-AAAA\n")  # no header: not printed as if it were a badge
    with pytest.raises(TelegestError, match="first row must name the columns.*nom and jeton"):
        read_csv(f)
    f.write_text("client,code\nMme Durand,C1\n")
    with pytest.raises(TelegestError, match="first row must name the columns"):
        read_csv(f)
    f.write_text("nom,jeton\nC1-AAAA,Mme Durand\n")  # the data swapped under the header
    with pytest.raises(TelegestError, match="line 2: 'Mme Durand' in the token column is not a "
                                            "token.*swapped"):
        read_csv(f)
    f.write_text("name,token\nMme Durand,TG1.3.12.ABCDEFGH.SHORT\n")
    with pytest.raises(TelegestError, match="not a whole TG1 token"):
        read_csv(f)
    f.write_text("name,token\n")
    with pytest.raises(TelegestError, match="no badge under it"):
        read_csv(f)


# -- the printed sheet -----------------------------------------------------------------------------
def _cells(pdf: bytes):
    """Each text run with the cell it starts in: (run, cell left x, cell top y) in pt."""
    mm = 72 / 25.4
    x0, y0 = (PAGE_W - COLS * CELL_W) / 2, (PAGE_H - ROWS * CELL_H) / 2
    for run in pdf_text_runs(pdf):
        col = int((run[2] / mm - x0) // CELL_W)
        row = int(((PAGE_H - run[3] / mm) - y0) // CELL_H)
        yield run, (x0 + col * CELL_W) * mm, (y0 + row * CELL_H) * mm


def test_names_fit_their_cell_wrapped_or_shrunk(tmp_path):
    from fpdf import FPDF

    from tools.field.sheet import FONTS, find_font

    names = ["Mme Durand",
             "Marie-Françoise de La Rochefoucauld-Montmorency épouse Castelbajac",
             "Jean-Baptiste Œuvray-Lefèvre-Dupré-Saint-Gilles-Croix-de-Vie",
             "W" * 90,
             "Hélène " * 30]
    labels = [BadgeLabel(n, f"C{i}-AAAA") for i, n in enumerate(names)]
    out = tmp_path / "names.pdf"
    badge_sheet(labels, out)
    measure = FPDF(unit="pt")
    measure.add_font("name", "", str(find_font(FONTS["name"])))
    measure.add_font("token", "", str(find_font(FONTS["token"])))
    mm = 72 / 25.4
    name_runs: dict[int, list] = {}
    for run, cell_x, cell_y in _cells(out.read_bytes()):
        font, size, x, y, text = run
        measure.set_font("name" if "Bold" in font else "token", "", size)
        width = measure.get_string_width(text)  # pt
        # inside the cell, margins kept, on the page
        assert cell_x + MARGIN * mm - 0.01 <= x and x + width <= cell_x + (CELL_W - MARGIN) * mm
        assert 0 <= x and x + width <= PAGE_W * mm
        if "Bold" in font:
            top = PAGE_H * mm - y  # baseline, from the top of the page
            assert cell_y + NAME_TOP * mm <= top <= cell_y + (NAME_TOP + NAME_H) * mm
            name_runs.setdefault(round(cell_x + cell_y * 1000), []).append((size, text))
    lines = list(name_runs.values())
    assert len(lines) == 5 and all(len(v) <= 3 for v in lines)
    assert lines[0] == [(11.0, "Mme Durand")]  # a short name as it was
    assert len(lines[1]) > 1 and "".join(t for _, t in lines[1]).replace(" ", "") == \
        names[1].replace(" ", "")  # wrapped, whole
    assert all(size < 11 for v in lines[2:] for size, _ in v)  # shrunk
    assert lines[3][-1][1].endswith("…") and lines[4][-1][1].endswith("…")  # cut, said so


def test_french_letters_are_printed_not_question_marks(tmp_path):
    name = "Œdipe Cœur d’Éloïse Françoise « Ça » Ÿvette"
    out = tmp_path / "fr.pdf"
    badge_sheet([BadgeLabel(name, "C1-AAAA")], out)
    shown = " ".join(r[4] for r in pdf_text_runs(out.read_bytes()))
    for letter in "ŒœÉçÇ’«»Ÿï":
        assert letter in shown
    assert "?" not in shown and name.split()[0] in shown


def test_the_sheet_never_overwrites_its_csv_or_another_file(tmp_path, capsys):
    csv = tmp_path / "clients.csv"
    csv.write_text("nom;jeton\nHélène Durand;C1-AAAA\n", encoding="cp1252")
    before = csv.read_bytes()
    assert main(["badge", "sheet", str(csv), "--csv", str(csv)]) == 2
    assert "would overwrite the CSV" in capsys.readouterr().err
    assert main(["badge", "sheet", str(tmp_path / "." / "clients.csv"), "--csv",
                 str(csv)]) == 2
    capsys.readouterr()
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    assert main(["badge", "sheet", str(other), "--csv", str(csv)]) == 2
    assert "not a PDF: refusing to overwrite" in capsys.readouterr().err
    assert csv.read_bytes() == before and other.read_text() == "keep me"
    assert main(["badge", "sheet", str(tmp_path), "--csv", str(csv)]) == 2
    assert "is a folder" in capsys.readouterr().err
    pdf = tmp_path / "badges.pdf"
    assert main(["badge", "sheet", str(pdf), "--csv", str(csv)]) == 0
    err = capsys.readouterr().err
    assert "1 badges read (cp1252)" in err
    assert main(["badge", "sheet", str(pdf), "--csv", str(csv)]) == 0  # an old sheet: replaced


# -- badge write: the token checked, another token on the tag kept unless asked -------------------
def test_a_malformed_signature_is_refused_before_the_tag_is_touched(pn532_sim, capsys):
    pn532_sim.place_tag(UID)
    good = tagtokens.mint("ab" * 32, 3, 12)
    for bad in (good[:-1] + "1",  # '1' is not base32
                good[:-16] + good[-16:].lower(), good + "A"):
        assert main(["badge", "write", pn532_sim.url, bad]) == 2
        assert "not a whole TG1 token" in capsys.readouterr().err
    assert read_badge(pn532_sim.url).records == []  # nothing written


def test_the_signature_is_verified_with_the_fleet_database(demo, pn532_sim, capsys):
    db, info = demo
    token = next(iter(info["tags"].values()))
    check_with_db(db, token)  # the demo's own tag
    t = tagtokens.parse(token)
    forged = tagtokens.mint("cd" * 32, t.organisation_id, t.client_id)  # another secret
    with pytest.raises(BadgeError, match="signature does not match.*nothing was written"):
        check_with_db(db, forged)
    with pytest.raises(BadgeError, match="organisation 999.*unknown"):
        check_with_db(db, tagtokens.mint("cd" * 32, 999, 1))
    with pytest.raises(BadgeError, match="issued no client tag"):
        check_with_db(db, "C1-AAAA")
    pn532_sim.place_tag(UID)
    assert main(["badge", "write", pn532_sim.url, forged, "--db", db]) == 2
    assert "signature does not match" in capsys.readouterr().err
    assert read_badge(pn532_sim.url).records == []
    assert main(["badge", "write", pn532_sim.url, token, "--db", db]) == 0
    assert "signature verified" in capsys.readouterr().out
    assert read_badge(pn532_sim.url).token == token


def test_the_token_is_checked_with_the_fleet_api(demo, api_server, pn532_sim, capsys):
    from tests.field.test_provision import technician_key

    db, info = demo
    token = next(iter(info["tags"].values()))
    key = technician_key(db)
    pn532_sim.place_tag(UID)
    t = tagtokens.parse(token)
    forged = tagtokens.mint("cd" * 32, t.organisation_id, t.client_id)
    assert main(["badge", "write", pn532_sim.url, forged, "--fleet", api_server,
                 "--api-key", key]) == 2
    assert "issued no client tag" in capsys.readouterr().err
    assert main(["badge", "write", pn532_sim.url, token, "--fleet", api_server,
                 "--api-key", "tg_wrong"]) == 2
    assert "refused the API key" in capsys.readouterr().err
    assert read_badge(pn532_sim.url).records == []
    assert main(["badge", "write", pn532_sim.url, token, "--fleet", api_server,
                 "--api-key", key]) == 0
    assert "issued by the fleet and active" in capsys.readouterr().out


def test_another_token_on_the_tag_is_replaced_only_when_asked(pn532_sim, monkeypatch, capsys):
    pn532_sim.place_tag(UID)
    assert main(["badge", "write", pn532_sim.url, "C1-AAAA"]) == 0
    assert main(["badge", "write", pn532_sim.url, "C1-AAAA"]) == 0  # the same: no question
    capsys.readouterr()
    # no terminal (a script): refused without --force
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["badge", "write", pn532_sim.url, "C2-BBBB"]) == 2
    assert "already holds another token 'C1-AAAA'" in capsys.readouterr().err
    assert read_badge(pn532_sim.url).token == "C1-AAAA"
    # a technician at the terminal says no, then yes
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked = []
    answers = iter(["n", "oui"])
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or next(answers))
    assert main(["badge", "write", pn532_sim.url, "C2-BBBB"]) == 2
    assert read_badge(pn532_sim.url).token == "C1-AAAA"
    assert main(["badge", "write", pn532_sim.url, "C2-BBBB"]) == 0
    assert read_badge(pn532_sim.url).token == "C2-BBBB"
    assert all("another token 'C1-AAAA'" in p for p in asked) and len(asked) == 2
    # --force: no question
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    capsys.readouterr()
    assert main(["badge", "write", pn532_sim.url, "C3-CCCC", "--force"]) == 0
    assert "replacing token 'C2-BBBB' (--force)" in capsys.readouterr().err
    assert read_badge(pn532_sim.url).token == "C3-CCCC"
