"""One-off helper (kept for branches still carrying bilingual labels): turns each
"English · Français" label of the console's templates into `{{ _("English") }}` and records
English → French in a JSON file, for fleet/locale/fr/LC_MESSAGES/messages.po.

    python scripts/i18n_convert.py fleet/console/templates/*.html --pairs /tmp/pairs.json

Only plain cases are rewritten: a text between tags, an attribute value, a string literal in a
Jinja expression, each with exactly one " · " and text on both sides. Everything else is listed
as `MANUAL` (a sentence around a `{{ value }}`, several separators) and left alone; a " · " with
nothing on one side is a separator and stays. Read the diff of every template afterwards.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

SEP = " · "
# the same English with another French: a gettext context (pgettext) keeps both
CONTEXTS = {
    ("Inbox", "Messages des intervenants"): "page title",
    ("Call-backs", "Rappels demandés"): "page title",
    ("Outbox", "Boîte d'envoi"): "page title",
    ("Sign in", "Connexion"): "page title",
    ("all", "toutes"): "feminine",
    ("revoked", "révoquée"): "feminine",
    ("None yet", "Aucune"): "feminine",
    ("disabled", "désactivée"): "feminine",
    ("Last seen", "Dernière activité"): "session",
    ("Done", "Traités"): "heading",
    ("Done", "Traité"): "column",
    ("From", "De"): "sender",
    ("From", "À partir du"): "starting",
    ("To", "Destinataire"): "recipient",
    ("To", "À"): "whom",
    ("Télétransmission identifier", "Identifiant"): "column",
    ("Sent", "Envoyés"): "heading",
    ("Sent", "Envoyée"): "invitation",
    ("Acknowledged", "« J'ai lu »"): "message",
    ("Open", "Ouvrir"): "review",
    ("Enable", "Réactiver"): "account",
}
LEAD = "—–:;,· \n\t"
TRAIL = ".,;:—– \n\t"


def tokens(src: str):
    """(kind, text) with kind in text, expr ({{ }}), stmt ({% %}, {# #}), tag (<...>)."""
    i, n, buf = 0, len(src), []

    def flush():
        if buf:
            yield_.append(("text", "".join(buf)))
            buf.clear()

    yield_: list[tuple[str, str]] = []
    while i < n:
        two = src[i:i + 2]
        if two in ("{{", "{%", "{#"):
            end = {"{{": "}}", "{%": "%}", "{#": "#}"}[two]
            j = src.index(end, i + 2) + 2
            flush()
            yield_.append(("expr" if two == "{{" else "stmt", src[i:j]))
            i = j
        elif src[i] == "<" and i + 1 < n and (src[i + 1].isalpha() or src[i + 1] in "/!"):
            j = i + 1
            while src[j] != ">":
                if src[j:j + 2] in ("{{", "{%"):
                    j = src.index("}}" if src[j + 1] == "{" else "%}", j + 2) + 2
                else:
                    j += 1
            flush()
            yield_.append(("tag", src[i:j + 1]))
            i = j + 1
        else:
            buf.append(src[i])
            i += 1
    flush()
    return yield_


def literal(s: str) -> str | None:
    if '"' not in s:
        return f'"{s}"'
    if "'" not in s:
        return f"'{s}'"
    return None


def split_pair(text: str):
    """(prefix, en, fr, suffix) or None."""
    if text.count(SEP) != 1:
        return None
    left, right = text.split(SEP)
    en, fr = left.lstrip(LEAD), right.rstrip(TRAIL)
    prefix, suffix = left[:len(left) - len(en)], right[len(fr):]
    en, fr = " ".join(en.split()), " ".join(fr.split())
    if en.startswith("(") and en.count("(") > en.count(")"):
        prefix, en = prefix + "(", en[1:]
    while fr.endswith("(") and fr.count("(") > fr.count(")"):
        fr, suffix = fr[:-1].rstrip(), fr[len(fr[:-1].rstrip()):] + suffix
    if fr.endswith(")") and fr.count(")") > fr.count("("):
        fr, suffix = fr[:-1], ")" + suffix
    if " — " in fr and " — " not in en:  # "Today · Aujourd'hui — telegest"
        cut = fr.index(" — ")
        fr, suffix = fr[:cut], fr[cut:] + suffix
    fr = fr.rstrip(TRAIL)
    if suffix.startswith(" :"):  # French spacing: the colon goes into both strings
        en, fr, suffix = en.rstrip(":") + ":", fr + " :", suffix[2:]
    end = suffix.strip()[:1]
    if end and end in ".;:" and en.endswith(end):  # "... absence. · ... absent." once
        en = en[:-1].rstrip()
    if not en or not fr or not re.search(r"[A-Za-z]", en):
        return None
    return prefix, en, fr, suffix


def esc(s: str) -> str:
    return s.replace("%", "%%")


def call(en: str, fr: str, pairs: dict, quote: str | None = None) -> str | None:
    lit = f"{quote}{esc(en)}{quote}" if quote else literal(esc(en))
    if lit is None:
        return None
    ctx = CONTEXTS.get((en, fr))
    key = f"{ctx}\x04{esc(en)}" if ctx else esc(en)
    pairs.setdefault(key, set()).add(esc(fr))
    return f'pgettext("{ctx}", {lit})' if ctx else f"_({lit})"


def convert(src: str, pairs: dict, manual: list, name: str) -> str:
    out = []
    toks = tokens(src)
    for k, (kind, text) in enumerate(toks):
        if SEP not in text:
            out.append(text)
            continue
        if kind == "text":
            prev = toks[k - 1][0] if k else None
            got = split_pair(text)
            # a sentence around inline markup (<code>, <a>, <strong>) is one string: by hand
            before = toks[k - 1][1] if k else ""
            after = toks[k + 1][1] if k + 1 < len(toks) else ""
            if got and (re.match(r"</(code|a|strong|em|small|kbd)>", before)
                        or re.match(r"<(code|a|strong|em|kbd)[ >]", after)) \
                    and not re.match(r"\s*(\(|\[)?\s*$", text.split(SEP)[0]):
                manual.append((name, text.strip()))
                out.append(text)
                continue
            if got is None or prev == "expr":
                if text.strip(" ·\n") and text.count(SEP) >= 1 and got is None and \
                        all(part.strip() for part in text.split(SEP)):
                    manual.append((name, text.strip()))
                elif prev == "expr" and got:
                    manual.append((name, text.strip()))
                out.append(text)
                continue
            prefix, en, fr, suffix = got
            c = call(en, fr, pairs)
            if c is None:
                manual.append((name, text.strip()))
                out.append(text)
                continue
            out.append(f"{prefix}{{{{ {c} }}}}{suffix}")
        elif kind == "tag":
            def attr(m):
                value = m.group(3)
                got = split_pair(value)
                if got is None or "{" in value:
                    if got is not None:
                        manual.append((name, m.group(0)))
                    return m.group(0)
                prefix, en, fr, suffix = got
                c = None if prefix.strip() or suffix.strip() else call(en, fr, pairs)
                if c is None:
                    manual.append((name, m.group(0)))
                    return m.group(0)
                return f'{m.group(1)}={m.group(2)}{{{{ {c} }}}}{m.group(2)}'
            out.append(re.sub(r'([\w-]+)=(["\'])((?:(?!\2).)*)\2', attr, text))
        else:
            def lit_sub(m):
                got = split_pair(m.group(2))
                if got is None:
                    return m.group(0)
                prefix, en, fr, suffix = got
                if prefix.strip() or suffix.strip():
                    manual.append((name, m.group(0)))
                    return m.group(0)
                return call(en, fr, pairs, m.group(1))
            out.append(re.sub(r'(["\'])((?:(?!\1).)*)\1', lit_sub, text))
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--pairs", required=True)
    args = ap.parse_args()
    pairs: dict[str, set] = {}
    manual: list = []
    for f in args.files:
        p = Path(f)
        src = p.read_text()
        new = convert(src, pairs, manual, p.name)
        if new != src:
            p.write_text(new)
    known = {}
    if Path(args.pairs).exists():
        known = json.loads(Path(args.pairs).read_text())
    for en, frs in pairs.items():
        known.setdefault(en, [])
        for fr in sorted(frs):
            if fr not in known[en]:
                known[en].append(fr)
    Path(args.pairs).write_text(json.dumps(known, ensure_ascii=False, indent=1, sort_keys=True))
    for en, frs in known.items():
        if len(frs) > 1:
            print("CONFLICT", repr(en), frs)
    for name, text in manual:
        print("MANUAL", name, repr(text[:160]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
