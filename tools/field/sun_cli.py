"""`telegest badge sun`: verify one SUN read of an NTAG 424 DNA offline, with known keys (a
technician checking a freshly written tag, an auditor checking a read). The fleet does the same
for every clock event with each tag's own keys (fleet/sun.py)."""
from __future__ import annotations

import json
import re

from fleet import sun
from tools.errors import TelegestError

_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")


def _key(name: str, text: str) -> str:
    if not _KEY.match(text.strip()):
        raise TelegestError(f"--{name}-key takes an AES-128 key: 32 hex digits, got "
                            f"{len(text.strip())} characters")
    return text.strip()


def cmd_badge_sun(args) -> int:
    """One JSON object on stdout; exit 0 when the read is genuine, 1 when it is not."""
    result = sun.verify_url(args.url, _key("meta", args.meta_key), _key("file", args.file_key))
    print(json.dumps(result.as_json()))
    return 0 if result.valid else 1


def add_commands(badge_parsers, command) -> None:
    v = command(badge_parsers, "sun", cmd_badge_sun,
                "verify one SUN read of an NTAG 424 DNA (picc_data and cmac, AN12196) offline")
    v.add_argument("url", help="the URL the tag gave, with picc_data=... and cmac=...")
    v.add_argument("--meta-key", required=True, help="SDM meta read key (32 hex digits)")
    v.add_argument("--file-key", required=True, help="SDM file read key (32 hex digits)")
