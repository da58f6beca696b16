"""Invitations and password resets: a one-time link, sent by e-mail, to set a console password.

An admin invites anyone, to any role and organisation; a manager invites managers and
technicians of their own organisation only. The link (`/invite/<token>`) is valid 7 days for an
invitation and 24 hours for a reset, works once, and a newer link to the same address makes the
older ones void. Only the token's sha256 is stored; the e-mail goes through the outbox (SMTP,
fleet.outbox), committed with the invitation. Accepting creates the user (fleet.console.users,
which checks the password rules) or sets the new password (which ends the user's sessions).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fleet import audit, outbox
from fleet.console import users
from fleet.console.auth import AuthError
from fleet.models import ROLES, Invitation, Organisation, User
from fleet.types import utcnow

INVITE_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=24)
TOKEN_PREFIX = "tgi_"


class InvitationError(Exception):
    """Refused: the message says why, in English and French."""


@dataclass(frozen=True)
class Inviter:
    who: str                     # `user:alice@agency.fr`
    role: str                    # admin | manager
    organisation_id: int | None  # None: every organisation (an admin of the fleet)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def may_manage(inviter: Inviter, role: str, organisation_id: int | None) -> bool:
    """Whether `inviter` may invite, disable or reset someone of this role and organisation:
    an admin anyone, a manager managers and technicians; both within their organisation, or
    anywhere when their account is of no organisation (it sees them all)."""
    mine = inviter.organisation_id is None or organisation_id == inviter.organisation_id
    if inviter.role == "admin":
        return mine
    return inviter.role == "manager" and role in ("manager", "technician") and mine


def _issue(session: Session, purpose: str, email: str, role: str, organisation_id: int | None,
           by: str, ttl: timedelta, now: datetime) -> str:
    session.execute(update(Invitation).where(
        Invitation.email == email, Invitation.used_at.is_(None),
        Invitation.expires_at > now).values(expires_at=now))  # older links void
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    session.add(Invitation(token_hash=_hash(token), purpose=purpose, email=email, role=role,
                           organisation_id=organisation_id, created_by=by, created_at=now,
                           expires_at=now + ttl))
    return token


def invite(session: Session, inviter: Inviter, email: str, role: str,
           organisation_id: int | None, link, *, now: datetime | None = None) -> str:
    """Invite `email` as `role`; e-mails the link (`link(path)` makes the absolute URL from
    the configured public address). Returns the token; the caller commits."""
    now = now or utcnow()
    email = email.strip().lower()
    if not users.EMAIL.match(email):
        raise InvitationError(f"{email!r} is not an e-mail address · adresse invalide")
    if role not in ROLES:
        raise InvitationError(f"role must be one of {', '.join(ROLES)} · rôle inconnu")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise InvitationError(f"organisation {organisation_id} not found · structure inconnue")
    if not may_manage(inviter, role, organisation_id):
        raise InvitationError(f"a {inviter.role} may not invite a {role} here · vous ne pouvez "
                              "pas inviter ce rôle ici")
    if users.find_user(session, email) is not None:
        raise InvitationError(f"{email} already has an account: reset its password instead · "
                              f"{email} a déjà un compte : réinitialisez son mot de passe")
    token = _issue(session, "invite", email, role, organisation_id, inviter.who, INVITE_TTL,
                   now)
    org = session.get(Organisation, organisation_id) if organisation_id else None
    where = org.name if org else "telegest"
    outbox.enqueue_email(
        session, organisation_id=organisation_id, to=email, dedupe_key=None, now=now,
        subject=f"Invitation to telegest ({where}) · Invitation à telegest",
        body=(f"You are invited to the telegest console of {where} as {role}.\n"
              f"Choose your password here within 7 days (the link works once):\n"
              f"{link('/invite/' + token)}\n\n"
              f"Vous êtes invité(e) à la console telegest de {where} ({role}).\n"
              f"Choisissez votre mot de passe ici sous 7 jours (lien à usage unique).\n"))
    audit.record(session, inviter.who, "invite", f"user:{email}", role=inviter.role,
                 detail={"role": role, "organisation_id": organisation_id,
                         "expires_at": (now + INVITE_TTL).isoformat()})
    return token


def reset(session: Session, inviter: Inviter, email: str, link, *,
          now: datetime | None = None) -> str:
    """A password-reset link for an existing, active user, e-mailed; the current password
    keeps working until the link is used. Returns the token; the caller commits."""
    now = now or utcnow()
    user = users.find_user(session, email)
    if user is None:
        raise InvitationError(f"no user {email.strip().lower()} · utilisateur inconnu")
    if not may_manage(inviter, user.role, user.organisation_id):
        raise InvitationError("you may not reset this user's password · vous ne pouvez pas "
                              "réinitialiser ce compte")
    if not user.active:
        raise InvitationError(f"{user.email} is disabled: enable the account first · compte "
                              "désactivé : réactivez-le d'abord")
    token = _issue(session, "reset", user.email, user.role, user.organisation_id, inviter.who,
                   RESET_TTL, now)
    outbox.enqueue_email(
        session, organisation_id=user.organisation_id, to=user.email, dedupe_key=None, now=now,
        subject="Your telegest password · Votre mot de passe telegest",
        body=(f"A new password was requested for your telegest account ({user.email}).\n"
              f"Choose it here within 24 hours (the link works once):\n"
              f"{link('/invite/' + token)}\n\n"
              f"Un nouveau mot de passe a été demandé pour votre compte telegest.\n"
              f"Choisissez-le ici sous 24 heures (lien à usage unique).\n"))
    audit.record(session, inviter.who, "password_reset", f"user:{user.email}",
                 role=inviter.role, detail={"expires_at": (now + RESET_TTL).isoformat()})
    return token


def find(session: Session, token: str, *, now: datetime | None = None) -> Invitation:
    """The invitation this token opens, or InvitationError (unknown, used, expired)."""
    now = now or utcnow()
    inv = session.scalars(select(Invitation).where(
        Invitation.token_hash == _hash(token or ""))).first()
    if inv is None:
        raise InvitationError("This link is not valid · Ce lien n'est pas valide")
    if inv.used_at is not None:
        raise InvitationError("This link was already used · Ce lien a déjà servi")
    if inv.expires_at <= now:
        raise InvitationError("This link has expired: ask for a new one · Ce lien a expiré : "
                              "demandez-en un nouveau")
    return inv


def accept(session: Session, token: str, password: str, again: str, *,
           now: datetime | None = None) -> User:
    """Use the link: creates the invited user, or sets the new password. The caller commits."""
    now = now or utcnow()
    inv = find(session, token, now=now)
    if password != again:
        raise InvitationError("the two passwords differ · les deux mots de passe diffèrent")
    who = f"invitation:{inv.id}"
    try:
        if inv.purpose == "invite":
            if users.find_user(session, inv.email) is not None:
                raise InvitationError(f"{inv.email} already has an account · a déjà un compte")
            user = users.create_user(session, inv.email, inv.role, password,
                                     organisation_id=inv.organisation_id, by=who)
        else:
            user = users.find_user(session, inv.email)
            if user is None or not user.active:
                raise InvitationError("This account is disabled · Ce compte est désactivé")
            users.set_password(session, user.email, password, by=who)
    except AuthError as e:
        raise InvitationError(str(e)) from None
    inv.used_at = now
    return user
