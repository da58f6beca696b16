"""Finding "web hardening" (issue #14, item 7), its headers and links: security headers on
every response with a Content-Security-Policy that runs no inline script or style; enrolment
links built from the configured public URL, never the Host header.

Before: no security header at all; the board ran an inline script; the enrolment QR code
pointed wherever the request's Host header said.
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet.config import Settings, SettingsError

from .conftest import PASSWORD, csrf_of, sign_in

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [*(ROOT / "fleet/console/templates").glob("*.html"),
             *(ROOT / "fleet/caregiver/templates").glob("*.html")]


def csp_directives(value: str) -> dict[str, str]:
    return {d.split()[0]: d.split(" ", 1)[1] if " " in d else ""
            for d in (p.strip() for p in value.split(";")) if d}


# -- headers -------------------------------------------------------------------------------------
def test_web_hardening_security_headers_on_every_response(app):
    c = TestClient(app)
    responses = [c.get("/login"), c.get("/app/"), c.get("/app/static/app.js"),
                 c.get("/static/board.js"), c.get("/app/sw.js"), c.get("/healthz"),
                 c.get("/api/v1/devices"), c.get("/gw/v1/device"), c.get("/no/such/page")]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 200, 401, 401, 404]
    for r in responses:
        csp = csp_directives(r.headers["content-security-policy"])
        assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'", r.url
        assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in r.headers, "HSTS over plain http"


def test_web_hardening_hsts_only_over_https(app):
    r = TestClient(app).get("/login", headers={"X-Forwarded-Proto": "https"})
    # the app itself trusts no forwarded header: only the scheme uvicorn gives it
    assert "strict-transport-security" not in r.headers
    r = TestClient(app, base_url="https://telegest.agence.fr").get("/login")
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")


def test_web_hardening_no_inline_script_or_style_in_any_template():
    assert TEMPLATES
    for path in TEMPLATES:
        html = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script in {path}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {path}"
        assert not re.search(r"\sstyle\s*=|<style", html), f"inline style in {path}"
        assert "javascript:" not in html, path


def test_web_hardening_api_docs_allow_their_own_inline_script_only(app):
    r = TestClient(app).get("/docs")
    inline = re.search(r"<script>(.*?)</script>", r.text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["script-src"] == f"'self' https://cdn.jsdelivr.net 'sha256-{digest}'"
    assert csp["frame-ancestors"] == "'none'" and "unsafe-inline" not in csp["script-src"]
    assert r.text.count("<script") == 2  # held whole, nothing lost on the way


# -- links from the public URL -------------------------------------------------------------------
def test_web_hardening_enrolment_link_from_the_public_url_not_the_host_header(demo):
    from fleet.api.app import create_app
    from fleet.console.users import create_user
    from fleet.db import make_engine, session_factory
    from fleet.models import Caregiver, Device

    engine = make_engine(demo[0])
    with session_factory(engine)() as s:
        carer = s.scalars(select(Caregiver).order_by(Caregiver.id)).first()
        s.add(Device(ident="phone-alice", kind="phone", organisation_id=carer.organisation_id,
                     caregiver_id=carer.id))
        create_user(s, "tech@agency.fr", "technician", PASSWORD)
        s.commit()
    engine.dispose()
    app = create_app(Settings(database_url=demo[0], public_url="https://telegest.agence.fr/"))
    c = TestClient(app)
    sign_in(c, "tech@agency.fr")
    page = c.get("/devices/phone-alice").text
    r = c.post("/devices/phone-alice/enrolment", data={"csrf": csrf_of(page)},
               headers={"Host": "attacker.example"})
    url = re.search(r'<code id="enrolment-url">([^<]+)</code>', r.text).group(1)
    assert url.startswith("https://telegest.agence.fr/app/enrol?token=")
    assert "attacker" not in r.text


@pytest.mark.parametrize("bad", ["telegest.agence.fr", "ftp://x.fr", "https://",
                                 "https://a.fr/?x=1", "https://a.fr/#top", "https://user@a.fr"])
def test_web_hardening_a_public_url_that_is_no_address_is_refused(bad):
    with pytest.raises(SettingsError, match="TELEGEST_PUBLIC_URL"):
        Settings(public_url=bad)


def test_web_hardening_public_url_unset_says_what_is_used(monkeypatch):
    monkeypatch.delenv("TELEGEST_PUBLIC_URL", raising=False)
    s = Settings()
    assert s.public_url == "http://127.0.0.1:8000" and not s.public_url_configured
    monkeypatch.setenv("TELEGEST_PUBLIC_URL", "https://telegest.agence.fr/")
    s = Settings()
    assert s.link("/visits/3") == "https://telegest.agence.fr/visits/3"
    assert s.public_url_configured


@pytest.mark.e2e
@pytest.mark.parametrize("allowed, hsts", [(None, True), ("192.0.2.1", False)])
def test_web_hardening_forwarded_proto_counts_only_from_a_trusted_proxy(
        database_url, tmp_path, allowed, hsts):
    """`telegest fleet api` as run in production: X-Forwarded-Proto from loopback (uvicorn's
    FORWARDED_ALLOW_IPS default, a proxy on the same machine) makes the request https, so HSTS
    and Secure cookies; from any other address, it is ignored."""
    import os
    import subprocess
    import sys

    import httpx

    from tests.helpers import READY_S, ROOT
    from tools.broker import free_port, wait_port

    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORWARDED_ALLOW_IPS", "TELEGEST_PUBLIC_URL")}
    if allowed:
        env["FORWARDED_ALLOW_IPS"] = allowed
    with open(tmp_path / "api.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "fleet", "api", "--db",
                                 database_url, "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_port("127.0.0.1", port, READY_S), (tmp_path / "api.log").read_text()
        r = httpx.get(f"http://127.0.0.1:{port}/login", headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 200
        assert ("strict-transport-security" in r.headers) is hsts
        assert ("secure" in r.headers["set-cookie"].lower()) is hsts
        plain = httpx.get(f"http://127.0.0.1:{port}/login")
        assert "strict-transport-security" not in plain.headers
    finally:
        proc.terminate()
        proc.wait(10)
    # unset TELEGEST_PUBLIC_URL: the command says what links will use
    assert f"point at http://127.0.0.1:{port}" in (tmp_path / "api.log").read_text()
