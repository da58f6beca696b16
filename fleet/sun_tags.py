"""NTAG 424 DNA badges in the fleet: registered by chip UID, their keys derived on demand from
the organisation's SUN master key, and every SUN read in a clock event checked against the tag
it names (docs/protocol.md, "SUN tags").

The read counter of each tag must grow: a read at or below the last accepted one is a copy
played again (`replayed_tag`); a read more than SKIP_MAX past it means reads were made that
never reached the fleet, harvested to be used later (`tag_counter_skip`, the read itself is
genuine and still matches); a MAC that does not verify is `forged_tag`.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fleet import audit, sun
from fleet.badges import BadgeError, card_uid, issue
from fleet.models import Badge, Caregiver, Client, Organisation

# unaccounted reads tolerated between two accepted ones: a phone that reads the tag again after
# a failed upload, a tap abandoned on the screen. More are reads kept aside.
SKIP_MAX = 3


def chip_uid(text: str) -> str:
    uid = card_uid(text)
    if len(uid) != 14:
        raise BadgeError(422, f"an NTAG 424 DNA's UID is 7 bytes (14 hex digits), got {text!r}")
    return uid


def not_registered(session: Session, uid: str) -> None:
    """Refuse a chip already registered, before its keys are written again."""
    taken = session.scalar(select(Badge.id).where(Badge.sun_uid == uid))
    if taken is not None:
        raise BadgeError(409, f"NTAG 424 {uid} is already registered (badge {taken}): revoke "
                              "it, and personalise a new tag for its successor")


def register(session: Session, who: str, owner: Caregiver | Client, uid: str,
             counter: int | None = None, role: str | None = None,
             replaces: Badge | None = None) -> Badge:
    """A personalised NTAG 424 DNA as `owner`'s badge. `counter` is the read counter of the
    personalisation's check read, so the first read in the field must be past it."""
    uid = chip_uid(uid)
    not_registered(session, uid)
    badge = issue(session, who, owner, uid, replaces=replaces, role=role,
                  note={"ntag424": True})
    badge.sun_uid, badge.sun_counter = uid, counter
    session.flush()
    return badge


def keys_for(session: Session, who: str, org: Organisation, uid: str,
             role: str | None = None) -> sun.TagKeys:
    """The three keys to write on the tag with this UID. Each hand-out is audited: these keys
    leave the fleet (to the personalisation tool), the master key never does."""
    uid = chip_uid(uid)
    audit.record(session, who, "keys", f"ntag424:{uid}", role=role,
                 detail={"organisation": org.id})
    return sun.tag_keys(org.sun_master_key, bytes.fromhex(uid))


@dataclass
class Verdict:
    badge: Badge | None = None
    counter: int | None = None
    refused: tuple[str, str] | None = None  # (anomaly, detail): the read is not matched
    warning: tuple[str, str] | None = None  # (anomaly, detail): matched, and flagged


class Verifier:
    """Checks the SUN reads of one matching batch, in the order given (device time), keeping
    each tag's counter as it goes; the caller's flush stores the new counters."""

    def __init__(self, session: Session, orgs: dict[int, Organisation],
                 reads: list[tuple[int, str]]) -> None:
        self.orgs = orgs
        parsed = {(org, text): sun.parse_url(text) for org, text in reads}
        self.parsed = parsed
        wanted = [(org, r) for (org, _), r in parsed.items() if isinstance(r, sun.SunRead)]
        self.badges: dict[tuple[int, str | None, int | None], list[Badge]] = {}
        if not wanted:
            return
        conds = [(Badge.organisation_id == org) & (
            Badge.client_id == r.ref if r.kind == "client" else Badge.caregiver_id == r.ref)
            for org, r in wanted if r.ref is not None]
        stmt = select(Badge).where(Badge.sun_uid.is_not(None),
                                   or_(*conds) if conds else Badge.id.is_(None))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()  # two workers never accept the same counter
        for b in session.scalars(stmt.order_by(Badge.id)):
            kind = "client" if b.kind == "client_tag" else "caregiver"
            ref = b.client_id if kind == "client" else b.caregiver_id
            self.badges.setdefault((b.organisation_id, kind, ref), []).append(b)

    def check(self, org_id: int, text: str) -> Verdict:
        read = self.parsed[(org_id, text)]
        if isinstance(read, str):
            return Verdict(refused=("forged_tag", f"SUN read refused: {read}"))
        if read.ref is None:
            return Verdict(refused=("unknown_badge", "SUN read without a c= or g= reference: "
                                                     "not a tag written by telegest"))
        what = f"{read.kind} {read.ref}"
        candidates = self.badges.get((org_id, read.kind, read.ref), [])
        if not candidates:
            return Verdict(refused=("unknown_badge", f"no NTAG 424 registered for {what}"))
        master = self.orgs[org_id].sun_master_key
        for b in candidates:  # a client's tags (a replaced one too): the UID tells which
            keys = sun.tag_keys(master, bytes.fromhex(b.sun_uid))
            result = sun.check(read, keys.meta, keys.file)
            if result.uid is None or result.uid != b.sun_uid:
                continue
            if not result.valid:
                return Verdict(refused=("forged_tag", f"NTAG 424 {b.sun_uid} (badge {b.id}) "
                                                      f"read {result.counter}: {result.reason}"))
            return self._counted(b, result.counter)
        return Verdict(refused=("forged_tag", f"picc_data is not the read of any NTAG 424 "
                                              f"registered for {what} (made up, or another "
                                              f"tag's)"))

    @staticmethod
    def _counted(b: Badge, counter: int) -> Verdict:
        last = b.sun_counter
        if last is not None and counter <= last:
            return Verdict(b, counter, refused=(
                "replayed_tag", f"NTAG 424 {b.sun_uid} (badge {b.id}) read {counter} again: "
                f"{'the same read as' if counter == last else 'older than'} the last accepted "
                f"({last}); a copied URL, or a read kept and sent late"))
        b.sun_counter = counter
        if last is not None and counter - last > SKIP_MAX:
            return Verdict(b, counter, warning=(
                "tag_counter_skip", f"NTAG 424 {b.sun_uid} (badge {b.id}) read {counter} after "
                f"{last}: {counter - last - 1} reads never reached the fleet (more than "
                f"{SKIP_MAX - 1}); reads made and kept aside?"))
        return Verdict(b, counter)
