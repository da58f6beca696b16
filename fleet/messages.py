"""Messages between the office and the caregivers: one data layer for the console, the API
(`/api/v1/messages`) and the device gateway (`/gw/v1/messages`).

To caregivers: one, a chosen set (the agency's team, sector or round: the model has no teams,
so the office picks the people) or everyone active in the agency; optionally *mandatory*: the
phone shows it before anything else until "J'ai lu". Each recipient row says when the message
reached the phone (`delivered_at`), was opened (`read_at`) and acknowledged
(`acknowledged_at`). From a caregiver: a subject, a text, optionally about one of their visits;
it lands in the console's inbox and is e-mailed to the agency's coordinators (its managers,
else its on-call addresses) through the outbox, in the same transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fleet import audit, outbox, webpush
from fleet.models import (AlertSettings, Caregiver, Client, Device, Message, MessageRecipient,
                          Organisation, User, Visit)
from fleet.types import utcnow
from fleet.visit_alerts import oncall_addresses

SUBJECT_MAX = 200
BODY_MAX = 4000
REF_MAX = 64
PHONE_DAYS = 30  # a phone gets the messages of the last 30 days (and any mandatory one unread)
PHONE_MAX = 50


class MessageProblem(ValueError):
    """What the sender must fix; `status` is the HTTP answer (422, or 404 for a thing that is
    not the sender's to name). The message says why (EN · FR)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status


def _text(subject: str, body: str) -> tuple[str, str]:
    subject, body = (subject or "").strip(), (body or "").strip()
    if not subject:
        raise MessageProblem("subject", "a subject is needed · l'objet est vide")
    if len(subject) > SUBJECT_MAX:
        raise MessageProblem("subject", f"at most {SUBJECT_MAX} characters · "
                                        f"{SUBJECT_MAX} caractères au plus")
    if not body:
        raise MessageProblem("body", "the message is empty · le message est vide")
    if len(body) > BODY_MAX:
        raise MessageProblem("body", f"at most {BODY_MAX} characters · "
                                     f"{BODY_MAX} caractères au plus")
    return subject, body


def announce(session: Session, message: Message, caregiver_ids: list[int]) -> None:
    """Where a message to caregivers is created, after its recipients are written and in the
    same transaction: a Web Push notification to each of their subscribed phones (fleet.webpush,
    the outbox's webpush channel). A phone without push still gets the message at its next
    sync."""
    title = "Message obligatoire" if message.mandatory else "Nouveau message"
    for caregiver_id in caregiver_ids:
        webpush.notify_caregiver(session, caregiver_id, "message", title, message.subject,
                                 "/app/#/messages", dedupe=f"message:{message.id}:{caregiver_id}")


def send_to_caregivers(session: Session, org: Organisation, *, subject: str, body: str,
                       caregiver_ids: list[int] | None, mandatory: bool = False, who: str,
                       role: str | None, user_id: int | None = None) -> Message:
    """`caregiver_ids` None: every active caregiver of the agency. A caregiver of another
    agency, unknown or inactive is refused (nothing written). Audited. The caller commits."""
    subject, body = _text(subject, body)
    everyone = caregiver_ids is None
    if everyone:
        ids = list(session.scalars(select(Caregiver.id).where(
            Caregiver.organisation_id == org.id, Caregiver.active).order_by(Caregiver.id)))
    else:
        ids = sorted({int(i) for i in caregiver_ids or []})
        found = set(session.scalars(select(Caregiver.id).where(
            Caregiver.id.in_(ids), Caregiver.organisation_id == org.id, Caregiver.active)))
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise MessageProblem("caregiver_ids", f"caregiver {unknown[0]} is not an active "
                                 "caregiver of this agency · cet intervenant n'est pas un "
                                 "intervenant actif de cette structure")
    if not ids:
        raise MessageProblem("caregiver_ids", "no recipient · aucun destinataire")
    message = Message(organisation_id=org.id, direction="to_caregivers", subject=subject,
                      body=body, mandatory=bool(mandatory), everyone=everyone, sender=who[:200],
                      sender_user_id=user_id)
    session.add(message)
    session.flush()
    session.add_all(MessageRecipient(message_id=message.id, caregiver_id=i,
                                     mandatory_read=bool(mandatory)) for i in ids)
    audit.record(session, who, "message", f"message:{message.id}", role=role,
                 detail={"to": "everyone" if everyone else ids, "mandatory": bool(mandatory),
                         "subject": subject})
    session.flush()
    announce(session, message, ids)
    return message


def coordinators(session: Session, org_id: int) -> list[str]:
    """Who gets a caregiver's message by e-mail: the agency's active managers, else its
    on-call addresses (the settings page)."""
    managers = list(session.scalars(select(User.email).where(
        User.organisation_id == org_id, User.role == "manager", User.active)
        .order_by(User.id)))
    if managers:
        return managers
    settings = session.get(AlertSettings, org_id)
    return oncall_addresses(settings.oncall_emails) if settings else []


@dataclass
class Received:
    message: Message
    created: bool  # False: the phone sent it again (same ref), nothing new was written


def from_caregiver(session: Session, device: Device, *, ref: str, subject: str, body: str,
                   visit_id: int | None = None, public_url: str = "") -> Received:
    """A message written on a phone. `ref` is the phone's own id of it: a resend (an answer
    lost on the way) finds the first one. The visit, when given, must be the caregiver's.
    E-mailed to the coordinators through the outbox. The caller commits."""
    ref = (ref or "").strip()
    if not ref or len(ref) > REF_MAX:
        raise MessageProblem("ref", f"1 to {REF_MAX} characters")
    known = session.scalars(select(Message).where(Message.device_id == device.id,
                                                  Message.ref == ref)).first()
    if known is not None:
        return Received(known, False)
    subject, body = _text(subject, body)
    visit = session.get(Visit, visit_id) if visit_id is not None else None
    if visit_id is not None and (visit is None or visit.caregiver_id != device.caregiver_id):
        raise MessageProblem("visit", "not a visit of this caregiver · intervention inconnue",
                             404)
    message = Message(organisation_id=device.organisation_id, direction="to_office",
                      subject=subject, body=body, caregiver_id=device.caregiver_id,
                      device_id=device.id, ref=ref, visit_id=visit_id)
    session.add(message)
    session.flush()
    org = session.get(Organisation, device.organisation_id)
    mail_subject, mail_body = _mail(session, org, message, visit, public_url)
    for address in coordinators(session, org.id):
        outbox.enqueue_email(session, organisation_id=org.id, to=address, subject=mail_subject,
                             body=mail_body, dedupe_key=f"message:{message.id}:{address.lower()}")
    return Received(message, True)


def _mail(session: Session, org: Organisation, message: Message, visit: Visit | None,
          public_url: str) -> tuple[str, str]:
    caregiver = session.get(Caregiver, message.caregiver_id) if message.caregiver_id else None
    name = caregiver.name if caregiver else "?"
    lines = [f"Message de {name} · Message from {name}", "", f"Objet · Subject: {message.subject}",
             ""]
    if visit is not None:
        tz = ZoneInfo(org.timezone)
        client = session.get(Client, visit.client_id)
        start = visit.planned_start.astimezone(tz)
        lines += [f"Intervention · Visit: {client.name if client else '?'}, "
                  f"{start:%d/%m/%Y %H:%M}", ""]
    lines += [message.body, "", f"{public_url.rstrip('/')}/messages/inbox"]
    return f"[telegest] {name}: {message.subject}"[:400], "\n".join(lines)


def for_phone(session: Session, caregiver_id: int, now: datetime | None = None) -> list[dict]:
    """The caregiver's messages for the phone, newest first: those of the last PHONE_DAYS days
    and any mandatory one not yet acknowledged. Those not yet delivered are marked delivered
    (the caller commits)."""
    now = now or utcnow()
    rows = session.execute(select(Message, MessageRecipient).join(
        MessageRecipient, MessageRecipient.message_id == Message.id).where(
        MessageRecipient.caregiver_id == caregiver_id,
        or_(Message.created_at >= now - timedelta(days=PHONE_DAYS),
            MessageRecipient.mandatory_read & MessageRecipient.acknowledged_at.is_(None)))
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(PHONE_MAX)).all()
    out = []
    for m, r in rows:
        if r.delivered_at is None:
            r.delivered_at = now
        out.append({"id": m.id, "subject": m.subject, "body": m.body,
                    "mandatory": r.mandatory_read, "at": int(m.created_at.timestamp()),
                    "read": _ts(r.read_at), "ack": _ts(r.acknowledged_at)})
    return out


def sent_by(session: Session, caregiver_id: int, limit: int = 10) -> list[dict]:
    """What the caregiver wrote to the office (the last `limit`), for the phone's list."""
    rows = session.scalars(select(Message).where(
        Message.caregiver_id == caregiver_id, Message.direction == "to_office")
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit))
    return [{"ref": m.ref, "subject": m.subject, "at": int(m.created_at.timestamp())}
            for m in rows]


def _ts(t: datetime | None) -> int | None:
    return int(t.timestamp()) if t else None


def mark_read(session: Session, caregiver_id: int, message_id: int, *, ack: bool,
              at: datetime | None = None) -> MessageRecipient:
    """The phone opened it (and, `ack`, the caregiver tapped "J'ai lu"); `at` is when, on the
    phone (offline, it is sent later), never in the future. Only the first time counts."""
    r = session.scalars(select(MessageRecipient).where(
        MessageRecipient.message_id == message_id,
        MessageRecipient.caregiver_id == caregiver_id)).first()
    if r is None:
        raise MessageProblem("message", "no such message for this caregiver · message inconnu",
                             404)
    now = utcnow()
    at = min(at or now, now)
    r.delivered_at = r.delivered_at or at
    r.read_at = r.read_at or at
    if ack:
        r.acknowledged_at = r.acknowledged_at or at
    return r


def receipts(session: Session, message_id: int) -> list[dict]:
    """Per recipient: name, delivered, read, acknowledged (None where not yet)."""
    rows = session.execute(select(MessageRecipient, Caregiver.name).join(
        Caregiver, Caregiver.id == MessageRecipient.caregiver_id).where(
        MessageRecipient.message_id == message_id).order_by(Caregiver.name)).all()
    return [{"caregiver_id": r.caregiver_id, "name": name, "delivered_at": r.delivered_at,
             "read_at": r.read_at, "acknowledged_at": r.acknowledged_at} for r, name in rows]


def counts(session: Session, message_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per message: recipients, delivered, read, acknowledged."""
    if not message_ids:
        return {}
    rows = session.execute(select(
        MessageRecipient.message_id, func.count(), func.count(MessageRecipient.delivered_at),
        func.count(MessageRecipient.read_at), func.count(MessageRecipient.acknowledged_at))
        .where(MessageRecipient.message_id.in_(message_ids))
        .group_by(MessageRecipient.message_id)).all()
    return {mid: {"recipients": n, "delivered": d, "read": r, "acknowledged": a}
            for mid, n, d, r, a in rows}


def listing(session: Session, org_id: int, direction: str, limit: int = 100,
            offset: int = 0) -> list[Message]:
    return list(session.scalars(select(Message).where(
        Message.organisation_id == org_id, Message.direction == direction)
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit).offset(offset)))
