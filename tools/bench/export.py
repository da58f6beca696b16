"""`telegest bench export`: an agency's year of visits through each export, streamed to a file.

Seeds a temporary SQLite database with `--visits` visits (bulk inserts: 300 clients with a
funding plan each, 60 caregivers, two clock events and a record per visit, every correction
code among them), then runs each export in its own process, as `telegest export` would, and
reads that process's peak RSS (VmHWM, its own high-water mark) and the seconds the export took
(start of the query to the last byte written). Prints one JSON object: visits, esppadom_s,
payroll_s, billing_s, peak_rss_mb (the highest of the three), each export's own peak and file
size, the RSS before the export began, seed_s.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from tools.errors import TelegestError

FIRST, LAST = date(2025, 12, 1), date(2026, 11, 30)
CODES = (None,) * 12 + ("COD", "COA", "CO2", "CRE", "MDT", "SUP", "HOR")


def seed(db_url: str, visits: int) -> int:
    """The bench agency; returns its id."""
    import sqlalchemy as sa

    from fleet.db import make_engine, migrate
    from fleet.models import (Caregiver, Client, ClockEvent, Device, Funder, FundingPlan,
                              Organisation, Service, Visit, VisitRecord)

    migrate(db_url)
    engine = make_engine(db_url)
    n_clients, n_carers = 300, 60
    with engine.begin() as c:
        org = c.execute(sa.insert(Organisation).values(
            name="bench export agency", timezone="Europe/Paris", siret="12345678900011",
            esppadom_id="SAAD-BENCH").returning(Organisation.id)).scalar_one()
        c.execute(sa.insert(Client), [
            {"id": i + 1, "organisation_id": org, "name": f"Usager {i:03d}",
             "address": f"{i} rue des Lilas", "postcode": "75011", "city": "Paris",
             "birth_date": date(1930 + i % 20, 1 + i % 12, 1 + i % 28), "active": True}
            for i in range(n_clients)])
        c.execute(sa.insert(Caregiver), [
            {"id": i + 1, "organisation_id": org, "name": f"Intervenant {i:02d}",
             "active": True} for i in range(n_carers)])
        c.execute(sa.insert(Service), [{"id": 1, "organisation_id": org,
                                        "name": "Aide au lever", "code": "LEV"},
                                       {"id": 2, "organisation_id": org, "name": "Repas",
                                        "code": "REP"}])
        c.execute(sa.insert(Funder), [
            {"id": 1, "organisation_id": org, "kind": "APA", "name": "CD 75 APA",
             "identifier": "CD75-APA", "active": True},
            {"id": 2, "organisation_id": org, "kind": "PCH", "name": "CD 75 PCH",
             "identifier": "CD75-PCH", "active": True}])
        c.execute(sa.insert(FundingPlan), [
            {"organisation_id": org, "client_id": i + 1, "funder_id": 1 + i % 2,
             "reference": f"PA-{i:05d}", "beneficiary_ref": f"B{i:05d}",
             "valid_from": date(2025, 1, 1)} for i in range(n_clients)])
        c.execute(sa.insert(Device), [{"id": 1, "ident": "bench-r1", "kind": "reader",
                                       "organisation_id": org, "status": "active",
                                       "acked_seq": 0, "config_version": 0}])
        days = (LAST - FIRST).days + 1
        per_day = -(-visits // days)
        t0 = datetime.combine(FIRST, datetime.min.time(), timezone.utc).replace(hour=6)
        batch_v, batch_e, batch_r = [], [], []
        for i in range(visits):
            start = t0 + timedelta(days=i // per_day, minutes=(i % per_day) * 7)
            end = start + timedelta(hours=1)
            code = CODES[i % len(CODES)]
            arrival = start + timedelta(minutes=i % 9) if code not in ("COA", "CO2",
                                                                        "CRE") else None
            departure = end + timedelta(minutes=i % 11) if code not in ("COD", "CO2",
                                                                         "CRE") else None
            batch_v.append({"id": i + 1, "organisation_id": org,
                            "client_id": 1 + i % n_clients, "caregiver_id": 1 + i % n_carers,
                            "service_id": 1 + i % 2, "planned_start": start,
                            "planned_end": end, "status": "done"})
            ev_in = ev_out = None
            for when, d, k in ((arrival, "in", 0), (departure, "out", 1)):
                if when is not None:
                    eid = 2 * i + k + 1
                    batch_e.append({"id": eid, "device_id": 1, "seq": eid, "dir": d,
                                    "badge_uid": "04A1B2C3D4E5F6",
                                    "method": ("nfc", "qr", "manual")[i % 3],
                                    "device_ts": when, "received_at": when,
                                    "time_quality": "synced", "clock_offset_s": 0, "raw": {},
                                    "visit_id": i + 1, "match_status": "matched"})
                    if d == "in":
                        ev_in = eid
                    else:
                        ev_out = eid
            keep = code not in ("SUP", "HOR")
            batch_r.append({"visit_id": i + 1, "actual_start": arrival, "actual_end": departure,
                            "retained_start": start if keep else None,
                            "retained_end": end if keep else None,
                            "start_event_id": ev_in, "end_event_id": ev_out, "status": "done",
                            "correction_code": code, "km": i % 13,
                            "expenses_cents": (i % 5) * 100})
            if len(batch_v) >= 5000 or i == visits - 1:
                c.execute(sa.insert(Visit), batch_v)
                if batch_e:
                    c.execute(sa.insert(ClockEvent), batch_e)
                c.execute(sa.insert(VisitRecord), batch_r)
                batch_v, batch_e, batch_r = [], [], []
    engine.dispose()
    return org


def peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across
    execve, so a child would report the parent's size at the fork (the seeding, here)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(argv: list[str]) -> None:
    """In the measured process: one export to a file; prints its seconds and peak RSS."""
    kind, db_url, org, out = argv[0], argv[1], int(argv[2]), argv[3]
    from fleet.db import make_engine, session_factory
    from fleet.exports import esppadom, tabular

    engine = make_engine(db_url)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    with session_factory(engine)() as session, open(out, "wb") as f:
        export = (esppadom.prepare(session, org, FIRST, LAST) if kind == "esppadom"
                  else tabular.prepare(session, org, kind, FIRST, LAST))
        size = 0
        for chunk in export.chunks():
            f.write(chunk)
            size += len(chunk)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1),
                      "rss_before_mb": round(rss_before, 1), "bytes": size}))


def _measure(kind: str, db_url: str, org: int, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "tools.bench.export", kind, db_url, str(org),
                        str(out)], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    if r.returncode != 0:
        raise TelegestError(f"the {kind} export failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout)


def run_bench_export(args) -> int:
    if args.visits < 1:
        raise TelegestError("--visits: at least 1")
    with tempfile.TemporaryDirectory(prefix="tg-bench-export-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        org = seed(db_url, args.visits)
        seed_s = time.perf_counter() - t0
        got = {k: _measure(k, db_url, org, Path(tmp) / f"{k}.out")
               for k in ("esppadom", "payroll", "billing")}
    result = {"visits": args.visits,
              "esppadom_s": got["esppadom"]["seconds"], "payroll_s": got["payroll"]["seconds"],
              "billing_s": got["billing"]["seconds"],
              "peak_rss_mb": max(g["peak_rss_mb"] for g in got.values()),
              **{f"{k}_peak_rss_mb": g["peak_rss_mb"] for k, g in got.items()},
              "rss_before_export_mb": max(g["rss_before_mb"] for g in got.values()),
              **{f"{k}_mb": round(g["bytes"] / 1e6, 2) for k, g in got.items()},
              "seed_s": round(seed_s, 1)}
    if not args.json:
        print(f"{args.visits} visits: ESPPADOM {result['esppadom_s']} s, payroll "
              f"{result['payroll_s']} s, billing {result['billing_s']} s, peak RSS "
              f"{result['peak_rss_mb']} MB", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    child(sys.argv[1:])
