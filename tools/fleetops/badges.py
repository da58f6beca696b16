"""`telegest fleet badge list|issue|replace|revoke|restore`: caregiver cards and client tags.

Thin handlers over fleet.badges on the database directly, like `telegest fleet device`: the
same checks and audit entries as the API and the console (`--by` names you in the audit log).
`issue` and `replace` can print the new client tag's QR sheet at once (`--sheet PDF`); write the
token on an NTAG with `telegest badge write PORT TOKEN`.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from tools.errors import TelegestError
from tools.fleetops.cli import _print, _session


def _row(b, owner: str) -> dict:
    return {"id": b.id, "kind": b.kind, "owner": owner, "uid": b.uid, "signed": b.signed,
            "active": b.active, "revoked_at": b.revoked_at.isoformat() if b.revoked_at else None,
            "revoke_reason": b.revoke_reason, "replaces": b.replaces_id}


def _owner_name(session, b) -> str:
    from fleet.models import Caregiver, Client

    owner = (session.get(Caregiver, b.caregiver_id) if b.kind == "caregiver_card"
             else session.get(Client, b.client_id))
    return owner.name if owner else "?"


def _acting(args, act: Callable) -> int:
    """Run `act(session, who)` -> badge; commit; print it (and its QR sheet if asked)."""
    from fleet.badges import BadgeError

    if not args.by.strip():
        raise TelegestError("--by: say who you are (it goes to the audit log)")
    with _session(args.db) as session:
        try:
            badge = act(session, f"cli:{args.by.strip()}")
        except BadgeError as e:
            session.rollback()
            raise TelegestError(f"{e.message} [{e.status}]") from None
        session.commit()
        row = _row(badge, _owner_name(session, badge))
    if getattr(args, "sheet", None):
        if badge.kind != "client_tag":
            raise TelegestError("--sheet prints client tags; a caregiver card has no QR code")
        from tools.field.sheet import BadgeLabel, badge_sheet

        badge_sheet([BadgeLabel(row["owner"], row["uid"])], args.sheet)
        row["sheet"] = args.sheet
    _print(row, True)
    return 0


def _badge(session, badge_id: int):
    from fleet.models import Badge

    badge = session.get(Badge, badge_id)
    if badge is None:
        raise TelegestError(f"badge {badge_id} not found: `telegest fleet badge list`")
    return badge


def cmd_list(args) -> int:
    from sqlalchemy import select

    from fleet.models import Badge

    with _session(args.db) as session:
        stmt = select(Badge).order_by(Badge.id)
        for col, val in ((Badge.kind, args.kind), (Badge.client_id, args.client_id),
                         (Badge.caregiver_id, args.caregiver_id)):
            if val is not None:
                stmt = stmt.where(col == val)
        if not args.all:
            stmt = stmt.where(Badge.active)
        rows = [_row(b, _owner_name(session, b)) for b in session.scalars(stmt)]
    if args.json:
        _print(rows, True)
        return 0
    for r in rows:
        state = "active" if r["active"] else f"revoked {r['revoked_at'][:16]} ({r['revoke_reason']})"
        kind = "card" if r["kind"] == "caregiver_card" else (
            "tag" if r["signed"] else "tag (imported, unsigned)")
        print(f"{r['id']:>5}  {kind:<24} {r['owner']:<24} {r['uid']}  {state}")
    print(f"{len(rows)} badge(s)")
    return 0


def cmd_issue(args) -> int:
    from fleet import badges

    if (args.client_id is None) == (args.caregiver_id is None):
        raise TelegestError("give --client-id (a client tag) or --caregiver-id with --uid "
                            "(a caregiver card)")
    kind = "client_tag" if args.client_id is not None else "caregiver_card"

    def act(session, who):
        owner = badges.owner_of(session, kind, args.caregiver_id, args.client_id)
        return badges.issue(session, who, owner, args.uid, role="admin")
    return _acting(args, act)


def cmd_replace(args) -> int:
    from fleet import badges

    return _acting(args, lambda s, who: badges.replace(s, who, _badge(s, args.id), args.reason,
                                                       args.uid, role="admin"))


def cmd_revoke(args) -> int:
    from fleet import badges

    return _acting(args, lambda s, who: badges.revoke(s, who, _badge(s, args.id), args.reason,
                                                      role="admin"))


def cmd_restore(args) -> int:
    from fleet import badges

    return _acting(args, lambda s, who: badges.restore(s, who, _badge(s, args.id),
                                                       role="admin"))


def add_commands(fleet_parsers, command: Callable[..., argparse.ArgumentParser],
                 common: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `badge ...` under `telegest fleet`."""
    bdg = fleet_parsers.add_parser(
        "badge", help="caregiver cards and client tags: issue, replace, revoke",
        description="caregiver cards and client tags (signed tokens), on the database "
                    "directly").add_subparsers(dest="badge_cmd", required=True)
    ls = common(command(bdg, "list", cmd_list, "the badges, active ones unless --all"))
    ls.add_argument("--kind", choices=["caregiver_card", "client_tag"])
    ls.add_argument("--client-id", type=int)
    ls.add_argument("--caregiver-id", type=int)
    ls.add_argument("--all", action="store_true", help="revoked ones too")
    ls.add_argument("--json", action="store_true")
    iss = common(command(bdg, "issue", cmd_issue, "a client tag with a new signed token "
                         "(--client-id), or a caregiver card (--caregiver-id --uid)"),
                 acting=True)
    iss.add_argument("--client-id", type=int)
    iss.add_argument("--caregiver-id", type=int)
    iss.add_argument("--uid", help="the card's UID; for a tag, an existing tag's text to "
                                   "import (unsigned)")
    iss.add_argument("--sheet", metavar="PDF", help="also write the tag's QR sheet")
    rep = common(command(bdg, "replace", cmd_replace, "revoke a badge and issue its "
                         "successor (a new signed token, or --uid for a new card)"), acting=True)
    rep.add_argument("id", type=int)
    rep.add_argument("--reason", required=True, help="lost, stolen, copied, worn...")
    rep.add_argument("--uid", help="the new card's UID")
    rep.add_argument("--sheet", metavar="PDF", help="also write the new tag's QR sheet")
    rev = common(command(bdg, "revoke", cmd_revoke, "the badge no longer clocks in"),
                 acting=True)
    rev.add_argument("id", type=int)
    rev.add_argument("--reason", required=True)
    res = common(command(bdg, "restore", cmd_restore, "a revoked badge found again"),
                 acting=True)
    res.add_argument("id", type=int)
