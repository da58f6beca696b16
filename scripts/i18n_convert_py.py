"""One-off helper beside scripts/i18n_convert.py: in the console's Python modules, a plain string
literal "English · Français" (or several adjacent ones) becomes `N_("English")`, and English →
French goes to the JSON pairs file. f-strings stay bilingual: the console shows the half in the
page's language (fleet.i18n.translate). Adds `from fleet.i18n import N_` where needed.

    python scripts/i18n_convert_py.py fleet/console/*.py --pairs /tmp/pairs_py.json
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import sys
import textwrap
import tokenize
from pathlib import Path

SEP = " · "


def literal(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def call(en: str, col: int) -> str:
    one = f"N_({literal(en)})"
    if col + len(one) <= 99:
        return one
    parts = textwrap.wrap(en, width=max(40, 95 - col - 4), drop_whitespace=False)
    pad = " " * (col + 3)
    return "N_(" + f"\n{pad}".join(literal(p) for p in parts) + ")"


def convert(src: str, pairs: dict, manual: list, name: str) -> str:
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    lines = src.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def pos(row, col):
        return offsets[row - 1] + col

    edits = []
    i = 0
    while i < len(toks):
        if toks[i].type != tokenize.STRING:
            i += 1
            continue
        j = i
        while j + 1 < len(toks) and toks[j + 1].type in (tokenize.STRING, tokenize.NL,
                                                          tokenize.COMMENT):
            j += 1
        while toks[j].type != tokenize.STRING:
            j -= 1
        group = [t for t in toks[i:j + 1] if t.type == tokenize.STRING]
        i = j + 1
        if any(t.string[:1] in "bB" or t.string[:2].lower() in ("rb", "br") for t in group):
            continue
        if any(t.string.lstrip("rRbBuU")[:1] in "fF" or t.string[:2].lower() in ("rf", "fr")
               for t in group):
            if any(SEP in t.string for t in group):
                manual.append((name, group[0].start[0], "f-string"))
            continue
        value = "".join(ast.literal_eval(t.string) for t in group)
        if value.count(SEP) != 1 or group[0].string.startswith(('"""', "'''")):
            if SEP in value and value.count(SEP) > 1:
                manual.append((name, group[0].start[0], value[:80]))
            continue
        en, fr = (p.strip() for p in value.split(SEP))
        if not en or not fr:
            continue
        pairs.setdefault(en, [])
        if fr not in pairs[en]:
            pairs[en].append(fr)
        start, end = pos(*group[0].start), pos(*group[-1].end)
        edits.append((start, end, call(en, group[0].start[1])))
    for start, end, text in reversed(edits):
        src = src[:start] + text + src[end:]
    if edits and "from fleet.i18n import N_" not in src:
        lines = src.splitlines(keepends=True)
        k = max(n for n, line in enumerate(lines) if line.startswith(("from ", "import "))
                and not line.startswith("from __future__"))
        while lines[k].rstrip().endswith(("(", ",")) and not lines[k].rstrip().endswith(")"):
            k += 1
        lines.insert(k + 1, "from fleet.i18n import N_\n")
        src = "".join(lines)
    return src


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--pairs", required=True)
    args = ap.parse_args()
    pairs: dict = {}
    if Path(args.pairs).exists():
        pairs = json.loads(Path(args.pairs).read_text())
    manual: list = []
    for f in args.files:
        p = Path(f)
        src = p.read_text()
        new = convert(src, pairs, manual, p.name)
        if new != src:
            p.write_text(new)
    Path(args.pairs).write_text(json.dumps(pairs, ensure_ascii=False, indent=1, sort_keys=True))
    for en, frs in pairs.items():
        if len(frs) > 1:
            print("CONFLICT", repr(en), frs)
    for m in manual:
        print("MANUAL", *m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
