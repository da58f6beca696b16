"""The fleet's tables, as typed SQLAlchemy 2.0 models.

Clock events are raw and never edited; everything else about a visit (its record, anomalies,
alerts) is derived from them and may be recomputed. See docs/data-model.md.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index,
                        Integer, LargeBinary, MetaData, String, Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from fleet.sun import new_master_key as new_sun_master_key
from fleet.tagtokens import looks_signed, new_secret
from fleet.types import BigId, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROUNDING_MODES = ("none", "nearest", "planned")
OVERRUN_POLICIES = ("bill", "cap")  # an overrun is billed, or capped at the planned duration
VISIT_STATUSES = ("planned", "in_progress", "done", "cancelled")
RECORD_STATUSES = ("in_progress", "done", "incomplete", "validated")
CORRECTION_CODES = ("CRE", "MDT", "SUP", "COA", "COD", "CO2", "HOR")
BADGE_KINDS = ("caregiver_card", "client_tag")
DEVICE_KINDS = ("reader", "phone")
DEVICE_STATUSES = ("registered", "provisioned", "active", "blocked", "wiped", "retired")
MATCH_STATUSES = ("pending", "matched", "anomaly", "ignored")
ROLES = ("admin", "manager", "technician")
DEVICE_ALERT_KINDS = ("device_offline", "low_battery", "reader_failed", "clock_drift",
                      "journal_full")
VISIT_ALERT_KINDS = ("late", "missed")
ALERT_KINDS = ("late", "missing", "missed", "sos") + DEVICE_ALERT_KINDS
ONE_VISIT_ALERT = "visit_id IS NOT NULL AND kind IN ('late', 'missed')"
FUNDER_KINDS = ("APA", "PCH", "AM")
OUTBOX_CHANNELS = ("email", "webpush", "webhook")
OUTBOX_STATES = ("pending", "sent", "dead")
# what an agency's webhook endpoint may subscribe to (fleet.webhooks, docs/integrations.md)
WEBHOOK_EVENTS = ("visit.created", "visit.modified", "visit.cancelled", "clock.in", "clock.out",
                  "anomaly", "sos")
LINK_STATES = ("online", "offline")
OPEN_DEVICE_ALERT = ("resolved_at IS NULL AND kind IN ('device_offline', 'low_battery', "
                     "'reader_failed', 'clock_drift', 'journal_full')")
COMMAND_KINDS = ("block", "wipe", "reboot", "update", "ping")
COMMAND_STATES = ("pending", "sent", "done", "failed", "expired")
MESSAGE_DIRECTIONS = ("to_caregivers", "to_office")
CONTACT_KINDS = ("emergency", "office")
SOS_SOURCES = ("phone", "box")


def _one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name or column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (_one_of("rounding_mode", ROUNDING_MODES),
                      _one_of("overrun_policy", OVERRUN_POLICIES))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    tolerance_min: Mapped[int] = mapped_column(default=30)
    rounding_mode: Mapped[str] = mapped_column(String(16), default="none")
    rounding_step_min: Mapped[int] = mapped_column(default=15)
    # fleet.retained: an overrun of the planned duration is billed, or capped at it
    overrun_policy: Mapped[str] = mapped_column(String(8), default="bill")
    # the provider's identity in exports (ESPPADOM ShipFromCITradeParty)
    siret: Mapped[str] = mapped_column(String(14), default="")
    esppadom_id: Mapped[str] = mapped_column(String(64), default="")
    # signs the client tags' tokens (fleet.tagtokens); never leaves the fleet
    tag_secret: Mapped[str] = mapped_column(String(64), default=new_secret)
    # diversifies the keys of every NTAG 424 DNA tag (fleet.sun); never leaves the fleet
    sun_master_key: Mapped[str] = mapped_column(String(64), default=new_sun_master_key)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Client(Base):
    """The person cared for (usager), at whose home visits happen."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400), default="")
    postcode: Mapped[str] = mapped_column(String(10), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)
    # the home's reference point (WGS 84 degrees); when absent, fleet.presence learns it from
    # tag-verified clock-ins with a position
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the record a caregiver needs at the door (fleet.client_record): on the phone of a
    # caregiver who has a visit there today only
    access_code: Mapped[str] = mapped_column(String(64), default="")
    key_box: Mapped[str] = mapped_column(String(200), default="")
    care_notes: Mapped[str] = mapped_column(Text, default="")
    # [{"name", "relation", "phone"}]
    family_contacts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # the agency's own fields (client_fields): key -> value (text, number, ISO date, choice)
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


CLIENT_FIELD_KINDS = ("text", "number", "date", "choice")
CLIENT_FIELD_AUDIENCES = ("caregivers", "office")


class ClientField(Base):
    """A field an agency adds to its clients' records, shown to caregivers or to the office
    only (fleet.client_record)."""

    __tablename__ = "client_fields"
    __table_args__ = (UniqueConstraint("organisation_id", "key"),
                      _one_of("kind", CLIENT_FIELD_KINDS),
                      _one_of("visible_to", CLIENT_FIELD_AUDIENCES))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    choices: Mapped[list[Any]] = mapped_column(JSON, default=list)
    visible_to: Mapped[str] = mapped_column(String(10), default="office")
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class Caregiver(Base):
    """Intervenant."""

    __tablename__ = "caregivers"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), default="")  # private: never on a phone
    work_phone: Mapped[str] = mapped_column(String(32), default="")  # the directory's
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Service(Base):
    """Prestation, with its ordered task list."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(32))
    tasks: Mapped[list[ServiceTask]] = relationship(
        order_by="ServiceTask.position", cascade="all, delete-orphan")


class ServiceTask(Base):
    __tablename__ = "service_tasks"
    __table_args__ = (UniqueConstraint("service_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    position: Mapped[int]
    label: Mapped[str] = mapped_column(String(200))


class Visit(Base):
    """A planned intervention; planned times are UTC."""

    __tablename__ = "visits"
    __table_args__ = (
        _one_of("status", VISIT_STATUSES),
        CheckConstraint("planned_end > planned_start", name="planned_order"),
        Index("ix_visits_client_start", "client_id", "planned_start"),
        Index("ix_visits_caregiver_start", "caregiver_id", "planned_start"),
        Index("ix_visits_org_start", "organisation_id", "planned_start"),
        UniqueConstraint("series_id", "series_day"),  # a series' day is one visit
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    caregiver_id: Mapped[int] = mapped_column(ForeignKey("caregivers.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    planned_start: Mapped[datetime]
    planned_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="planned")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # -- visit series (fleet.visit_series): the series and local day this visit comes from
    series_id: Mapped[int | None] = mapped_column(ForeignKey("visit_series.id"))
    series_day: Mapped[date | None] = mapped_column(Date)


class VisitRecord(Base):
    """What happened: actual times from clock events, retained times after the agency's rules,
    and the ESPPADOM correction code when a manager changed it."""

    __tablename__ = "visit_records"
    __table_args__ = (
        _one_of("status", RECORD_STATUSES),
        CheckConstraint("correction_code IS NULL OR correction_code IN "
                        "('CRE', 'MDT', 'SUP', 'COA', 'COD', 'CO2', 'HOR')",
                        name="correction_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), unique=True)
    actual_start: Mapped[datetime | None]
    actual_end: Mapped[datetime | None]
    retained_start: Mapped[datetime | None]
    retained_end: Mapped[datetime | None]
    start_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("clock_events.id"))
    end_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("clock_events.id"))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    correction_code: Mapped[str | None] = mapped_column(String(3))
    corrected_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    correction_reason: Mapped[str | None] = mapped_column(Text)
    # the end-of-visit report (filled by the caregiver app later)
    report: Mapped[str | None] = mapped_column(Text)
    km: Mapped[int | None]
    expenses_cents: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # the correction in force (fleet.corrections): who made it and when (API keys have no user)
    corrected_who: Mapped[str | None] = mapped_column(String(200))
    corrected_at: Mapped[datetime | None]
    # locked for pay and billing: changes only after a reopening (audited)
    validated_at: Mapped[datetime | None]
    validated_who: Mapped[str | None] = mapped_column(String(200))


class VisitTaskCheck(Base):
    """A task of the visit's service ticked (or not) by the caregiver."""

    __tablename__ = "visit_task_checks"
    __table_args__ = (UniqueConstraint("visit_id", "service_task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    service_task_id: Mapped[int] = mapped_column(ForeignKey("service_tasks.id"))
    done: Mapped[bool] = mapped_column(default=False)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime | None]


class Badge(Base):
    """A caregiver's card (tapped on a reader) or a client's tag / QR token (read by a phone)."""

    __tablename__ = "badges"
    __table_args__ = (
        UniqueConstraint("organisation_id", "kind", "uid"),
        _one_of("kind", BADGE_KINDS),
        CheckConstraint("(kind = 'caregiver_card' AND caregiver_id IS NOT NULL) OR "
                        "(kind = 'client_tag' AND client_id IS NOT NULL)", name="owner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    uid: Mapped[str] = mapped_column(String(64))
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    # the badge this one replaced (lost card, copied or worn tag)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("badges.id"))
    # an NTAG 424 DNA with SUN (fleet.sun): its chip UID (7 bytes, hex) and the last read
    # counter accepted from it (None until its first verified read)
    sun_uid: Mapped[str | None] = mapped_column(String(14), unique=True)
    sun_counter: Mapped[int | None]

    @property
    def signed(self) -> bool:
        """A client tag whose token the fleet signed (fleet.tagtokens), not an imported one."""
        return self.kind == "client_tag" and looks_signed(self.uid)


class Device(Base):
    """A reader box at a client's home or a caregiver's phone."""

    __tablename__ = "devices"
    __table_args__ = (_one_of("kind", DEVICE_KINDS), _one_of("status", DEVICE_STATUSES))

    id: Mapped[int] = mapped_column(primary_key=True)
    ident: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    acked_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seen: Mapped[datetime | None]
    health: Mapped[dict[str, Any] | None]
    clock_offset_s: Mapped[int | None]
    fw_version: Mapped[str | None] = mapped_column(String(32))
    config_version: Mapped[int] = mapped_column(default=0)
    config_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the broker identity (fleet.lifecycle): username `broker_username` (None: the ident);
    # only a hash of the password
    credential_hash: Mapped[str | None] = mapped_column(String(255))
    provisioned_at: Mapped[datetime | None]
    broker_username: Mapped[str | None] = mapped_column(String(80))
    # credentials staged by a technician's `device provision`, not active until the box proves
    # it stored them (fleet.lifecycle.confirm); the old ones keep working until then
    staging_id: Mapped[str | None] = mapped_column(String(64))
    staged_username: Mapped[str | None] = mapped_column(String(80))
    staged_hash: Mapped[str | None] = mapped_column(String(255))
    staged_proof: Mapped[str | None] = mapped_column(String(64))
    staged_expires_at: Mapped[datetime | None]
    # the reader's maintenance key (64 hex digits), given to the box at provisioning: the
    # fleet issues one-time codes that open its serial console (fleet.maintenance)
    maint_key: Mapped[str | None] = mapped_column(String(64))
    status_changed_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)


class EnrolmentToken(Base):
    """A one-time token a phone exchanges for its broker credentials; only its sha256 is kept."""

    __tablename__ = "enrolment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(200))


class ClockEvent(Base):
    """One raw tap or manual entry, as the device sent it. Never edited."""

    __tablename__ = "clock_events"
    __table_args__ = (
        UniqueConstraint("device_id", "seq"),
        _one_of("match_status", MATCH_STATUSES),
        Index("ix_clock_events_device_ts", "device_ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    badge_uid: Mapped[str | None] = mapped_column(String(20), index=True)
    tag: Mapped[str | None] = mapped_column(String(255))  # 64 unless a SUN URL
    dir: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(120))
    device_ts: Mapped[datetime]
    received_at: Mapped[datetime]
    time_quality: Mapped[str] = mapped_column(String(8))
    clock_offset_s: Mapped[int] = mapped_column(default=0)
    pos: Mapped[list[float] | None] = mapped_column(JSON)
    raw: Mapped[dict[str, Any]]
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), index=True)
    match_status: Mapped[str] = mapped_column(String(8), default="pending", index=True)
    # set by matching: "sun" (a verified NTAG 424 read), "static" (a card UID or a tag's fixed
    # text, which a copy reproduces), None (nothing matched)
    tag_proof: Mapped[str | None] = mapped_column(String(8))
    # set by matching (fleet.presence.LEVELS): sun_verified, static_tag_near, static_tag,
    # position or manual; None for an event whose tag or card was refused
    proof_level: Mapped[str | None] = mapped_column(String(16), index=True)


class Anomaly(Base):
    __tablename__ = "anomalies"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    clock_event_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("clock_events.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved: Mapped[bool] = mapped_column(default=False)


class Rejection(Base):
    """A message or event refused by ingest, with its reason and the raw text."""

    __tablename__ = "rejections"
    __table_args__ = (Index("ix_rejections_device_seq", "device_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_ident: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    topic: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    raw: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IngestCounter(Base):
    """Running totals per ingest source (one worker, or the API gateway) and reason."""

    __tablename__ = "ingest_counters"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (_one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the console's language, fr or en (fleet.i18n); None: the browser's Accept-Language
    language: Mapped[str | None] = mapped_column(String(2))


class Invitation(Base):
    """A one-time link to set a console password: an invitation to a new user (`invite`, a
    role and an organisation, 7 days) or a reset for an existing one (`reset`, 24 hours).
    Only the sha256 of the token is kept (fleet.invitations)."""

    __tablename__ = "invitations"
    __table_args__ = (_one_of("purpose", ("invite", "reset")), _one_of("role", ROLES))

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(8))
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[str] = mapped_column(String(16))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ApiKey(Base):
    """Only the sha256 of the key is kept; the plaintext is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (_one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    label: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)
    # calls a UTC day (fleet.quotas, counted in api_key_usage); refused past it until midnight
    daily_quota: Mapped[int] = mapped_column(default=10_000, server_default=text("10000"))
    expires_at: Mapped[datetime | None]  # refused from then on, like a revoked key


class ApiKeyUsage(Base):
    """Calls of one key in one UTC day, counted by one atomic upsert per call (fleet.quotas), so
    that several API processes share the count."""

    __tablename__ = "api_key_usage"

    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"),
                                            primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(default=0)


class WebhookEndpoint(Base):
    """An agency's HTTP(S) endpoint told of the events it chose (fleet.webhooks); the secret
    signs every delivery and is shown once, at creation."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    url: Mapped[str] = mapped_column(String(400))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class ConsoleSession(Base):
    """A signed-in console session (fleet.console.sessions). The cookie holds a random token;
    only its sha256 is kept here, so a copy of the database signs no one in. Sign-out deletes
    the row; so do "sign out everywhere", a new password and disabling the user."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    api_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  # the absolute end, however active the session stays


class AuditLog(Base):
    """Who did what to which thing, and why: every manager and IT action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    who: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), index=True)
    why: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None]
    role: Mapped[str | None] = mapped_column(String(16))
    # the hash chain (fleet.auditchain): each entry carries the hash of the one before it
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Base):
    """The newest audit entry's hash: one row, locked by whoever appends (fleet.auditchain),
    so that two writers never fork the chain."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[int | None] = mapped_column(BigInteger)


class RetentionRun(Base):
    """One pass of the daily retention job (fleet.retention): what it purged, and the hash the
    audit chain now starts from when audit entries were purged."""

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    who: Mapped[str] = mapped_column(String(200))
    purged: Mapped[dict[str, Any]]
    audit_anchor: Mapped[str | None] = mapped_column(String(64))


class Alert(Base):
    """Something a manager or technician should look at. Device-health alerts (fleet.alerts)
    open and resolve themselves: at most one open alert per (device, kind)."""

    __tablename__ = "alerts"
    __table_args__ = (
        _one_of("kind", ALERT_KINDS),
        Index("uq_alerts_open_device_kind", "device_id", "kind", unique=True,
              sqlite_where=text(OPEN_DEVICE_ALERT),
              postgresql_where=text(OPEN_DEVICE_ALERT)),
        # a visit gets at most one late and one missed alert, ever
        Index("uq_alerts_visit_kind", "visit_id", "kind", unique=True,
              sqlite_where=text(ONE_VISIT_ALERT), postgresql_where=text(ONE_VISIT_ALERT)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), index=True)
    clock_event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("clock_events.id"))
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # when the condition began (an offline device: its last sign of life); resolved_at: when
    # it cleared (`resolved` mirrors it)
    opened_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_who: Mapped[str | None] = mapped_column(String(200))
    resolved: Mapped[bool] = mapped_column(default=False)


class AlertSettings(Base):
    """Per-organisation alert settings; an organisation without a row gets the defaults."""

    __tablename__ = "alert_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"),
                                                 primary_key=True)
    offline_after_s: Mapped[int] = mapped_column(default=900)
    # a visit not started at planned start + late_after_min is late; + missed_after_min, missed
    late_after_min: Mapped[int] = mapped_column(default=15)
    missed_after_min: Mapped[int] = mapped_column(default=60)
    # the on-call coordinators' e-mail addresses, comma-separated
    oncall_emails: Mapped[str] = mapped_column(Text, default="")
    # personal data kept no longer than this (fleet.retention; CNIL: positions 2 months at most)
    positions_keep_days: Mapped[int] = mapped_column(default=60)
    rejections_keep_days: Mapped[int] = mapped_column(default=30)
    audit_keep_days: Mapped[int] = mapped_column(default=1825)
    # what a phone may report on a visit (fleet.gateway): the last report_window_h hours only
    report_window_h: Mapped[int] = mapped_column(default=24)
    report_km_max: Mapped[int] = mapped_column(default=300)
    report_expenses_max_cents: Mapped[int] = mapped_column(default=20000)
    # a clock event's position farther than this from the home is flagged far_from_home
    home_radius_m: Mapped[int] = mapped_column(default=200)
    # the phones' directory lists colleagues' work numbers (fleet.contacts)
    directory_colleagues: Mapped[bool] = mapped_column(default=False)
    # the number the caregiver app calls when an SOS goes off (fleet.sos); "" = none set
    sos_number: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeviceLink(Base):
    """The device's last will state (`tg/v1/<id>/state`) as the fleet last saw it."""

    __tablename__ = "device_links"
    __table_args__ = (_one_of("state", LINK_STATES),)

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime]


class DeviceCommand(Base):
    """block / wipe / reboot / update / ping sent on down/cmd, with its delivery state."""

    __tablename__ = "device_commands"
    __table_args__ = (_one_of("kind", COMMAND_KINDS), _one_of("state", COMMAND_STATES))

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    sent_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200))


class Message(Base):
    """A message between the office and caregivers (fleet.messages): to caregivers (one, a
    chosen set or everyone, each a MessageRecipient), or from a caregiver's phone to the office
    (`caregiver_id`, `ref` the phone's own id of it, so a resend is a no-op)."""

    __tablename__ = "messages"
    __table_args__ = (_one_of("direction", MESSAGE_DIRECTIONS),
                      UniqueConstraint("device_id", "ref"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    sender_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    direction: Mapped[str] = mapped_column(String(16), default="to_caregivers")
    mandatory: Mapped[bool] = mapped_column(default=False)
    everyone: Mapped[bool] = mapped_column(default=False)  # sent to all the agency's caregivers
    sender: Mapped[str] = mapped_column(String(200), default="")  # who, as the audit says it
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    ref: Mapped[str | None] = mapped_column(String(64))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))


class MessageRecipient(Base):
    __tablename__ = "message_recipients"
    __table_args__ = (UniqueConstraint("message_id", "caregiver_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    caregiver_id: Mapped[int] = mapped_column(ForeignKey("caregivers.id"), index=True)
    mandatory_read: Mapped[bool] = mapped_column(default=False)
    delivered_at: Mapped[datetime | None]  # on the phone (the gateway handed it over)
    read_at: Mapped[datetime | None]  # opened on the phone
    acknowledged_at: Mapped[datetime | None]  # "J'ai lu" tapped (a mandatory message)


class EmergencyNumber(Base):
    """The agency's numbers on the phones: `emergency` (at most 5, one-tap calls on the
    Téléphone tab) and `office` contacts (the directory); fleet.contacts."""

    __tablename__ = "emergency_numbers"
    __table_args__ = (_one_of("kind", CONTACT_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(16), default="emergency")


class CallbackRequest(Base):
    """A caregiver's "call me back" (fleet.callbacks): queued in the console until a
    coordinator marks it taken; `ref` is the phone's own id of it, so a resend is a no-op."""

    __tablename__ = "callback_requests"
    __table_args__ = (UniqueConstraint("device_id", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    caregiver_id: Mapped[int] = mapped_column(ForeignKey("caregivers.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    ref: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_at: Mapped[datetime | None]
    taken_by: Mapped[str | None] = mapped_column(String(200))


class SosAlert(Base):
    """An SOS (DATI) from a caregiver's phone or a reader box's button (fleet.sos): stored once
    per (device, uid) however often the device resends it, shown in the console until a
    coordinator acknowledges it."""

    __tablename__ = "sos_alerts"
    __table_args__ = (UniqueConstraint("device_id", "uid"), _one_of("source", SOS_SOURCES),
                      Index("ix_sos_alerts_org_open", "organisation_id", "acknowledged_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    uid: Mapped[str] = mapped_column(String(64))  # the device's own id for it: resends match
    source: Mapped[str] = mapped_column(String(8))
    caregiver_id: Mapped[int | None] = mapped_column(ForeignKey("caregivers.id"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    raised_at: Mapped[datetime]  # the device's clock when it went off
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the phone's position when it went off (WGS 84, accuracy in metres); purged by retention
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    accuracy_m: Mapped[int | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_who: Mapped[str | None] = mapped_column(String(200))


class PushSubscription(Base):
    """A phone's Web Push subscription (fleet.webpush): where to send, and its keys."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


BUNDLE_PRODUCTS = ("telegest-reader",)
ROLLOUT_STATES = ("running", "paused", "done", "cancelled")
TARGET_STATES = ("waiting", "offered", "downloading", "installed", "ok", "failed", "cancelled")


class UpdateBundle(Base):
    """A signed firmware bundle (fleet.updates, docs/updates.md): the canonical manifest text
    exactly as signed, its sha256, the Ed25519 signature; the files apart."""

    __tablename__ = "update_bundles"
    __table_args__ = (_one_of("product", BUNDLE_PRODUCTS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product: Mapped[str] = mapped_column(String(32), default="telegest-reader")
    version: Mapped[str] = mapped_column(String(32), unique=True)
    manifest: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(88))  # base64 of 64 bytes
    size: Mapped[int] = mapped_column(default=0)  # bytes of files
    file_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class UpdateBundleFile(Base):
    __tablename__ = "update_bundle_files"
    __table_args__ = (UniqueConstraint("bundle_id", "idx"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("update_bundles.id"), index=True)
    idx: Mapped[int]  # 1.. in manifest order (0 is the manifest itself on the wire)
    name: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Rollout(Base):
    """A bundle offered to a set of devices in waves; paused when `max_failures` devices
    failed since the start or the last resume (hawkBit's error threshold)."""

    __tablename__ = "rollouts"
    __table_args__ = (_one_of("state", ROLLOUT_STATES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("update_bundles.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="running")
    waves: Mapped[list[int]] = mapped_column(JSON)  # cumulative percents, e.g. [10, 50, 100]
    wave: Mapped[int] = mapped_column(default=-1)  # the wave offered last; -1 before the first
    max_failures: Mapped[int] = mapped_column(default=1)
    failures_at_resume: Mapped[int] = mapped_column(default=0)
    offer_ttl_s: Mapped[int] = mapped_column(default=3600)
    target_filter: Mapped[dict[str, Any] | None]
    # the offer signed offline with the release key: {"oid", "exp", "ch", "v", "mh", "sig"}
    # (fleet.update_signing.sign_offer); None only for rollouts started before signed offers
    offer: Mapped[dict[str, Any] | None]
    reason: Mapped[str | None] = mapped_column(Text)  # why it paused, or was cancelled
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RolloutTarget(Base):
    __tablename__ = "rollout_targets"
    __table_args__ = (UniqueConstraint("rollout_id", "device_id"),
                      _one_of("state", TARGET_STATES))

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    wave: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    command_id: Mapped[int | None] = mapped_column(ForeignKey("device_commands.id"), index=True)
    progress: Mapped[int] = mapped_column(default=0)  # percent downloaded
    why: Mapped[str | None] = mapped_column(String(64))  # the device's reason for a failure
    offered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]


class Lease(Base):
    """A named lease (fleet.lease): its holder does a once-per-fleet duty until `expires_at`.
    Both times are the database's clock, so workers on different machines agree on them."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]  # when this holder took it (kept while it renews)
    expires_at: Mapped[datetime]


# -- the office side (docs/office.md): corrections, validation, funders, the outbox -------------

class VisitCorrection(Base):
    """A manager's correction of a visit, with its ESPPADOM code (fleet.corrections). Raw clock
    events are never touched; the newest correction of a visit is the one in force, and each
    keeps the record as it was before and after it."""

    __tablename__ = "visit_corrections"
    __table_args__ = (_one_of("code", CORRECTION_CODES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    code: Mapped[str] = mapped_column(String(3))
    arrival: Mapped[datetime | None]
    departure: Mapped[datetime | None]
    why: Mapped[str] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    # the correction this one corrects, when it does
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("visit_corrections.id"))


class MonthValidation(Base):
    """An agency's month validated at once (fleet.validation); reopened_at ends it."""

    __tablename__ = "month_validations"
    __table_args__ = (Index("ix_month_validations_org_month", "organisation_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, in the agency's time zone
    validated_at: Mapped[datetime] = mapped_column(default=utcnow)
    validated_who: Mapped[str] = mapped_column(String(200))
    visits: Mapped[int] = mapped_column(default=0)
    reopened_at: Mapped[datetime | None]
    reopened_who: Mapped[str | None] = mapped_column(String(200))
    reopen_why: Mapped[str | None] = mapped_column(Text)


class Funder(Base):
    """Who pays for a client's care: the département (APA, PCH) or a health insurer (AM)."""

    __tablename__ = "funders"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),
                      _one_of("kind", FUNDER_KINDS))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    # the funder's télétransmission identifier (ESPPADOM IssuerCITradeParty); required to export
    identifier: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FundingPlan(Base):
    """A client's plan d'aide with one funder: the order line the deliveries are billed to."""

    __tablename__ = "funding_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    funder_id: Mapped[int] = mapped_column(ForeignKey("funders.id"), index=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    reference: Mapped[str] = mapped_column(String(64))  # the order (line) reference
    beneficiary_ref: Mapped[str] = mapped_column(String(64), default="")
    minutes_per_month: Mapped[int | None]
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Outbox(Base):
    """Everything that leaves the fleet (e-mail, Web Push, webhooks): written in the same
    transaction as the change that causes it, sent by one dispatcher (fleet.outbox), retried
    with backoff, kept as a dead letter after the last try."""

    __tablename__ = "outbox"
    __table_args__ = (_one_of("channel", OUTBOX_CHANNELS), _one_of("state", OUTBOX_STATES),
                      Index("ix_outbox_state_next", "state", "next_attempt_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(400))
    subject: Mapped[str] = mapped_column(String(400), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any] | None]
    # the same thing is never queued twice (e.g. "alert:12:ops@agency.fr")
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


ABSENCE_KINDS = ("leave", "sick", "training", "other")  # congé, maladie, formation, autre
ABSENCE_STATES = ("requested", "approved", "refused", "cancelled")


class Absence(Base):
    """A caregiver's absence (fleet.absences): asked from the app or recorded by the office,
    approved or refused by a manager. The visits an approved one covers are to be replaced:
    derived by a query, never stored, so a visit moved or reassigned leaves the list."""

    __tablename__ = "absences"
    __table_args__ = (
        _one_of("kind", ABSENCE_KINDS), _one_of("state", ABSENCE_STATES),
        CheckConstraint("ends_at > starts_at", name="period_order"),
        # a phone's request sent twice (offline queue, lost answer) is one absence
        UniqueConstraint("caregiver_id", "request_key"),
        Index("ix_absences_caregiver_start", "caregiver_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    caregiver_id: Mapped[int] = mapped_column(ForeignKey("caregivers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    all_day: Mapped[bool] = mapped_column(default=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(16), default="requested")
    request_key: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(500))


class CaregiverCard(Base):
    """The professional card (fleet.cards): what the app shows and `/verify/<token>` checks.
    The token is in clear, as its QR code is printed and shown: it proves nothing but that the
    card exists; a new one (revocation) makes the old QR code answer "not valid"."""

    __tablename__ = "caregiver_cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    caregiver_id: Mapped[int] = mapped_column(ForeignKey("caregivers.id"), unique=True)
    number: Mapped[str] = mapped_column(String(32), default="")
    title: Mapped[str] = mapped_column(String(100), default="")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    photo_type: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# -- visit series (fleet.visit_series, migration 0025) ------------------------------------------
class VisitSeries(Base):
    """A recurring visit: an RFC 5545 RRULE from `starts_on` at local `at` for `duration_min`,
    expanded into plain visits up to `expanded_until` (a rolling horizon). `exdates` are the
    local days taken out of it; `ends_on` closes it (a split: "this and following")."""

    __tablename__ = "visit_series"
    __table_args__ = (CheckConstraint("duration_min > 0", name="duration"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    caregiver_id: Mapped[int] = mapped_column(ForeignKey("caregivers.id"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"))
    rrule: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    at: Mapped[str] = mapped_column(String(5))  # local HH:MM
    duration_min: Mapped[int]
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    expanded_until: Mapped[date | None] = mapped_column(Date)
    split_from_id: Mapped[int | None] = mapped_column(ForeignKey("visit_series.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
