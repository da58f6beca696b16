"""The console's two languages: French (the default: the product is French) and English.

English source strings are the msgids (`_("Visits")` in a template, `N_("Saved")` in Python);
the French catalog is fleet/locale/fr/LC_MESSAGES/messages.po, read with Babel at first use and
compiled in memory (no .mo file to build or to forget: the .po in the repository is what runs;
a fuzzy entry counts as untranslated). docs/console.md says how to add and translate a string.

The page's language: the signed-in user's setting (users.language), else `?lang=` on a page
before sign-in, else the browser's Accept-Language, else French.

Python-side messages reach the page through one rule (`translate`): a msgid of the catalog is
translated; a bilingual "English · français" text (the domain errors the JSON API also returns,
and messages carrying values) shows the half in the page's language; anything else (a name, a
value) is shown as it is.
"""
from __future__ import annotations

import gettext as _gettext
import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("fr", "en")
DEFAULT = "fr"
NAMES = {"fr": "Français", "en": "English"}
LOCALE_DIR = Path(__file__).parent / "locale"
SEPARATOR = " · "  # between the English and the French halves of a bilingual text


def N_(msgid: str) -> str:
    """Marks a msgid for `pybabel extract` where it is defined; translated where it is shown."""
    return msgid


@lru_cache(maxsize=None)
def catalog(lang: str) -> _gettext.NullTranslations:
    """The translations of `lang`; English, the source language, translates to itself."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not path.exists():
        return _gettext.NullTranslations()
    with path.open("rb") as f:
        po = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, po, use_fuzzy=False)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def normalise(value: str | None) -> str | None:
    """`fr`, `en` or None from a setting or a `?lang=` value (`en-GB` → `en`)."""
    if not value:
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else None


def negotiate(accept_language: str | None) -> str:
    """The first of our languages the browser asks for, by its q-values; French otherwise."""
    best: tuple[float, int, str] | None = None
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        code = normalise(tag)
        if code is None:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, val = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if best is None or (q, -i) > (best[0], best[1]):
            best = (q, -i, code)
    return best[2] if best else DEFAULT


def gettext(lang: str, msgid: str) -> str:
    return catalog(lang).gettext(msgid)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    return catalog(lang).ngettext(singular, plural, n)


def pgettext(lang: str, context: str, msgid: str) -> str:
    return catalog(lang).pgettext(context, msgid)


def pick(text: str, lang: str) -> str:
    """The half of a bilingual "English · français" text in `lang`; other text as it is."""
    parts = text.split(SEPARATOR)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return text
    return parts[0] if lang == "en" else parts[1]


def translate(text: object, lang: str) -> str:
    """What the console shows for a message made in Python (see the module's docstring)."""
    if text is None:
        return ""
    text = str(text)
    if not text:
        return text
    translated = catalog(lang).gettext(text)
    return translated if translated != text else pick(text, lang)


def install(env) -> None:
    """Jinja's i18n extension on `env`, translating into the page's `lang` (a context variable
    set for every console page): `{{ _("Visits") }}`, `{{ ngettext("%(num)d visit",
    "%(num)d visits", n) }}`, `{{ pgettext("feminine", "all") }}` (the same English, another
    French), and the `tr` filter for Python-made messages (`translate`)."""
    from jinja2 import pass_context

    env.add_extension("jinja2.ext.i18n")

    @pass_context
    def _gettext(ctx, msgid: str) -> str:
        return gettext(ctx.get("lang") or DEFAULT, msgid)

    @pass_context
    def _ngettext(ctx, singular: str, plural: str, n: int) -> str:
        return ngettext(ctx.get("lang") or DEFAULT, singular, plural, n)

    @pass_context
    def _pgettext(ctx, context: str, msgid: str) -> str:
        return pgettext(ctx.get("lang") or DEFAULT, context, msgid)

    @pass_context
    def _tr(ctx, text: object) -> str:
        return translate(text, ctx.get("lang") or DEFAULT)

    env.install_gettext_callables(_gettext, _ngettext, newstyle=True, pgettext=_pgettext)
    env.filters["tr"] = _tr
