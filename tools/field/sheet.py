"""A PDF sheet of QR badges to print and cut: A4, 3 x 4 badges a page, each with its QR code
(the client's token, what the caregiver app scans), the name and the token in clear, and cut
marks at every corner of the grid."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import qrcode
from fpdf import FPDF
from qrcode.constants import ERROR_CORRECT_M

from tools.errors import TelegestError

PAGE_W, PAGE_H = 210.0, 297.0  # A4, mm
COLS, ROWS = 3, 4
CELL_W, CELL_H = 60.0, 66.0
QR_MM = 40.0
MARK = 4.0  # cut mark length, mm
TOKEN_CHARS = 33  # Courier 8 pt is 1.69 mm a character: 33 fit the 60 mm cell with margins


@dataclass(frozen=True)
class BadgeLabel:
    name: str
    token: str


def read_csv(path: str | Path) -> list[BadgeLabel]:
    """Rows of `name,token` (a header row naming them is allowed)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise TelegestError(f"cannot read {path}: {e.strerror}") from e
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["name", "token"]:
        rows = rows[1:]
    out = []
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[1].strip():
            raise TelegestError(f"{path}: row {n} needs two columns, name and token: {row}")
        out.append(BadgeLabel(row[0].strip(), row[1].strip()))
    return out


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


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")  # the PDF core fonts' charset


def badge_sheet(labels: list[BadgeLabel], out: str | Path | BinaryIO,
                title: str = "telegest") -> int:
    """Write the PDF to a path or a binary file object; returns its number of pages."""
    if not labels:
        raise TelegestError("no badges to print: give a CSV file or --badge NAME TOKEN")
    for b in labels:
        if not 1 <= len(b.token) <= 64:
            raise TelegestError(f"token of {b.name!r} must have 1 to 64 characters")
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"{title} badges")
    x0 = (PAGE_W - COLS * CELL_W) / 2
    y0 = (PAGE_H - ROWS * CELL_H) / 2
    per_page = COLS * ROWS
    for i, b in enumerate(labels):
        if i % per_page == 0:
            pdf.add_page()
            _cut_marks(pdf, x0, y0)
        col, row = i % COLS, (i % per_page) // COLS
        x, y = x0 + col * CELL_W, y0 + row * CELL_H
        pdf.image(qr_image(b.token), x=x + (CELL_W - QR_MM) / 2, y=y + 5, w=QR_MM, h=QR_MM)
        pdf.set_xy(x, y + 47)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(CELL_W, 6, _latin1(b.name), align="C")
        pdf.set_font("Courier", "", 8)
        for k, line in enumerate(token_lines(b.token)):
            pdf.set_xy(x, y + 54 + 4.5 * k)
            pdf.cell(CELL_W, 4.5, _latin1(line), align="C")
    if hasattr(out, "write"):
        out.write(pdf.output())
        return pdf.pages_count
    try:
        pdf.output(str(out))
    except OSError as e:
        raise TelegestError(f"cannot write {out}: {e.strerror}") from e
    return pdf.pages_count


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
