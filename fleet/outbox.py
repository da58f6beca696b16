"""The outbox: everything that leaves the fleet (DESIGN.md section 9).

A message is a row written in the caller's transaction (`enqueue_email`), so it exists exactly
when the change that caused it was committed; nothing depends on a process surviving between
the commit and the send. The lease holder's dispatcher (`dispatch_due`) sends what is due
through the channel's sender (the `SENDERS` table: e-mail over SMTP; Web Push, registered
by fleet.webpush; webhooks to come), retries with exponential backoff and keeps a row that failed
`outbox_max_attempts` times (or was refused for good) as a dead letter, which a manager may
send again from the console (`retry`).

Two dispatchers racing (a lease handed over mid-send) never send a row twice: a row is claimed
by one compare-and-set UPDATE (same state, same attempt count, still due) committed before the
send, which moves its next attempt past the claim's hold; the loser's UPDATE matches no row.
A dispatcher that dies mid-send leaves the row pending, tried again once the hold has passed.

An ORDERED channel (webhooks) delivers one recipient's rows in the order they were queued: a row
waits while an older row of the same recipient is pending (failed and backing off), so an
endpoint down for a while gets everything afterwards, in order. A dead letter no longer holds
the queue. A sender may read what it needs from the database before the send (`load`).
"""
from __future__ import annotations

import logging
import smtplib
import ssl
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Callable, Protocol

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from fleet import bulk
from fleet.config import Settings
from fleet.models import Outbox
from fleet.types import utcnow

log = logging.getLogger("telegest.outbox")

BATCH = 50
CLAIM_HOLD = timedelta(minutes=5)  # a claimed row is due again after this if never settled
MAX_BACKOFF = timedelta(hours=6)
SMTP_TIMEOUT_S = 20


class SendError(Exception):
    """The send failed; `permanent` ones (a 5xx refusal) are not tried again."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Letter:
    """What a sender needs of a row (read before the claim, so no ORM object crosses)."""

    id: int
    channel: str
    recipient: str
    subject: str
    body: str
    payload: dict | None
    attempts: int


class Sender(Protocol):
    def unavailable(self, settings: Settings) -> str | None:
        """Why this channel cannot send now (not configured), or None."""

    def send(self, letter: Letter, settings: Settings) -> None:
        """Deliver or raise SendError."""

    # optional: `load(session, letter) -> Letter`, the row completed from the database (or
    # SendError), called after the claim and before the send, outside any open transaction


class EmailSender:
    """Plain-text e-mail through the SMTP server of TELEGEST_SMTP_*."""

    def unavailable(self, settings: Settings) -> str | None:
        if not settings.smtp_host:
            return ("no SMTP server configured (TELEGEST_SMTP_HOST): e-mails wait in the "
                    "outbox")
        return None

    def send(self, letter: Letter, settings: Settings) -> None:
        msg = EmailMessage()
        msg["From"] = settings.smtp_from
        msg["To"] = letter.recipient
        msg["Subject"] = letter.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=f"outbox-{letter.id}", domain="telegest")
        msg.set_content(letter.body)
        try:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                              timeout=SMTP_TIMEOUT_S) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, settings.smtp_password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            code, why = next(iter(e.recipients.values()))
            raise SendError(f"{code} {_text(why)}", permanent=code >= 500) from None
        except smtplib.SMTPResponseException as e:
            raise SendError(f"{e.smtp_code} {_text(e.smtp_error)}",
                            permanent=e.smtp_code >= 500 and e.smtp_code != 530) from None
        except (smtplib.SMTPException, OSError) as e:
            raise SendError(f"{type(e).__name__}: {e}") from None


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _senders() -> dict[str, Sender]:
    from fleet.webhook_delivery import WebhookSender

    return {"email": EmailSender(), "webhook": WebhookSender()}


# channel -> sender; a channel without one keeps its rows pending
SENDERS: dict[str, Sender] = _senders()
ORDERED = {"webhook"}  # channels whose rows reach each recipient in the order queued


def enqueue(session: Session, *, channel: str, organisation_id: int | None, recipient: str,
            subject: str = "", body: str = "", payload: dict | None = None,
            dedupe_key: str | None = None, now: datetime | None = None) -> None:
    """A row in the caller's transaction; a dedupe_key already queued changes nothing."""
    # the subject on one line: it becomes a mail header
    row = {"channel": channel, "organisation_id": organisation_id, "recipient": recipient[:400],
           "subject": " ".join(subject.split())[:400], "body": body, "payload": payload,
           "dedupe_key": dedupe_key[:200] if dedupe_key else None, "state": "pending",
           "attempts": 0}
    row["next_attempt_at"] = row["created_at"] = now or utcnow()
    bulk.insert_rows(session, Outbox.__table__, [row], skip_conflicts_on=["dedupe_key"])


def enqueue_email(session: Session, *, organisation_id: int | None, to: str, subject: str,
                  body: str, dedupe_key: str | None, now: datetime | None = None) -> None:
    enqueue(session, channel="email", organisation_id=organisation_id, recipient=to,
            subject=subject, body=body, dedupe_key=dedupe_key, now=now)


def backoff(attempts: int, base_s: int) -> timedelta:
    """The wait after the `attempts`-th failed try: base, 2 × base, 4 × base ... (≤ 6 h)."""
    return min(timedelta(seconds=base_s * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


_warned: set[str] = set()  # channels whose "cannot send" was logged (once per process)


def dispatch_due(session_factory: sessionmaker[Session] | Callable[[], Session],
                 settings: Settings, now: datetime,
                 senders: dict[str, Sender] | None = None) -> Counter:
    """Send the rows due at `now` (up to BATCH); returns counts: sent, retry, dead, waiting."""
    senders = SENDERS if senders is None else senders
    counts: Counter = Counter()
    ready = {}
    for channel, sender in senders.items():
        why = sender.unavailable(settings)
        if why is None:
            ready[channel] = sender
            _warned.discard(channel)
        elif channel not in _warned:
            _warned.add(channel)
            log.warning("%s: %s", channel, why)
    with session_factory() as session:
        unready = [c for c in senders if c not in ready]
        if unready:
            waiting = _due_count(session, now, unready)
            if waiting:
                counts["waiting"] += waiting
        if not ready:
            return counts
        older = aliased(Outbox)
        waits = exists().where(  # an older row of its recipient is backing off
            older.channel == Outbox.channel, older.recipient == Outbox.recipient,
            older.state == "pending", older.id < Outbox.id, older.next_attempt_at > now)
        # oldest first: an ordered channel's first pending row is in the batch before its
        # followers, and rows held behind one backing off do not fill the batch
        due = [Letter(r.id, r.channel, r.recipient, r.subject, r.body, r.payload, r.attempts)
               for r in session.execute(
                   select(Outbox.id, Outbox.channel, Outbox.recipient, Outbox.subject,
                          Outbox.body, Outbox.payload, Outbox.attempts)
                   .where(Outbox.state == "pending", Outbox.next_attempt_at <= now,
                          Outbox.channel.in_(ready),
                          or_(Outbox.channel.not_in(ORDERED), ~waits))
                   .order_by(Outbox.id).limit(BATCH))]
        session.rollback()
        for letter in due:
            if letter.channel in ORDERED and _behind(session, letter):
                counts["held"] += 1
                continue
            if not _claim(session, letter, now):
                counts["lost_race"] += 1
                continue
            try:
                load = getattr(ready[letter.channel], "load", None)
                if load is not None:
                    letter = load(session, letter)
                    session.rollback()  # no transaction open during the send
                ready[letter.channel].send(letter, settings)
            except SendError as e:
                counts[_failed(session, letter, e, settings, now)] += 1
            except Exception as e:  # a bug must not keep a row claimed and untried forever
                log.exception("outbox row %d: the %s sender failed", letter.id, letter.channel)
                counts[_failed(session, letter, SendError(f"{type(e).__name__}: {e}"),
                               settings, now)] += 1
            else:
                session.execute(update(Outbox).where(Outbox.id == letter.id)
                                .values(state="sent", sent_at=now, last_error=None))
                counts["sent"] += 1
            session.commit()
    if counts["sent"] or counts["dead"] or counts["retry"]:
        log.info("outbox: %s", dict(counts))
    return counts


def _due_count(session: Session, now: datetime, channels: list[str]) -> int:
    return len(session.scalars(select(Outbox.id).where(
        Outbox.state == "pending", Outbox.next_attempt_at <= now,
        Outbox.channel.in_(channels)).limit(BATCH)).all())


def _behind(session: Session, letter: Letter) -> bool:
    """An older row of the same recipient is still pending (it failed in this pass, or another
    dispatcher holds it): this one waits its turn."""
    older = session.scalars(select(Outbox.id).where(
        Outbox.channel == letter.channel, Outbox.recipient == letter.recipient,
        Outbox.state == "pending", Outbox.id < letter.id).limit(1)).first()
    session.rollback()
    return older is not None


def _claim(session: Session, letter: Letter, now: datetime) -> bool:
    """Take the row for this dispatcher, in a committed transaction of its own."""
    claimed = session.execute(
        update(Outbox).where(Outbox.id == letter.id, Outbox.state == "pending",
                             Outbox.attempts == letter.attempts, Outbox.next_attempt_at <= now)
        .values(attempts=letter.attempts + 1, next_attempt_at=now + CLAIM_HOLD)
        .execution_options(synchronize_session=False)).rowcount == 1
    session.commit()
    return claimed


def _failed(session: Session, letter: Letter, error: SendError, settings: Settings,
            now: datetime) -> str:
    attempts = letter.attempts + 1
    dead = error.permanent or attempts >= settings.outbox_max_attempts
    values: dict = {"last_error": str(error)[:2000]}
    if dead:
        values["state"] = "dead"
    else:
        values["next_attempt_at"] = now + backoff(attempts, settings.outbox_backoff_s)
    session.execute(update(Outbox).where(Outbox.id == letter.id).values(**values))
    log.warning("outbox row %d (%s) attempt %d failed%s: %s", letter.id, letter.channel,
                attempts, ", now a dead letter" if dead else "", error)
    return "dead" if dead else "retry"


def retry(session: Session, row: Outbox, now: datetime) -> bool:
    """A dead letter is sent again from scratch (attempts reset); False if it was not dead.
    The caller audits and commits."""
    done = session.execute(
        update(Outbox).where(Outbox.id == row.id, Outbox.state == "dead")
        .values(state="pending", attempts=0, next_attempt_at=now)
        .execution_options(synchronize_session=False)).rowcount == 1
    session.expire(row)
    return done


def rows(session: Session, organisation_id: int, state: str | None = None,
         limit: int = 200) -> list[Outbox]:
    """The organisation's rows, newest first (the console's outbox page)."""
    q = select(Outbox).where(Outbox.organisation_id == organisation_id)
    if state:
        q = q.where(Outbox.state == state)
    return list(session.scalars(q.order_by(Outbox.id.desc()).limit(limit)))


def counts_by_state(session: Session, organisation_id: int) -> dict[str, int]:
    return dict(session.execute(select(Outbox.state, func.count()).where(
        Outbox.organisation_id == organisation_id).group_by(Outbox.state)).all())

