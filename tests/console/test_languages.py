"""One language at a time (issue #13 item 7): the catalog covers every string, no template keeps
an "English · Français" pair, the browser's Accept-Language picks the language before sign-in,
and a user's own setting wins over it and stays."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet import i18n
from fleet.models import AuditLog, User
from tests.console.conftest import PASSWORD, choose_language, csrf_of, sign_in

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "fleet" / "console" / "templates"
PO = ROOT / "fleet" / "locale" / "fr" / "LC_MESSAGES" / "messages.po"


def _extracted() -> dict[tuple[str | None, str], list[str]]:
    """What `pybabel extract -F babel.cfg` finds: (context, msgid) -> where."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[tuple[str | None, str], list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault((context, msgid), []).append(f"{filename}:{lineno}")
    return found


def test_every_string_of_the_console_has_a_french_translation():
    with PO.open("rb") as f:
        catalog = read_po(f, locale="fr")
    extracted = _extracted()
    assert len(extracted) > 500  # the templates and the console's Python were read
    missing = []
    for (context, msgid), where in sorted(extracted.items(), key=lambda kv: kv[1][0]):
        entry = catalog.get(msgid, context=context)
        strings = entry.string if entry is not None else None
        if isinstance(strings, str):
            strings = (strings,)
        if entry is None or entry.fuzzy or not strings or not all(strings):
            missing.append(f"{where[0]}: {msgid!r}" + (f" ({context})" if context else ""))
    assert not missing, ("untranslated or fuzzy (pybabel extract, then update; docs/console.md):\n"
                         + "\n".join(missing))


def test_the_french_catalog_keeps_the_placeholders_of_each_string():
    with PO.open("rb") as f:
        catalog = read_po(f, locale="fr")
    names = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")
    wrong = []
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        want = {n for i in ids for n in names.findall(i)}
        for s in strings:
            if {n for n in names.findall(s)} != want:
                wrong.append((ids[0], s))
    assert not wrong


def _bilingual_pairs(text: str) -> list[str]:
    """Each " · " with words on both sides inside one run of text, attribute or string
    literal: an English · French label left behind (a lone " · " between links, times or
    values is a separator and stays)."""
    text = re.sub(r"{#.*?#}", "", text, flags=re.S)
    found = []
    for m in re.finditer(r"\s·\s", text):
        left = re.split(r"[>}\"'%]", text[:m.start()])[-1]
        right = re.split(r"[<{\"']", text[m.end():])[0]
        if re.search(r"[A-Za-zÀ-ÿ]", left) and re.search(r"[A-Za-zÀ-ÿ]", right):
            found.append(f"{left.strip()[-40:]} · {right.strip()[:40]}")
    return found


def test_no_console_template_shows_an_english_and_french_pair():
    assert _bilingual_pairs("<th>Planned · Prévu</th>") == ["Planned · Prévu"]
    assert _bilingual_pairs('placeholder="why · motif"') == ["why · motif"]
    assert _bilingual_pairs('</a> · <a href="/x">') == []
    assert _bilingual_pairs("<p>End them all ·\n  Fermez-les toutes.</p>") == [
        "End them all · Fermez-les toutes."]
    assert _bilingual_pairs("{% endif %} · {{ _(\"to everyone\") }}") == []
    left = {p.name: _bilingual_pairs(p.read_text()) for p in sorted(TEMPLATES.glob("*.html"))}
    assert {name: pairs for name, pairs in left.items() if pairs} == {}


def test_no_console_template_shows_french_outside_the_catalog():
    """French written in a template (a paragraph beside its English one) is not translated:
    every French word comes from the catalog."""
    french = re.compile(r"[A-Za-z]*[àâçéèêëîïôûùœ][a-zà-ÿ]*")
    left = {}
    for p in sorted(TEMPLATES.glob("*.html")):
        text = re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", " ", p.read_text(), flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text)
        if french.search(text):
            left[p.name] = french.findall(text)[:5]
    assert left == {}


@pytest.mark.parametrize(("header", "lang"), [
    (None, "fr"), ("fr-FR,fr;q=0.9", "fr"), ("en-GB,en;q=0.9", "en"), ("de-DE,de;q=0.9", "fr"),
    ("de;q=1, en;q=0.5, fr;q=0.4", "en"), ("fr;q=0.3, en;q=0.8", "en"), ("en;q=0, fr", "fr"),
    ("*", "fr"), ("en-US;q=abc", "fr"), ("x" * 5000, "fr")])
def test_accept_language_picks_french_or_english(header, lang):
    assert i18n.negotiate(header) == lang


def test_python_messages_follow_one_rule():
    assert i18n.translate("Saved", "fr") == "Enregistré"
    assert i18n.translate("Saved", "en") == "Saved"
    # the planning layer's bilingual errors (the API's text): the page's half
    text = "the end must be after the start · la fin doit suivre le début"
    assert i18n.translate(text, "fr") == "la fin doit suivre le début"
    assert i18n.translate(text, "en") == "the end must be after the start"
    # a value, a name: as it is
    assert i18n.translate("Mme Jeanne Durand", "fr") == "Mme Jeanne Durand"
    assert i18n.translate("a · b · c", "en") == "a · b · c"
    assert i18n.translate(None, "fr") == ""


def test_the_sign_in_page_speaks_the_browser_s_language(app):
    with TestClient(app) as c:
        fr = c.get("/login").text  # no Accept-Language: French, the product's language
        assert '<html lang="fr">' in fr and "<h1>Connexion</h1>" in fr and "Sign in" not in fr
        en = c.get("/login", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
        assert '<html lang="en">' in en and "<h1>Sign in</h1>" in en
        assert "Connexion" not in en and "Mot de passe" not in en
        # the page's link to the other language wins over the header
        picked = c.get("/login?lang=fr", headers={"Accept-Language": "en"}).text
        assert '<html lang="fr">' in picked and 'href="/login?lang=en' in picked
        # a refusal answers in the language of the form that was sent
        token = csrf_of(c.get("/login", headers={"Accept-Language": "en"}).text)
        r = c.post("/login?lang=en", data={"csrf": token, "email": "manager@agency.fr",
                                           "password": "not the password"})
        assert r.status_code == 401 and "Wrong email or password" in r.text
        assert "Adresse ou mot de passe" not in r.text


def test_the_user_s_setting_wins_over_the_browser_and_persists(app, db):
    with db() as s:  # a manager who never chose: the browser decides
        s.get(User, s.scalars(select(User.id).where(
            User.email == "manager@agency.fr")).one()).language = None
        s.commit()
    french_browser = {"Accept-Language": "fr-FR,fr;q=0.9"}
    with TestClient(app, headers=french_browser) as c:
        assert sign_in(c, "manager@agency.fr").status_code == 200
        page = c.get("/planning").text
        assert '<html lang="fr">' in page and ">Interventions</a>" in page
        assert ">Visits</a>" not in page
        choose_language(c, "en")
        page = c.get("/planning").text
        assert '<html lang="en">' in page and ">Visits</a>" in page
        assert ">Interventions</a>" not in page and "Language saved" in c.get(
            "/account?msg=language").text
        # signed out: the sign-in page stays in English
        r = c.post("/logout", data={"csrf": csrf_of(page)})
        assert r.url.path == "/login" and '<html lang="en">' in r.text and "Signed out" in r.text
    with TestClient(app, headers=french_browser) as other:  # another browser, a new session
        assert sign_in(other, "manager@agency.fr", PASSWORD).status_code == 200
        board = other.get("/board").text
        assert '<html lang="en">' in board and "Board" in board and "Tableau" not in board
        choose_language(other, "")  # back to the browser's language
        assert '<html lang="fr">' in other.get("/board").text
    with db() as s:
        user = s.scalars(select(User).where(User.email == "manager@agency.fr")).one()
        assert user.language is None
        changes = s.scalars(select(AuditLog).where(
            AuditLog.action == "language", AuditLog.target == "user:manager@agency.fr")
            .order_by(AuditLog.id)).all()
        assert [(a.detail["before"], a.detail["after"]) for a in changes] == [
            (None, "en"), ("en", None)]


def test_a_language_that_is_not_offered_is_refused(as_role, db):
    c = as_role("manager")
    token = csrf_of(c.get("/account").text)
    r = c.post("/account/language", data={"csrf": token, "language": "de"})
    assert r.status_code == 422 and "Choose Français, English" in r.text
    r = c.post("/account/language", data={"language": "fr"})  # no CSRF token: refused
    assert r.status_code == 403
    with db() as s:
        assert s.scalars(select(User.language).where(
            User.email == "manager@agency.fr")).one() == "en"


def test_counts_take_the_plural_of_their_language(as_role):
    fr = as_role("manager", "fr").get("/board?day=2030-01-07").text
    assert re.search(r"\b0 intervention\b", fr)  # French: 0 and 1 are singular
    en = as_role("admin").get("/board?day=2030-01-07").text
    assert re.search(r"\b0 visits\b", en)
