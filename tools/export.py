"""`telegest export esppadom|payroll|billing`: the office's exports from the database directly.

The same functions as /api/v1/exports (fleet.exports): everything that would make the file
wrong is checked first and reported on one line; the file is then streamed into a temporary
file beside `--out` and renamed at the end, so a failed export never leaves half a file.
`--out -` writes to standard output."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from tools.errors import TelegestError

DEFAULT_DB = os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")


def _day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise TelegestError(f"{what} {text!r}: give a date as YYYY-MM-DD") from None


def _check_out(out: str) -> None:
    if out == "-":
        return
    target = Path(out)
    if target.is_dir():
        raise TelegestError(f"--out {out}: is a folder; give a file name")
    if not target.parent.exists():
        raise TelegestError(f"--out {out}: folder {target.parent} does not exist")


def _write(chunks, out: str) -> int:
    if out == "-":
        n = 0
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            n += len(chunk)
        sys.stdout.buffer.flush()
        return n
    target = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                n += len(chunk)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return n


def run_export(args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from fleet import audit
    from fleet.db import make_engine, prepare, session_factory
    from fleet.exports import esppadom, tabular
    from fleet.exports.rows import ExportError

    first, last = _day(args.first, "--from"), _day(args.to, "--to")
    _check_out(args.out)
    try:
        prepare(args.db)
        engine = make_engine(args.db)
    except (SQLAlchemyError, ValueError) as e:
        raise TelegestError(f"--db {args.db}: {str(e).splitlines()[0]}") from None
    try:
        with session_factory(engine)() as session:
            try:
                if args.kind == "esppadom":
                    export = esppadom.prepare(session, args.org, first, last, args.funder)
                else:
                    export = tabular.prepare(session, args.org, args.kind, first, last,
                                             args.dialect, args.funder)
            except ExportError as e:
                raise TelegestError(e.message) from None
            audit.record(session, "cli", "export", f"organisation:{args.org}",
                         detail={"export": args.kind, "from": first.isoformat(),
                                 "to": last.isoformat(), "funder": args.funder,
                                 "out": args.out})
            session.commit()
            n = _write(export.chunks(), args.out)
    finally:
        engine.dispose()
    if args.out != "-":
        print(f"{args.out}: {n} bytes ({export.filename} by the naming convention)",
              file=sys.stderr)
    return 0


def add_commands(sub, command: Callable) -> None:
    """`telegest export ...` in the command table of tools/cli.py."""
    export = sub.add_parser("export", help="the office's exports: ESPPADOM DELIVERY for the "
                            "funders, payroll and billing CSV").add_subparsers(
        dest="cmd", required=True)

    def common(c: argparse.ArgumentParser) -> None:
        c.add_argument("--db", default=DEFAULT_DB)
        c.add_argument("--org", type=int, required=True, help="the organisation's id")
        c.add_argument("--from", dest="first", required=True,
                       help="first day, YYYY-MM-DD, in the agency's time zone (included)")
        c.add_argument("--to", required=True, help="last day, YYYY-MM-DD (included)")
        c.add_argument("--out", required=True, help="the file to write ('-': standard output)")

    e = command(export, "esppadom", run_export,
                "ESPPADOM DELIVERY 1.4 XML: one CrossIndustryDespatchAdvice per visit")
    common(e)
    e.add_argument("--funder", type=int, help="only the visits this funder pays for (its id)")
    e.set_defaults(kind="esppadom", dialect="csv")
    p = command(export, "payroll", run_export,
                "payroll CSV: raw and retained hours per caregiver per day and ISO week, km, "
                "expenses")
    common(p)
    p.add_argument("--dialect", choices=["csv", "excel-fr"], default="csv",
                   help="excel-fr: ';' between cells and decimal commas")
    p.set_defaults(kind="payroll", funder=None)
    b = command(export, "billing", run_export,
                "billing CSV: raw and retained hours per client and funding plan")
    common(b)
    b.add_argument("--dialect", choices=["csv", "excel-fr"], default="csv",
                   help="excel-fr: ';' between cells and decimal commas")
    b.add_argument("--funder", type=int, help="only this funder's plans (its id)")
    b.set_defaults(kind="billing")
