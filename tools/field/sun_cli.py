"""NTAG 424 DNA commands: `telegest badge sun` verifies one SUN read offline with known keys (a
technician checking a tag, an auditor checking a read; the fleet does the same for every clock
event with each tag's own keys, fleet/sun.py); `telegest badge write --ntag424` personalises a
blank tag through a PN532 and registers it, on the fleet's database directly like `telegest
fleet badge` (the keys are derived there from the organisation's master key, written to the tag
and never printed)."""
from __future__ import annotations

import json
import re
import sys

from firmware.drivers.pn532 import PN532Error

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


def cmd_badge_write_ntag424(args) -> int:
    from fleet import sun, sun_tags
    from fleet.badges import BadgeError, owner_of
    from fleet.models import Organisation
    from tools.field.badge import Reader
    from tools.field.ntag424 import Ntag424Error, Ntag424Link, personalise
    from tools.fleetops.cli import _session

    if args.token is not None:
        raise TelegestError("--ntag424 writes a SUN URL, not a token: drop the token")
    if (args.client_id is None) == (args.caregiver_id is None):
        raise TelegestError("--ntag424: give --client-id (a client's tag) or --caregiver-id "
                            "(a caregiver's card)")
    if not args.url.startswith(("https://", "http://")):
        raise TelegestError(f"--url {args.url!r}: the address phones open, https://...")
    if not (args.by or "").strip():
        raise TelegestError("--by: say who you are (it goes to the audit log)")
    who = f"cli:{args.by.strip()}"
    kind = "client_tag" if args.client_id is not None else "caregiver_card"
    print("lay the blank NTAG 424 DNA on the reader...", file=sys.stderr)
    with _session(args.db or _default_db()) as session, Reader(args.port, args.baud) as reader:
        try:
            owner = owner_of(session, kind, args.caregiver_id, args.client_id)
            uid = reader.wait_tag(args.timeout)
            uid_hex = sun_tags.chip_uid(uid.hex())
            sun_tags.not_registered(session, uid_hex)
            org = session.get(Organisation, owner.organisation_id)
            keys = sun_tags.keys_for(session, who, org, uid_hex)
            session.commit()  # the hand-out stays in the audit log even if the tag moves
            url = sun.template(args.url, "client" if kind == "client_tag" else "caregiver",
                               owner.id)
            link = Ntag424Link(reader.pn.apdu)
            try:
                link.select_ndef()
            except (PN532Error, Ntag424Error):
                raise TelegestError(f"tag {uid.hex().upper()} does not answer as an NTAG 424 "
                                    "DNA (ISO 14443-4, NDEF application): an NTAG21x is "
                                    "written without --ntag424") from None
            done = personalise(link, uid, keys, url)
            badge = sun_tags.register(session, who, owner, uid_hex, done.counter)
        except BadgeError as e:
            session.rollback()
            raise TelegestError(f"{e.message} [{e.status}]") from None
        except Ntag424Error as e:
            session.rollback()
            raise TelegestError(f"tag not personalised: {e}") from None
        except PN532Error as e:
            session.rollback()
            raise TelegestError(f"the tag exchange failed ({e}): keep the tag on the reader "
                                "and run again (a tag cut short is personalised again)") from None
        session.commit()
        print(json.dumps({"badge": badge.id, "kind": kind, "uid": uid_hex, "url": done.url,
                          "counter": done.counter}))
    return 0


def add_write_options(w) -> None:
    """`telegest badge write --ntag424 ...` (tools/field/cli.py's write command)."""
    w.add_argument("--ntag424", action="store_true",
                   help="personalise a blank NTAG 424 DNA for SUN (no token): keys from the "
                        "fleet, URL with picc_data and cmac, then register it")
    w.add_argument("--client-id", type=int, help="with --ntag424: the client's tag")
    w.add_argument("--caregiver-id", type=int, help="with --ntag424: the caregiver's card")
    w.add_argument("--url", default="https://telegest.invalid/s",
                   help="with --ntag424: the address the tag's URL starts with")
    w.add_argument("--by", help="with --ntag424: who you are, for the audit log")


def _default_db() -> str:
    import os

    return os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")


def add_commands(badge_parsers, command) -> None:
    v = command(badge_parsers, "sun", cmd_badge_sun,
                "verify one SUN read of an NTAG 424 DNA (picc_data and cmac, AN12196) offline")
    v.add_argument("url", help="the URL the tag gave, with picc_data=... and cmac=...")
    v.add_argument("--meta-key", required=True, help="SDM meta read key (32 hex digits)")
    v.add_argument("--file-key", required=True, help="SDM file read key (32 hex digits)")
