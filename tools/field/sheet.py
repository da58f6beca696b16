"""A PDF sheet of QR badges to print and cut: A4, 3 x 4 badges a page, each with its QR code
(the client's token, what the caregiver app scans), the name and the token in clear, and cut
marks at every corner of the grid.

Names print in DejaVu (every French letter, found at run time: fonts-dejavu-core), wrapped or
shrunk to stay inside their cell. The CSV comes from anywhere a manager may have saved it: UTF-8
with or without BOM, French Excel's cp1252 with ';', UTF-16 with its BOM; its first row names the
columns (name/nom, token/jeton), and a token column holding names is refused, not printed."""
from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import qrcode
from fpdf import FPDF
from qrcode.constants import ERROR_CORRECT_M

from fleet import tagtokens
from tools.errors import TelegestError

PAGE_W, PAGE_H = 210.0, 297.0  # A4, mm
COLS, ROWS = 3, 4
CELL_W, CELL_H = 60.0, 66.0
QR_MM = 40.0
MARK = 4.0  # cut mark length, mm
TOKEN_CHARS = 33  # DejaVu Sans Mono 8 pt is 1.70 mm a character: 33 fit the 60 mm cell
MARGIN = 2.0  # mm kept free on each side of a cell's text
NAME_TOP, NAME_H = 45.0, 9.0  # the name's band under the QR code, mm from the cell's top
NAME_PT, NAME_MIN_PT = 11.0, 6.0
PT_MM = 25.4 / 72
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu",
             "/usr/share/fonts/TTF", "/usr/local/share/fonts", "~/.local/share/fonts",
             "~/.fonts", "/Library/Fonts", "C:/Windows/Fonts")
FONTS = {"name": "DejaVuSans-Bold.ttf", "token": "DejaVuSansMono.ttf"}
# the header's words, accents and case aside (French Excel exports too)
NAME_HEADERS = {"name", "nom", "client", "nom du client", "beneficiaire", "nom complet"}
TOKEN_HEADERS = {"token", "jeton", "tag", "badge", "jeton du badge", "code du badge"}
_TOKEN = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no space: what a tag holds


@dataclass(frozen=True)
class BadgeLabel:
    name: str
    token: str


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.strip().lower())
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).split())


def decode_csv(raw: bytes, path: str, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used): the one given, else UTF-8 (with or without BOM), UTF-16 with its
    BOM, then cp1252 (what French Excel writes for "CSV (séparateur: point-virgule)")."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except LookupError:
            raise TelegestError(f"unknown encoding {encoding!r}: use utf-8, cp1252, "
                                "latin-1 or utf-16") from None
        except UnicodeDecodeError as e:
            raise TelegestError(f"{path} is not {encoding} (byte {e.start + 1} is "
                                f"{raw[e.start:e.start + 1].hex()}): try --encoding cp1252 or "
                                "utf-8, or save it again as \"CSV UTF-8\"") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise TelegestError(f"{path} starts as UTF-16 but is not: save it again as "
                                "\"CSV UTF-8\"") from None
    if b"\x00" in raw:
        raise TelegestError(f"{path} is not a text CSV (it holds NUL bytes: UTF-16 without a "
                            "BOM, or a spreadsheet file?): save it as \"CSV UTF-8\"")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise TelegestError(f"{path} is neither UTF-8 nor Windows (cp1252) text: save it as "
                        "\"CSV UTF-8\", or give its encoding with --encoding")


def read_labels(path: str | Path, encoding: str | None = None) -> tuple[list[BadgeLabel], str]:
    """The badges of a CSV whose first row names the columns (name and token, or nom and
    jeton, in any order; other columns are ignored), and the encoding it was read with."""
    p = Path(path)
    if p.is_dir():
        raise TelegestError(f"{path} is a folder: give the CSV file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise TelegestError(f"cannot read {path}: {e.strerror}") from e
    text, used = decode_csv(raw, str(path), encoding)
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    # French Excel separates with ';', others with ',' (or a tab)
    delimiter = max((";", ",", "\t"), key=first.count) if first else ","
    # universal newlines: old Mac files end their lines with a lone CR
    reader = csv.reader(io.StringIO(text, newline=None), delimiter=delimiter)
    try:
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except csv.Error as e:
        raise TelegestError(f"{path}, line {reader.line_num}: not a readable CSV ({e}): save "
                            "it again as \"CSV UTF-8\"") from None
    if not rows:
        raise TelegestError(f"{path} is empty: its first row names the columns, name and token")
    head_line, header = rows[0]
    cols = [_plain(c) for c in header]
    name_col = next((i for i, c in enumerate(cols) if c in NAME_HEADERS), None)
    token_col = next((i for i, c in enumerate(cols) if c in TOKEN_HEADERS), None)
    if name_col is None or token_col is None:
        raise TelegestError(
            f"{path}: the first row must name the columns, name and token (or nom and jeton), "
            f"in any order; it reads {delimiter.join(header)!r}")
    out = []
    for n, row in rows[1:]:
        name = row[name_col].strip() if name_col < len(row) else ""
        token = row[token_col].strip() if token_col < len(row) else ""
        if not name or not token:
            raise TelegestError(f"{path}, line {n}: needs a name and a token: {row}")
        problem = token_problem(token)
        if problem:
            swapped = " (are the name and token columns swapped?)" if (
                not token_problem(name)) else ""
            raise TelegestError(f"{path}, line {n}: {token!r} in the token column is not a "
                                f"token: {problem}{swapped}")
        out.append(BadgeLabel(name, token))
    if not out:
        raise TelegestError(f"{path} has its header but no badge under it")
    return out, used


def token_problem(token: str) -> str | None:
    """None if `token` can be a tag's token; else what is wrong, in words."""
    if not _TOKEN.match(token):
        return "a token has 1 to 64 characters, letters, digits and signs, without spaces"
    if tagtokens.looks_signed(token) and tagtokens.parse(token) is None:
        return ("not a whole TG1 token (TG1.<org>.<client>.<serial>.<16 characters>): copy it "
                "again from the console or `telegest fleet badge list`")
    return None


def read_csv(path: str | Path, encoding: str | None = None) -> list[BadgeLabel]:
    return read_labels(path, encoding)[0]


def find_font(filename: str) -> Path:
    """A DejaVu TTF (every French letter: Œ œ É ç ’ « »), from TELEGEST_FONT_DIR or the
    system's fonts (Debian: fonts-dejavu-core)."""
    dirs = [os.environ.get("TELEGEST_FONT_DIR", ""), *FONT_DIRS]
    for d in dirs:
        if d and (Path(d).expanduser() / filename).is_file():
            return Path(d).expanduser() / filename
    raise TelegestError(f"font {filename} not found (needed for French names on the sheet): "
                        "install it (Debian, Ubuntu: `apt install fonts-dejavu-core`) or set "
                        "TELEGEST_FONT_DIR to a folder holding it")


def qr_image(token: str):
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    qr.add_data(token)
    qr.make(fit=True)
    # 8-bit gray, so the PDF holds it Flate-compressed (a checker can read the pixels back)
    return qr.make_image(fill_color="black", back_color="white").get_image().convert("L")


def token_lines(token: str, width: int = TOKEN_CHARS) -> list[str]:
    """The token in clear on at most two lines of `width` characters, cut after a dot when it
    can be (a TG1 token: `TG1.3.12.K7Q2M9XA.` / `PW5RJ2N4ZB6TQE3H`)."""
    if len(token) <= width:
        return [token]
    cut = token.rfind(".", 0, width) + 1
    if cut <= 0 or len(token) - cut > width:
        cut = width
    return [token[:cut], token[cut:]]


def fit_name(pdf: FPDF, name: str, width: float = CELL_W - 2 * MARGIN,
             height: float = NAME_H) -> tuple[float, list[str]]:
    """(font size, lines) for `name` in its band: one line at 11 pt if it fits, else wrapped
    (two lines, three below 8 pt) and shrunk down to 6 pt; a name still too long is cut with an
    ellipsis. Widths are measured with the font the sheet prints with (set before the call)."""
    # words, and hyphenated names cut after their hyphens (Rochefoucauld-|Montmorency)
    words = [(m.group(1), bool(m.group(0)[:1].isspace()) and k > 0) for k, m in
             enumerate(re.finditer(r"\s*(\S+?-(?=\S)|\S+)", name))]
    for tenth in range(int(NAME_PT * 10), int(NAME_MIN_PT * 10) - 1, -5):
        size = tenth / 10
        pdf.set_font_size(size)
        max_lines = min(2 if size > 8 else 3, int(height // (size * PT_MM * 1.2)))
        lines = _wrap(pdf, words, width)
        if lines is not None and len(lines) <= max_lines:
            return size, lines
    # the smallest size, two lines, the second cut to fit
    pdf.set_font_size(NAME_MIN_PT)
    lines, rest = [], name.strip()
    for k in range(2):
        cut = len(rest)
        while pdf.get_string_width(rest[:cut] + ("…" if k and cut < len(rest) else "")) > width:
            cut -= 1
        if k == 0 and cut < len(rest) and " " in rest[:cut]:
            cut = rest.rindex(" ", 0, cut)  # a word boundary when there is one
        lines.append(rest[:cut].strip() + ("…" if k and cut < len(rest) else ""))
        rest = rest[cut:].strip()
        if not rest:
            break
    return NAME_MIN_PT, lines


def _wrap(pdf: FPDF, words: list[tuple[str, bool]], width: float) -> list[str] | None:
    """(word, space before it) into lines no wider than `width`; None if a word is wider."""
    lines: list[str] = []
    for w, space in words:
        if pdf.get_string_width(w) > width:
            return None
        joined = lines[-1] + (" " if space else "") + w if lines else w
        if lines and pdf.get_string_width(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(w)
    return lines


def badge_sheet(labels: list[BadgeLabel], out: str | Path | BinaryIO,
                title: str = "telegest") -> int:
    """Write the PDF to a path or a binary file object; returns its number of pages."""
    if not labels:
        raise TelegestError("no badges to print: give a CSV file or --badge NAME TOKEN")
    for b in labels:  # what the fleet holds prints (an imported tag's text may have spaces)
        if not 1 <= len(b.token) <= 64:
            raise TelegestError(f"token of {b.name!r} must have 1 to 64 characters")
    if not hasattr(out, "write"):
        _check_output(Path(out))
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"{title} badges")
    pdf.add_font("name", "", str(find_font(FONTS["name"])))
    pdf.add_font("token", "", str(find_font(FONTS["token"])))
    x0 = (PAGE_W - COLS * CELL_W) / 2
    y0 = (PAGE_H - ROWS * CELL_H) / 2
    per_page = COLS * ROWS
    for i, b in enumerate(labels):
        if i % per_page == 0:
            pdf.add_page()
            _cut_marks(pdf, x0, y0)
        col, row = i % COLS, (i % per_page) // COLS
        x, y = x0 + col * CELL_W, y0 + row * CELL_H
        pdf.image(qr_image(b.token), x=x + (CELL_W - QR_MM) / 2, y=y + 4, w=QR_MM, h=QR_MM)
        pdf.set_font("name", "", NAME_PT)
        size, lines = fit_name(pdf, b.name)
        line_h = size * PT_MM * 1.2
        top = y + NAME_TOP + (NAME_H - line_h * len(lines)) / 2
        for k, line in enumerate(lines):
            pdf.set_xy(x + MARGIN, top + k * line_h)
            pdf.cell(CELL_W - 2 * MARGIN, line_h, line, align="C")
        pdf.set_font("token", "", 8)
        for k, line in enumerate(token_lines(b.token)):
            pdf.set_xy(x + MARGIN, y + NAME_TOP + NAME_H + 1 + 4.5 * k)
            pdf.cell(CELL_W - 2 * MARGIN, 4.5, line, align="C")
    if hasattr(out, "write"):
        out.write(pdf.output())
        return pdf.pages_count
    try:
        pdf.output(str(out))
    except OSError as e:
        raise TelegestError(f"cannot write {out}: {e.strerror}") from e
    return pdf.pages_count


def _check_output(out: Path) -> None:
    """The PDF may replace an earlier sheet, never another file (the CSV it is made from)."""
    if out.is_dir():
        raise TelegestError(f"{out} is a folder: give the PDF file to write, e.g. {out}/badges.pdf")
    if out.exists():
        with open(out, "rb") as f:
            if f.read(5) != b"%PDF-":
                raise TelegestError(f"{out} exists and is not a PDF: refusing to overwrite it "
                                    "(give another name for the sheet, e.g. badges.pdf)")
    if not out.parent.is_dir():
        raise TelegestError(f"no folder {out.parent} to write {out.name} in")


def _cut_marks(pdf: FPDF, x0: float, y0: float) -> None:
    """Short lines outside the grid, in line with every cut, and small crosses inside."""
    pdf.set_line_width(0.2)
    pdf.set_draw_color(120)
    xs = [x0 + c * CELL_W for c in range(COLS + 1)]
    ys = [y0 + r * CELL_H for r in range(ROWS + 1)]
    for x in xs:
        pdf.line(x, y0 - MARK - 2, x, y0 - 2)
        pdf.line(x, ys[-1] + 2, x, ys[-1] + MARK + 2)
    for y in ys:
        pdf.line(x0 - MARK - 2, y, x0 - 2, y)
        pdf.line(xs[-1] + 2, y, xs[-1] + MARK + 2, y)
    for x in xs[1:-1]:
        for y in ys[1:-1]:
            pdf.line(x - 1.5, y, x + 1.5, y)
            pdf.line(x, y - 1.5, x, y + 1.5)
