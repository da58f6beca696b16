"""The Badges page: list, issue, revoke, restore, replace, and the printable QR sheet."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from fleet import badges, tagtokens
from fleet.models import AuditLog, Badge, Caregiver, Client, Organisation
from tests.console.conftest import csrf_of, form_id_of
from tests.helpers import pdf_images_and_text, pdf_text_runs
from tools.field.sheet import qr_image, token_lines


def _tag(db, n: int = 0) -> Badge:
    """The demo's n-th client tag."""
    with db() as s:
        return s.scalars(select(Badge).where(Badge.kind == "client_tag")
                         .order_by(Badge.id)).all()[n]


def _count(db, *where) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(Badge).where(*where))


def _token_on(html: str) -> str:
    return re.search(r'<code id="badge-uid">([^<]+)</code>', html).group(1)


def test_the_list_shows_the_demo_badges_and_filters_them(as_role, db, demo):
    c = as_role("manager")
    page = c.get("/badges")
    assert page.status_code == 200 and '<a href="/badges">Badges</a>' in page.text
    info = demo[1]
    for client, token in info["tags"].items():
        assert client in page.text and token in page.text
    for caregiver, uid in info["badges"].items():
        assert caregiver in page.text and uid in page.text
    assert ">signed<" in page.text and 'id="print-sheet"' in page.text
    cards = c.get("/badges?kind=caregiver_card").text
    assert "TG1." not in cards and all(uid in cards for uid in info["badges"].values())
    tag = _tag(db)
    one = c.get(f"/badges?client={tag.client_id}&caregiver=&kind=&state=").text
    assert one.count("<code>TG1.") == 1 and tag.uid in one
    assert f'href="/badges/sheet.pdf?client_id={tag.client_id}"' in one
    assert f'href="/badges/new?kind=client_tag&amp;client={tag.client_id}"' in one
    form = c.get(f"/badges/new?kind=client_tag&client={tag.client_id}").text
    assert f'<option value="{tag.client_id}" selected>' in form
    assert "No badge" in c.get("/badges?state=revoked").text


def test_issuing_a_client_tag_shows_a_token_the_organisation_signed(as_role, db):
    c = as_role("manager")
    form = c.get("/badges/new?kind=client_tag").text
    with db() as s:
        client = s.scalars(select(Client).order_by(Client.id)).first()
        org = s.get(Organisation, client.organisation_id)
    data = {"csrf": csrf_of(form), "form_id": form_id_of(form), "kind": "client_tag",
            "owner": client.id, "uid": ""}
    r = c.post("/badges", data=data)
    assert "Badge issued" in r.text and client.name in r.text
    token = _token_on(r.text)
    assert tagtokens.verify(org.tag_secret, org.id, token) is None
    assert tagtokens.parse(token).client_id == client.id
    assert "signed by the organisation" in r.text
    again = c.post("/badges", data=data)  # sent twice
    assert "Already saved" in again.text and _token_on(again.text) == token
    assert _count(db, Badge.client_id == client.id) == 2  # the demo's and this one
    with db() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "create",
                                                 AuditLog.target.startswith("badge:"))).one()
        assert (entry.who, entry.role) == ("user:manager@agency.fr", "manager")
    # an existing tag's text is imported as it is: it works, unsigned
    form = c.get("/badges/new?kind=client_tag").text
    r = c.post("/badges", data={**data, "form_id": form_id_of(form), "uid": "OLD-TAG-0042"})
    assert _token_on(r.text) == "OLD-TAG-0042" and "imported, not signed" in r.text
    # a TG1 text this organisation did not sign is refused, the form shown again
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    form = c.get("/badges/new?kind=client_tag").text
    r = c.post("/badges", data={**data, "form_id": form_id_of(form), "uid": forged})
    assert r.status_code == 422 and "signature does not match" in r.text
    assert 'id="badge-form"' in r.text and _count(db, Badge.client_id == client.id) == 3


def test_a_caregiver_card_needs_a_good_uid_not_already_registered(as_role, db, demo):
    c = as_role("manager")
    with db() as s:
        carer = s.scalars(select(Caregiver).order_by(Caregiver.id)).first()
    form = c.get("/badges/new?kind=caregiver_card").text
    data = {"csrf": csrf_of(form), "form_id": form_id_of(form), "kind": "caregiver_card",
            "owner": carer.id}
    before = _count(db)
    r = c.post("/badges", data={**data, "uid": "not hex"})
    assert r.status_code == 422 and "give 8 to 20 hex digits" in r.text
    r = c.post("/badges", data={**data, "uid": demo[1]["badges"][carer.name]})
    assert r.status_code == 409 and "already registered" in r.text
    r = c.post("/badges", data={**data, "owner": "", "uid": "04AABBCCDDEEFF"})
    assert r.status_code == 422 and "choose the client or the caregiver" in r.text
    assert _count(db) == before
    r = c.post("/badges", data={**data, "uid": "04:aa:bb:cc:dd:ee:ff"})
    assert "Badge issued" in r.text and _token_on(r.text) == "04AABBCCDDEEFF"


def test_replace_revokes_the_old_tag_and_links_the_new_one(as_role, db):
    c = as_role("manager")
    old = _tag(db)
    page = c.get(f"/badges/{old.id}").text
    r = c.post(f"/badges/{old.id}/replace", data={
        "csrf": csrf_of(page), "form_id": form_id_of(page), "reason": "QR code photographed",
        "uid": ""})
    assert "Badge replaced" in r.text and f'href="/badges/{old.id}">#{old.id}</a>' in r.text
    new_id = int(r.url.path.rsplit("/", 1)[1])
    token = _token_on(r.text)
    assert token != old.uid and token.startswith(f"TG1.{old.organisation_id}.{old.client_id}.")
    old_page = c.get(f"/badges/{old.id}").text
    assert ">revoked " in old_page and "QR code photographed" in old_page
    assert f'id="successor" href="/badges/{new_id}"' in old_page
    assert 'id="replace-form"' not in old_page and 'id="restore-form"' not in old_page
    listed = c.get("/badges?state=revoked").text
    assert old.uid in listed and "QR code photographed" in listed
    assert f"replaced by <a href=\"/badges/{new_id}\">" in listed
    with db() as s:
        assert s.get(Badge, old.id).active is False
        assert s.get(Badge, new_id).replaces_id == old.id


def test_a_refused_replace_keeps_the_old_card(as_role, db, demo):
    c = as_role("manager")
    with db() as s:
        cards = s.scalars(select(Badge).where(Badge.kind == "caregiver_card")
                          .order_by(Badge.id)).all()
    page = c.get(f"/badges/{cards[0].id}").text
    before = _count(db)
    r = c.post(f"/badges/{cards[0].id}/replace", data={
        "csrf": csrf_of(page), "form_id": form_id_of(page), "reason": "lost",
        "uid": cards[1].uid})  # someone else's card
    assert r.status_code == 409 and "already registered" in r.text
    with db() as s:
        assert s.get(Badge, cards[0].id).active is True  # not revoked halfway
    assert _count(db) == before


def test_revoke_needs_a_reason_then_restore(as_role, db):
    c = as_role("manager")
    tag = _tag(db, 1)
    page = c.get(f"/badges/{tag.id}").text
    r = c.post(f"/badges/{tag.id}/revoke", data={"csrf": csrf_of(page), "reason": "  "})
    assert r.status_code == 422 and "say why the badge is revoked" in r.text
    assert _count(db, Badge.id == tag.id, Badge.active) == 1
    r = c.post(f"/badges/{tag.id}/revoke", data={"csrf": csrf_of(page), "reason": "worn out"})
    assert "Badge revoked" in r.text and "worn out" in r.text
    r = c.post(f"/badges/{tag.id}/revoke", data={"csrf": csrf_of(page), "reason": "worn out"})
    assert "Already saved" in r.text  # sent twice
    r = c.post(f"/badges/{tag.id}/restore", data={"csrf": csrf_of(page)})
    assert "Badge restored" in r.text
    with db() as s:
        assert s.get(Badge, tag.id).active is True
        actions = s.scalars(select(AuditLog.action).where(
            AuditLog.target == f"badge:{tag.id}").order_by(AuditLog.id)).all()
    assert actions == ["revoke", "restore"]


def test_a_form_without_the_csrf_token_does_nothing(as_role, db):
    c = as_role("manager")
    tag = _tag(db)
    form = c.get("/badges/new?kind=client_tag").text
    before = _count(db)
    r = c.post("/badges", data={"form_id": form_id_of(form), "kind": "client_tag",
                                "owner": tag.client_id})
    assert r.status_code == 403 and "Form refused" in r.text
    for action, data in (("revoke", {"reason": "lost"}), ("replace", {"reason": "lost"}),
                         ("restore", {})):
        assert c.post(f"/badges/{tag.id}/{action}", data={**data, "csrf": "forged"}
                      ).status_code == 403
    assert _count(db) == before and _count(db, Badge.id == tag.id, Badge.active) == 1
    with db() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.target.startswith("badge:"))) == 0


def test_a_technician_manages_badges_without_seeing_names(as_role, db):
    c = as_role("technician")
    tag = _tag(db, 2)
    with db() as s:
        name = s.get(Client, tag.client_id).name
    listed = c.get("/badges").text
    assert tag.uid in listed and name not in listed and f"client #{tag.client_id}" in listed
    page = c.get(f"/badges/{tag.id}").text
    assert name not in page and "/audit?target=badge:" not in page
    r = c.post(f"/badges/{tag.id}/replace", data={
        "csrf": csrf_of(page), "form_id": form_id_of(page), "reason": "tag worn", "uid": ""})
    assert "Badge replaced" in r.text and name not in r.text
    with db() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "revoke")).one()
        assert (entry.who, entry.role, entry.why) == ("user:technician@agency.fr",
                                                      "technician", "tag worn")


def test_someone_of_another_organisation_cannot_touch_these_badges(app, db):
    from fastapi.testclient import TestClient

    from fleet.console.users import create_user
    from tests.console.conftest import PASSWORD, sign_in

    with db() as s:
        other = Organisation(name="Autre agence")
        s.add(other)
        s.flush()
        create_user(s, "boss@autre.fr", "admin", PASSWORD, organisation_id=other.id)
        s.commit()
    tag = _tag(db)
    with TestClient(app) as c:
        assert sign_in(c, "boss@autre.fr").status_code == 200
        assert tag.uid not in c.get("/badges").text
        page = c.get("/badges").text
        assert c.get(f"/badges/{tag.id}").status_code == 404
        r = c.post(f"/badges/{tag.id}/revoke", data={"csrf": csrf_of(page), "reason": "x"})
        assert r.status_code == 404
        assert c.get(f"/badges/sheet.pdf?badge_id={tag.id}").status_code == 404
    assert _count(db, Badge.id == tag.id, Badge.active) == 1


def test_the_qr_sheet_of_the_active_client_tags(as_role, db):
    with db() as s:  # 13 active tags: two A4 pages of 12
        clients = s.scalars(select(Client).order_by(Client.id)).all()
        for i in range(8):
            badges.issue(s, "test", clients[i % len(clients)])
        s.commit()
        tokens = set(s.scalars(select(Badge.uid).where(Badge.kind == "client_tag")))
    assert len(tokens) == 13
    c = as_role("manager")
    r = c.get("/badges/sheet.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert len(re.findall(rb"/Type /Page\b", r.content)) == 2
    images, _ = pdf_images_and_text(r.content)
    assert sorted(images) == sorted(qr_image(t).tobytes() for t in tokens)
    shown = [run[4] for run in pdf_text_runs(r.content)]
    assert all(line in shown for t in tokens for line in token_lines(t))
    assert "Mme Jeanne Durand" in shown
    # one tag, from its row's link; a client's tags
    tag = _tag(db)
    assert f'href="/badges/sheet.pdf?badge_id={tag.id}"' in c.get("/badges").text
    images, _ = pdf_images_and_text(c.get(f"/badges/sheet.pdf?badge_id={tag.id}").content)
    assert images == [qr_image(tag.uid).tobytes()]
    images, _ = pdf_images_and_text(c.get(
        f"/badges/sheet.pdf?client_id={clients[0].id}&client_id={clients[1].id}").content)
    assert len(images) == 2 + 4  # the demo's tag of each, and 2 + 2 issued above
    # a revoked tag is not printed; nothing to print says so
    page = c.get(f"/badges/{tag.id}").text
    c.post(f"/badges/{tag.id}/revoke", data={"csrf": csrf_of(page), "reason": "lost"})
    r = c.get(f"/badges/sheet.pdf?badge_id={tag.id}")
    assert r.status_code == 404 and "No active client tag to print" in r.text
    assert r.headers["content-type"].startswith("text/html")
