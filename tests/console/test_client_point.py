"""The home's reference point on the client record (issue #11 item 2): the console's client
form and the API take `lat`, `lon`, both or neither, finite and in range; a bad value is a
clear refusal that changes nothing."""
from __future__ import annotations

from sqlalchemy import select

from fleet.models import Client
from tests.console.conftest import csrf_of, form_id_of


def test_client_form_sets_the_home_point(as_role, db):
    m = as_role("manager")
    form = m.get("/planning/clients/new").text
    assert 'name="lat"' in form and 'name="lon"' in form
    base = {"csrf": csrf_of(form), "form_id": form_id_of(form), "name": "Mme Roux",
            "active": "on", "lat": "45,7640", "lon": "4.8357"}
    for bad, says in (({"lat": "nan"}, "expected -90 to 90"), ({"lat": "91"}, "expected"),
                      ({"lon": "est"}, "not a number"), ({"lon": ""}, "go together")):
        r = m.post("/planning/clients", data={**base, **bad}, follow_redirects=False)
        assert r.status_code == 422 and says in r.text, bad
    with db() as s:
        assert s.scalars(select(Client).where(Client.name == "Mme Roux")).first() is None
    r = m.post("/planning/clients", data=base, follow_redirects=False)
    assert r.status_code == 303
    with db() as s:
        roux = s.scalars(select(Client).where(Client.name == "Mme Roux")).one()
    assert (roux.lat, roux.lon) == (45.764, 4.8357)
    assert 'value="45.764"' in m.get(f"/planning/clients/{roux.id}").text


def test_api_takes_lat_lon_together_and_in_range(api):
    cid = api.get("/api/v1/clients", params={"limit": 1}).json()["items"][0]["id"]
    for bad in ({"lat": 45.0}, {"lat": 95.0, "lon": 4.0}, {"lat": 45.0, "lon": None}):
        r = api.patch(f"/api/v1/clients/{cid}", json=bad)
        assert r.status_code == 422, (bad, r.text)
    # NaN is not JSON, but Python's json writes it: refused all the same
    r = api.patch(f"/api/v1/clients/{cid}", content=b'{"lat": NaN, "lon": 4.0}',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert api.get(f"/api/v1/clients/{cid}").json()["lat"] is None
    r = api.patch(f"/api/v1/clients/{cid}", json={"lat": 45.764, "lon": 4.8357})
    assert r.status_code == 200 and (r.json()["lat"], r.json()["lon"]) == (45.764, 4.8357)
    r = api.patch(f"/api/v1/clients/{cid}", json={"lat": None, "lon": None})
    assert r.status_code == 200 and r.json()["lat"] is None


def test_nan_in_any_request_is_a_422_not_a_500(api):
    """The 422 echoed the bad value: a NaN could not be encoded and the answer was a 500."""
    for path, body in (("/api/v1/alert-settings", b'{"home_radius_m": NaN}'),
                       ("/api/v1/alert-settings", b'{"tolerance_min": Infinity}')):
        r = api.patch(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["input"] in ("nan", "inf")
    org = {"organisation_id": api.get("/api/v1/clients", params={"limit": 1}).json()[
        "items"][0]["organisation_id"]}
    r = api.patch("/api/v1/alert-settings", params=org, json={"home_radius_m": 20})
    assert r.status_code == 422 and "home_radius_m" in r.text
    r = api.patch("/api/v1/alert-settings", params=org, json={"home_radius_m": 350})
    assert r.status_code == 200 and api.get("/api/v1/alert-settings", params=org).json()[
        "home_radius_m"] == 350


def test_home_points_csv_import_is_all_or_nothing(api):
    clients = api.get("/api/v1/clients", params={"limit": 3}).json()["items"]
    org = {"organisation_id": clients[0]["organisation_id"]}
    a, b = clients[0], clients[1]

    def send(text: str, **params):
        return api.post("/api/v1/clients/points/import", params={**org, **params},
                        files={"file": ("points.csv", text.encode("cp1252"), "text/csv")})

    bad = (f"usager;latitude;longitude\n{a['name']};45,7640;4,8357\n"
           f"{b['id']};91;4.8\nPersonne;45;4\n{b['id']};45;\n")
    r = send(bad)
    assert r.status_code == 200 and r.json()["set"] == 0
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [
        (3, "lat"), (4, "client"), (5, "lon")]
    assert api.get(f"/api/v1/clients/{a['id']}").json()["lat"] is None  # nothing written
    good = f"client,lat,lon\n{a['id']},45.764,4.8357\n{b['name']},45.75,4.85\n"
    assert send(good, dry_run="true").json()["set"] == 0
    r = send(good)
    assert r.status_code == 200 and r.json()["set"] == 2 and r.json()["errors"] == []
    assert api.get(f"/api/v1/clients/{b['id']}").json()["lon"] == 4.85
    assert send("client;lat\nx;1\n").status_code == 422  # a missing column: the file refused
