"""Badges on NTAG21x tags through a PN532 on a serial port (HSU), with the firmware's own
driver (firmware/drivers) over pyserial's serial_for_url: write a client's token as an NDEF
Text record (plus an optional URI), read it back, check it.

Before writing, the token is checked: offline, its shape (a TG1 token whole, its 16-character
signature well formed); with the fleet (`check_with_fleet`, an API key) or its database
(`check_with_db`), that the fleet issued it and it is the client's active tag (for a TG1 token,
its signature verified with the organisation's secret). A tag already holding another token is
replaced only when the caller confirms (or forces)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware import ndef
from firmware.drivers import ntag
from firmware.drivers.pn532 import PN532, PN532Error, PN532Timeout
from firmware.drivers.pn532_uart import PN532UART
from fleet import tagtokens
from tools.errors import TelegestError
from tools.field.ports import open_port


class BadgeError(TelegestError):
    pass


@dataclass
class Badge:
    uid: str
    records: list[dict]

    @property
    def token(self) -> str | None:
        for r in self.records:
            if r["type"] == "text":
                return r["text"]
        return None


class Reader:
    """A PN532 on `url`, begun; use as a context manager."""

    def __init__(self, url: str, baud: int = 115200):
        self.url = url
        self.port = open_port(url, baud, timeout=0)
        self.pn = PN532(PN532UART(self.port))
        try:
            self.pn.begin()
            self.version = "PN532 v%d.%d" % self.pn.get_firmware_version()[1:3]
        except PN532Error as e:
            self.port.close()
            raise BadgeError(
                f"no PN532 answers on {url} ({e}): check the reader's wiring (TX to RX, RX to "
                "TX, 3.3 V), its switches (HSU: SEL0 off, SEL1 off) and the baud rate "
                "(115200)") from e

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.port.close()

    def wait_tag(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            try:
                uid = self.pn.list_target()
            except PN532Error as e:
                raise BadgeError(f"the reader failed while looking for a tag: {e}") from e
            if uid:
                return uid
            if time.monotonic() >= deadline:
                raise BadgeError(f"no tag on the reader after {timeout:g} s: lay the badge flat "
                                 "on the antenna and run again")
            time.sleep(0.1)


def _describe(records: list[ndef.Record]) -> list[dict]:
    out = []
    for r in records:
        try:
            lang, text = ndef.decode_text(r)
            out.append({"type": "text", "lang": lang, "text": text})
            continue
        except ndef.NdefError:
            pass
        try:
            out.append({"type": "uri", "uri": ndef.decode_uri(r)})
        except ndef.NdefError:
            out.append({"type": "other", "tnf": r.tnf, "rtype": bytes(r.type).hex(),
                        "payload": bytes(r.payload).hex()})
    return out


def read_badge(url: str, timeout: float = 10.0, baud: int = 115200) -> Badge:
    with Reader(url, baud) as reader:
        uid = reader.wait_tag(timeout)
        try:
            records = ndef.decode_message(ntag.read_message(reader.pn))
        except ndef.NdefError as e:
            raise BadgeError(f"tag {uid.hex().upper()} holds no readable NDEF message ({e}): "
                             "write it again with `telegest badge write`") from e
        except PN532Error as e:
            raise BadgeError(_moved(e)) from e
        return Badge(uid.hex().upper(), _describe(records))


def check_token(token: str) -> str:
    """The token stripped, or BadgeError: what can be checked without the fleet."""
    token = token.strip()
    if not 1 <= len(token) <= 64:
        raise BadgeError("a token has 1 to 64 characters; nothing was written")
    if tagtokens.looks_signed(token) and tagtokens.parse(token) is None:
        raise BadgeError(f"{token!r} is not a whole TG1 token (TG1.<org>.<client>.<serial>."
                         "<16 characters of signature, A-Z and 2-7>): copy it again from the "
                         "console or `telegest fleet badge list`; nothing was written")
    return token


def check_with_db(db_url: str, token: str) -> None:
    """The fleet's database holds this token as an active client tag; a TG1 token's signature
    is verified with its organisation's secret. BadgeError otherwise."""
    from sqlalchemy import select

    from fleet.db import make_engine, session_factory
    from fleet.models import Badge as BadgeRow
    from fleet.models import Organisation

    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            parsed = tagtokens.parse(token)
            if parsed is not None:
                org = session.get(Organisation, parsed.organisation_id)
                if org is None:
                    raise BadgeError(f"token {token!r} names organisation "
                                     f"{parsed.organisation_id}, unknown to this fleet; "
                                     "nothing was written")
                wrong = tagtokens.verify(org.tag_secret, org.id, token)
                if wrong:
                    raise BadgeError(f"token {token!r} refused: {wrong}; nothing was written")
            row = session.scalars(select(BadgeRow).where(BadgeRow.uid == token,
                                                         BadgeRow.kind == "client_tag")).first()
            _check_row(token, None if row is None else {"active": row.active,
                                                        "revoke_reason": row.revoke_reason})
    finally:
        engine.dispose()


def check_with_fleet(api, token: str) -> None:
    """The same through the fleet's API (`api` is a tools.field.provision.FleetApi): the fleet
    knows the token as an active client tag (it verified the signature when it issued it)."""
    from urllib.parse import quote

    code, page = api.call("GET", f"/api/v1/badges?kind=client_tag&uid={quote(token)}")
    if code == 401:
        raise BadgeError("the fleet refused the API key (401): check --api-key")
    if code != 200:
        raise BadgeError(f"the fleet answered {code} when asked about the token: "
                         f"{page.get('detail')}; nothing was written")
    items = page.get("items") or []
    _check_row(token, items[0] if items else None)


def _check_row(token: str, row: dict | None) -> None:
    if row is None:
        raise BadgeError(f"the fleet issued no client tag with token {token!r} (mistyped, or "
                         "not from this fleet): copy it from the console or `telegest fleet "
                         "badge list`; nothing was written")
    if not row["active"]:
        raise BadgeError(f"token {token!r} was revoked ({row.get('revoke_reason') or 'no reason'}"
                         "): write the client's current token instead; nothing was written")


def current_token(reader: Reader) -> str | None:
    """The token the tag on the reader holds now (None: blank or unreadable)."""
    try:
        records = _describe(ndef.decode_message(ntag.read_message(reader.pn)))
    except (ndef.NdefError, PN532Error, ValueError, IndexError):
        return None
    return Badge("", records).token


def write_badge(url: str, token: str, uri: str | None = None, lang: str = "fr",
                timeout: float = 10.0, baud: int = 115200, *,
                replace: Callable[[str], bool] | None = None) -> Badge:
    """Write `token` (and `uri`) on the tag, read it back and compare. A tag holding another
    token is replaced only if `replace(old_token)` says yes (None: refuse)."""
    token = check_token(token)
    try:
        records = [ndef.text_record(token, lang)] + ([ndef.uri_record(uri)] if uri else [])
        message = ndef.encode_message(records)
    except ndef.NdefError as e:
        raise BadgeError(f"cannot make the badge's record: {e}; nothing was written") from e
    with Reader(url, baud) as reader:
        uid = reader.wait_tag(timeout)
        old = current_token(reader)
        if old is not None and old != token and not (replace and replace(old)):
            raise BadgeError(f"badge {uid.hex().upper()} already holds another token {old!r}: "
                             "nothing was written. Is it the right badge? To replace its "
                             "token, run again with --force")
        try:
            ntag.write_message(reader.pn, message)
            back = ntag.read_message(reader.pn)
        except ndef.NdefError as e:
            raise BadgeError(f"cannot write this tag: {e}") from e
        except PN532Error as e:
            raise BadgeError(_moved(e)) from e
        if bytes(back) != bytes(message):
            raise BadgeError("the tag reads back something else than what was written: keep "
                             "it on the reader and write again")
        return Badge(uid.hex().upper(), _describe(records))


def _moved(e: PN532Error) -> str:
    what = "the reader stopped answering" if isinstance(e, PN532Timeout) else str(e)
    return (f"the tag exchange failed ({what}): the badge probably moved. Keep it flat on the "
            "reader and run again (a half-written badge is fixed by writing it again)")
