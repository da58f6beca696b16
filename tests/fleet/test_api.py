"""The REST API: auth, CRUD, filters, pagination, CSV planning import."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet.api import create_app
from fleet.config import Settings
from fleet.keys import create_api_key
from fleet.models import AuditLog


@pytest.fixture
def app(database_url):
    return create_app(Settings(database_url=database_url))


@pytest.fixture
def keys(app):
    with app.state.sessions() as s:
        out = {role: create_api_key(s, role, f"test {role}")
               for role in ("admin", "manager", "technician")}
        s.commit()
    return out


@pytest.fixture
def api(app, keys):
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {keys['admin']}"
    return client


@pytest.fixture
def org(api):
    r = api.post("/api/v1/organisations", json={"name": "Val d'Aide"})
    assert r.status_code == 201, r.text
    org = r.json()
    c = api.post("/api/v1/clients", json={"organisation_id": org["id"], "name": "Mme Durand"})
    g = api.post("/api/v1/caregivers", json={"organisation_id": org["id"],
                                             "name": "Alice Martin", "phone": "0601"})
    s = api.post("/api/v1/services", json={"organisation_id": org["id"], "name": "Toilette",
                                           "code": "TOIL", "tasks": ["Toilette", "Habillage"]})
    return {**org, "client": c.json(), "caregiver": g.json(), "service": s.json()}


def test_no_key_is_401(app):
    client = TestClient(app)
    assert client.get("/api/v1/clients").status_code == 401
    r = client.get("/api/v1/clients", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["detail"].startswith("missing, unknown")
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_revoked_key_is_401(app, keys, api):
    from fleet.models import ApiKey

    with app.state.sessions() as s:
        for k in s.query(ApiKey):
            k.revoked = True
        s.commit()
    assert api.get("/api/v1/clients").status_code == 401


def test_roles_are_403(api, keys, org):
    tech = {"Authorization": f"Bearer {keys['technician']}"}
    manager = {"Authorization": f"Bearer {keys['manager']}"}
    assert api.post("/api/v1/clients", headers=tech,
                    json={"organisation_id": org["id"], "name": "X"}).status_code == 403
    assert api.post("/api/v1/organisations", headers=manager,
                    json={"name": "Other"}).status_code == 403
    assert api.get("/api/v1/clients", headers=tech).status_code == 200


def test_org_scoped_key_sees_only_its_organisation(app, api, org):
    other = api.post("/api/v1/organisations", json={"name": "Autre"}).json()
    api.post("/api/v1/clients", json={"organisation_id": other["id"], "name": "Hidden"})
    with app.state.sessions() as s:
        scoped = create_api_key(s, "manager", "scoped", organisation_id=org["id"])
        s.commit()
    h = {"Authorization": f"Bearer {scoped}"}
    names = [c["name"] for c in api.get("/api/v1/clients", headers=h).json()["items"]]
    assert names == ["Mme Durand"]
    r = api.post("/api/v1/clients", headers=h, json={"organisation_id": other["id"], "name": "Y"})
    assert r.status_code == 403
    r = api.post("/api/v1/clients", headers=h, json={"name": "Implicit"})
    assert r.status_code == 201 and r.json()["organisation_id"] == org["id"]
    hidden = api.get("/api/v1/clients", params={"q": "Hidden"}).json()["items"][0]
    assert api.get(f"/api/v1/clients/{hidden['id']}", headers=h).status_code == 404


def test_directory_crud(api, org):
    cid = org["client"]["id"]
    r = api.patch(f"/api/v1/clients/{cid}", json={"address": "1 rue des Lilas"})
    assert r.status_code == 200 and r.json()["address"] == "1 rue des Lilas"
    assert api.get(f"/api/v1/clients/{cid}").json()["name"] == "Mme Durand"
    assert api.get("/api/v1/clients/999").status_code == 404
    svc = org["service"]
    assert [t["label"] for t in svc["tasks"]] == ["Toilette", "Habillage"]
    r = api.patch(f"/api/v1/services/{svc['id']}", json={"tasks": ["Repas"]})
    assert [t["label"] for t in r.json()["tasks"]] == ["Repas"]
    dup = api.post("/api/v1/services", json={"organisation_id": org["id"], "name": "T",
                                             "code": "TOIL"})
    assert dup.status_code == 409
    r = api.patch(f"/api/v1/organisations/{org['id']}",
                  json={"tolerance_min": 20, "rounding_mode": "nearest"})
    assert r.json()["tolerance_min"] == 20
    bad = api.patch(f"/api/v1/organisations/{org['id']}", json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422
    assert api.post("/api/v1/clients", json={"organisation_id": org["id"]}).status_code == 422


def test_pagination(api, org):
    for i in range(5):
        api.post("/api/v1/caregivers", json={"organisation_id": org["id"], "name": f"C{i}"})
    page = api.get("/api/v1/caregivers", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 6 and len(page["items"]) == 2 and page["offset"] == 2
    assert api.get("/api/v1/caregivers", params={"limit": 0}).status_code == 422


def test_badges_and_devices(api, org, keys):
    tech = {"Authorization": f"Bearer {keys['technician']}"}
    r = api.post("/api/v1/badges", headers=tech, json={
        "kind": "caregiver_card", "uid": "04:a1:b2:c3:d4:e5:f6",
        "caregiver_id": org["caregiver"]["id"]})
    assert r.status_code == 201 and r.json()["uid"] == "04A1B2C3D4E5F6"
    again = api.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": "04A1B2C3D4E5F6",
                                             "caregiver_id": org["caregiver"]["id"]})
    assert again.status_code == 409
    assert api.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": "zz",
                                            "caregiver_id": 1}).status_code == 422
    r = api.post("/api/v1/devices", headers=tech,
                 json={"ident": "r1", "client_id": org["client"]["id"]})
    assert r.status_code == 201 and r.json()["status"] == "registered"
    assert api.post("/api/v1/devices", json={"ident": "r1", "client_id": org["client"]["id"]}
                    ).status_code == 409
    assert api.post("/api/v1/devices", json={"ident": "bad id!", "client_id": 1}
                    ).status_code == 422
    assert api.post("/api/v1/devices", json={"ident": "r2"}).status_code == 422
    assert api.get("/api/v1/devices/r1").json()["acked_seq"] == 0
    assert api.get("/api/v1/devices/nope").status_code == 404
    assert api.get("/api/v1/badges", params={"kind": "caregiver_card"}).json()["total"] == 1


def test_client_tags_are_signed_replaced_and_revoked(app, api, org, keys):
    client = org["client"]["id"]
    r = api.post("/api/v1/badges", json={"kind": "client_tag", "client_id": client})
    assert r.status_code == 201, r.text
    tag = r.json()
    assert tag["signed"] and tag["uid"].startswith(f"TG1.{org['id']}.{client}.")
    # a signed token is only registered if this organisation signed it, for this client
    forged = tag["uid"][:-1] + ("A" if tag["uid"][-1] != "A" else "B")
    r = api.post("/api/v1/badges", json={"kind": "client_tag", "client_id": client,
                                          "uid": forged})
    assert r.status_code == 422 and "signature does not match" in r.json()["detail"]
    other = api.post("/api/v1/clients", json={"organisation_id": org["id"], "name": "M. Petit"})
    r = api.post("/api/v1/badges", json={"kind": "client_tag", "uid": tag["uid"],
                                          "client_id": other.json()["id"]})
    assert r.status_code == 422 and "another client" in r.json()["detail"]
    # an existing tag's text can be imported; it is not signed
    r = api.post("/api/v1/badges", json={"kind": "client_tag", "client_id": client,
                                          "uid": "C12-7F3A"})
    assert r.status_code == 201 and not r.json()["signed"]
    # the manager told of a copied QR code replaces the tag, and must say why
    manager = {"Authorization": f"Bearer {keys['manager']}"}
    url = f"/api/v1/badges/{tag['id']}/replace"
    assert api.post(url, headers=manager, json={"reason": ""}).status_code == 422
    r = api.post(url, headers=manager, json={"reason": "QR code photographed"})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["signed"] and new["uid"] != tag["uid"] and new["replaces_id"] == tag["id"]
    old = api.get(f"/api/v1/badges/{tag['id']}").json()
    assert not old["active"] and old["revoke_reason"] == "QR code photographed"
    assert old["revoked_at"]
    r = api.post(url, json={"reason": "again"})
    assert r.status_code == 409 and f"replaced by badge {new['id']}" in r.json()["detail"]
    r = api.patch(f"/api/v1/badges/{tag['id']}", json={"active": True})
    assert r.status_code == 409 and "replaced" in r.json()["detail"]


def test_cards_are_revoked_with_a_reason_and_replaced(app, api, org):
    card = api.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": "04A1B2C3D4E5F6",
                                            "caregiver_id": org["caregiver"]["id"]}).json()
    url = f"/api/v1/badges/{card['id']}"
    r = api.patch(url, json={"active": False})
    assert r.status_code == 422 and "say why" in r.json()["detail"]
    r = api.patch(url, json={"active": False, "reason": "lost at 19:00"})
    assert r.status_code == 200 and not r.json()["active"]
    assert api.patch(url, json={"active": False, "reason": "x"}).status_code == 409
    assert api.post(f"{url}/replace", json={"reason": "lost"}).status_code == 422  # no uid
    r = api.post(f"{url}/replace", json={"reason": "lost", "uid": "04 a1 b2 c3 d4 e5 f7"})
    assert r.status_code == 201 and r.json()["uid"] == "04A1B2C3D4E5F7"
    with app.state.sessions() as s:
        actions = [(a.action, a.why) for a in s.scalars(select(AuditLog).where(
            AuditLog.target.startswith("badge:")).order_by(AuditLog.id))]
    assert actions == [("create", None), ("revoke", "lost at 19:00"), ("create", None)]


def _visit(api, org, start, minutes=60, **extra):
    return api.post("/api/v1/visits", json={
        "client_id": org["client"]["id"], "caregiver_id": org["caregiver"]["id"],
        "planned_start": start.isoformat(),
        "planned_end": (start + timedelta(minutes=minutes)).isoformat(), **extra})


def test_visits_filters_by_local_day(api, org):
    # 23:30 UTC on the 22nd is 00:30 on the 23rd in Paris
    late = datetime(2026, 11, 22, 23, 30, tzinfo=timezone.utc)
    assert _visit(api, org, late).status_code == 201
    assert _visit(api, org, late - timedelta(hours=2)).status_code == 201
    on_23 = api.get("/api/v1/visits", params={"day": "2026-11-23"}).json()
    assert [v["planned_start"][:16] for v in on_23["items"]] == ["2026-11-22T23:30"]
    assert api.get("/api/v1/visits", params={"day": "2026-11-22"}).json()["total"] == 1
    assert api.get("/api/v1/visits", params={
        "caregiver_id": org["caregiver"]["id"], "status": "planned"}).json()["total"] == 2
    assert api.get("/api/v1/visits", params={"client_id": 999}).json()["total"] == 0


def test_visit_create_and_patch_errors(api, org):
    start = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)
    assert _visit(api, org, start, minutes=-10).status_code == 422
    naive = api.post("/api/v1/visits", json={
        "client_id": org["client"]["id"], "caregiver_id": org["caregiver"]["id"],
        "planned_start": "2026-11-23T08:00:00", "planned_end": "2026-11-23T09:00:00"})
    assert naive.status_code == 422
    assert _visit(api, org, start, caregiver_id=999).status_code == 422
    v = _visit(api, org, start).json()
    r = api.patch(f"/api/v1/visits/{v['id']}", json={"status": "cancelled"})
    assert r.json()["status"] == "cancelled"
    r = api.patch(f"/api/v1/visits/{v['id']}",
                  json={"planned_end": (start - timedelta(hours=1)).isoformat()})
    assert r.status_code == 422


CSV = ("client,caregiver,service,date,start,end\n"
       "Mme Durand,Alice Martin,TOIL,2026-11-23,08:00,09:00\n"
       "Mme Durand,Alice Martin,,23/11/2026,10h00,11:00\n")


def _import(api, org, content: bytes, dry_run=False):
    return api.post("/api/v1/visits/import",
                    params={"dry_run": dry_run, "organisation_id": org["id"]},
                    files={"file": ("planning.csv", content, "text/csv")})


def test_import_happy_path_and_dry_run(api, org):
    preview = _import(api, org, CSV.encode(), dry_run=True).json()
    assert preview["valid"] == 2 and preview["created"] == 0 and preview["errors"] == []
    assert preview["visits"][0]["planned_start"] == "2026-11-23T07:00:00+00:00"  # Paris 08:00
    assert api.get("/api/v1/visits").json()["total"] == 0
    done = _import(api, org, CSV.encode()).json()
    assert done["created"] == 2 and all(v["id"] for v in done["visits"])
    assert api.get("/api/v1/visits").json()["total"] == 2
    again = _import(api, org, CSV.encode()).json()
    assert again["created"] == 0
    assert [e["message"][:15] for e in again["errors"]] == ["already planned"] * 2


def test_import_french_excel_file(api, org):
    api.post("/api/v1/clients", json={"organisation_id": org["id"], "name": "M. Hervé Noël"})
    text = ("Usager;Intervenant;Prestation;Date;Début;Fin\r\n"
            "M. Hervé Noël;Alice Martin;Toilette;23/11/2026;14:00;15:30\r\n")
    r = _import(api, org, text.encode("cp1252")).json()
    assert r["encoding"] == "cp1252" and r["delimiter"] == ";"
    assert r["created"] == 1 and r["visits"][0]["client"] == "M. Hervé Noël"
    bom = _import(api, org, ("\ufeff" + CSV).encode("utf-8"), dry_run=True).json()
    assert bom["encoding"] == "utf-8" and bom["valid"] == 2


def test_import_row_errors_keep_the_good_rows(api, org):
    text = ("client,caregiver,service,date,start,end\n"
            "Mme Durand,Alice Martin,TOIL,2026-11-23,08:00,09:00\n"   # 2 ok
            "Inconnue,Alice Martin,,2026-11-23,08:00,09:00\n"        # 3 unknown client
            "Mme Durand,Personne,,2026-11-23,08:00,09:00\n"          # 4 unknown caregiver
            "Mme Durand,Alice Martin,NOPE,2026-11-23,08:00,09:00\n"  # 5 unknown service
            "Mme Durand,Alice Martin,,2026-13-45,08:00,09:00\n"      # 6 bad date
            "Mme Durand,Alice Martin,,2026-11-23,25:00,09:00\n"      # 7 bad time
            "Mme Durand,Alice Martin,,2026-11-23,12:00,11:00\n"      # 8 end before start
            "Mme Durand,Alice Martin,TOIL,2026-11-23,08:00,09:00\n"  # 9 duplicate of 2
            "Mme Durand,Alice Martin,,2026-03-29,02:30,03:30\n"      # 10 DST gap
            ",Alice Martin,,2026-11-23,16:00,17:00\n"                # 11 empty client
            "\n"
            "Mme Durand,Alice Martin,,2026-11-24,08:00,09:00\n")     # 13 ok
    r = _import(api, org, text.encode()).json()
    errors = {(e["row"], e["column"]) for e in r["errors"]}
    assert errors == {(3, "client"), (4, "caregiver"), (5, "service"), (6, "date"),
                      (7, "start"), (8, "end"), (9, None), (10, "start"), (11, "client")}
    assert r["rows"] == 11 and r["created"] == 2
    messages = {e["row"]: e["message"] for e in r["errors"]}
    assert "unknown client 'Inconnue'" == messages[3]
    assert "same visit as row 2" == messages[9]
    assert "not after start" in messages[8]


def test_import_file_errors(api, org, keys):
    r = _import(api, org, b"client,date\nX,2026-11-23\n")
    assert r.status_code == 422
    assert {e["column"] for e in r.json()["detail"]} == {"caregiver", "start", "end"}
    assert _import(api, org, b"").status_code == 422
    tech = {"Authorization": f"Bearer {keys['technician']}"}
    r = api.post("/api/v1/visits/import", headers=tech, params={"organisation_id": org["id"]},
                 files={"file": ("p.csv", CSV.encode(), "text/csv")})
    assert r.status_code == 403


def test_events_records_rejections_and_stats(app, api, org):
    from fleet.ingest import handle_clock
    from fleet.matching import match_pending

    api.post("/api/v1/badges", json={"kind": "caregiver_card", "uid": "04A1B2C3D4E5F6",
                                     "caregiver_id": org["caregiver"]["id"]})
    api.post("/api/v1/devices", json={"ident": "r1", "client_id": org["client"]["id"]})
    start = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)
    visit = _visit(api, org, start).json()
    ts = int(start.timestamp())
    payload = (b'{"now": %d, "events": [{"seq": 1, "badge": "04A1B2C3D4E5F6", "dir": "in",'
               b' "method": "nfc", "ts": %d, "tq": "synced"}, {"seq": 2, "dir": "in"}]}'
               % (ts, ts))
    with app.state.sessions() as s:
        handle_clock(s, "r1", payload, start)
        handle_clock(s, "ghost", payload, start)
        match_pending(s)
        s.commit()
    ev = api.get("/api/v1/clock-events", params={"day": "2026-11-23", "device": "r1"}).json()
    assert ev["total"] == 1 and ev["items"][0]["visit_id"] == visit["id"]
    by_caregiver = api.get("/api/v1/clock-events",
                           params={"caregiver_id": org["caregiver"]["id"]}).json()
    assert by_caregiver["total"] == 1
    assert api.get("/api/v1/clock-events", params={"client_id": 999}).json()["total"] == 0
    recs = api.get("/api/v1/visit-records", params={"status": "in_progress"}).json()
    assert recs["items"][0]["visit_id"] == visit["id"]
    rej = api.get("/api/v1/rejections", params={"reason": "bad_event"}).json()
    assert rej["total"] == 1 and rej["items"][0]["seq"] == 2
    assert api.get("/api/v1/rejections", params={"device": "ghost"}).json()["total"] == 1
    stats = api.get("/api/v1/ingest/stats").json()
    assert stats["counters"]["stored"] == 1
    assert stats["rejections"] == {"bad_event": 1, "unknown_device": 1}


def test_actions_are_audited(app, api, org):
    from sqlalchemy import select

    from fleet.models import AuditLog

    with app.state.sessions() as s:
        actions = s.scalars(select(AuditLog.target)).all()
    assert f"client:{org['client']['id']}" in actions
