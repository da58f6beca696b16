"""Bill of materials of one board: rows with totals, as CSV for buyers, as markdown for docs."""
import csv
import io

FIELDS = ("part", "qty", "unit_eur", "total_eur", "notes")


def bom_rows(board: dict) -> list[dict]:
    """One row per parts entry, costs in euros rounded to the cent."""
    return [{"part": p["part"], "qty": p["qty"], "unit_eur": round(p["unit_eur"], 2),
             "total_eur": round(p["qty"] * p["unit_eur"], 2), "notes": p["description"]}
            for p in board["parts"]]


def bom_total(board: dict) -> float:
    return round(sum(r["total_eur"] for r in bom_rows(board)), 2)


def bom_csv(board: dict) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FIELDS)
    for r in bom_rows(board):
        w.writerow([r["part"], r["qty"], "%.2f" % r["unit_eur"], "%.2f" % r["total_eur"],
                    r["notes"]])
    w.writerow(["TOTAL", "", "", "%.2f" % bom_total(board), "approximate, before shipping"])
    return out.getvalue()


def bom_markdown(board: dict) -> str:
    lines = ["| part | qty | unit (EUR) | total (EUR) | notes |", "|---|---:|---:|---:|---|"]
    for r in bom_rows(board):
        lines.append("| %s | %d | %.2f | %.2f | %s |" % (
            r["part"], r["qty"], r["unit_eur"], r["total_eur"], r["notes"]))
    lines.append("| **total** | | | **%.2f** | approximate |" % bom_total(board))
    return "\n".join(lines) + "\n"
