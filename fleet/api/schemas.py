"""Request and response bodies of the API."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import (AwareDatetime, BaseModel, ConfigDict, Field, field_validator,
                      model_validator)

Ident = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def siret_problem(value: str) -> str | None:
    """None for an empty or valid SIRET (14 digits, Luhn key; La Poste's own rule for its
    establishments), else what is wrong."""
    if value == "":
        return None
    if len(value) != 14 or not value.isdigit():
        return "a SIRET is 14 digits"
    if value.startswith("356000000"):  # La Poste: the digits sum to a multiple of 5
        return None if sum(map(int, value)) % 5 == 0 else "SIRET key does not match"
    total = 0
    for i, ch in enumerate(reversed(value)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return None if total % 10 == 0 else "SIRET key (Luhn) does not match"


class _OrganisationRules(BaseModel):
    @field_validator("siret", check_fields=False)
    @classmethod
    def _siret(cls, v: str | None) -> str | None:
        if v is not None:
            v = v.replace(" ", "")
            problem = siret_problem(v)
            if problem:
                raise ValueError(problem)
        return v


ESPPADOM_ID = r"^[A-Za-z0-9._/-]{0,64}$"


class OrganisationIn(_OrganisationRules):
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "Europe/Paris"
    tolerance_min: int = Field(30, ge=0, le=240)
    rounding_mode: Literal["none", "nearest", "planned"] = "none"
    rounding_step_min: int = Field(15, ge=1, le=60)
    overrun_policy: Literal["bill", "cap"] = Field("bill", description=(
        "an overrun of the planned duration is billed, or capped at it"))
    siret: str = Field("", max_length=20, description="14 digits, or empty")
    esppadom_id: str = Field("", pattern=ESPPADOM_ID, description=(
        "the provider's ESPPADOM identifier, as the funders gave it"))


class OrganisationPatch(_OrganisationRules):
    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = None
    tolerance_min: int | None = Field(None, ge=0, le=240)
    rounding_mode: Literal["none", "nearest", "planned"] | None = None
    rounding_step_min: int | None = Field(None, ge=1, le=60)
    overrun_policy: Literal["bill", "cap"] | None = None
    siret: str | None = Field(None, max_length=20)
    esppadom_id: str | None = Field(None, pattern=ESPPADOM_ID)


class OrganisationOut(Out):
    id: int
    name: str
    timezone: str
    tolerance_min: int
    rounding_mode: str
    rounding_step_min: int
    overrun_policy: str
    siret: str
    esppadom_id: str


class _HomePoint(BaseModel):
    """A client's home reference point (WGS 84); without it the fleet learns one
    (fleet.presence). lat and lon are set (or cleared) together: half a point is no point."""

    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)

    @model_validator(mode="after")
    def _both_or_neither(self):
        if ("lat" in self.model_fields_set) != ("lon" in self.model_fields_set) or \
                (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together · lat et lon vont ensemble")
        return self


class ClientIn(_HomePoint):
    organisation_id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    address: str = Field("", max_length=400)
    postcode: str = Field("", max_length=10)
    city: str = Field("", max_length=100)
    birth_date: date | None = None
    active: bool = True


class ClientPatch(_HomePoint):
    name: str | None = Field(None, min_length=1, max_length=200)
    address: str | None = Field(None, max_length=400)
    postcode: str | None = Field(None, max_length=10)
    city: str | None = Field(None, max_length=100)
    birth_date: date | None = None
    active: bool | None = None


class ClientOut(Out):
    id: int
    organisation_id: int
    name: str
    address: str
    postcode: str
    city: str
    birth_date: date | None
    active: bool
    lat: float | None = None
    lon: float | None = None


class FunderIn(BaseModel):
    organisation_id: int | None = None
    kind: Literal["APA", "PCH", "AM"]
    name: str = Field(min_length=1, max_length=200)
    identifier: str = Field("", max_length=64, description=(
        "the funder's télétransmission identifier; required to export to it"))
    active: bool = True


class FunderPatch(BaseModel):
    kind: Literal["APA", "PCH", "AM"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    identifier: str | None = Field(None, max_length=64)
    active: bool | None = None


class FunderOut(Out):
    id: int
    organisation_id: int
    kind: str
    name: str
    identifier: str
    active: bool


class FundingPlanIn(BaseModel):
    client_id: int
    funder_id: int
    service_id: int | None = None
    reference: str = Field(min_length=1, max_length=64, description="the order (line) reference")
    beneficiary_ref: str = Field("", max_length=64)
    minutes_per_month: int | None = Field(None, ge=1, le=44640)
    valid_from: date
    valid_to: date | None = None


class FundingPlanPatch(BaseModel):
    client_id: int | None = None
    funder_id: int | None = None
    service_id: int | None = None
    reference: str | None = Field(None, min_length=1, max_length=64)
    beneficiary_ref: str | None = Field(None, max_length=64)
    minutes_per_month: int | None = Field(None, ge=1, le=44640)
    valid_from: date | None = None
    valid_to: date | None = None


class FundingPlanOut(Out):
    id: int
    organisation_id: int
    client_id: int
    funder_id: int
    service_id: int | None
    reference: str
    beneficiary_ref: str
    minutes_per_month: int | None
    valid_from: date
    valid_to: date | None


def _work_phone(v: str | None) -> str | None:
    """A work number goes in the phones' directory: it must be a phone number (or empty)."""
    from fleet.contacts import phone_number

    return v if not v else phone_number(v, "work_phone")


class CaregiverIn(BaseModel):
    organisation_id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field("", max_length=32)  # private: never shown on the phones
    work_phone: str = Field("", max_length=32)  # in the phones' directory where allowed
    active: bool = True

    _check_work_phone = field_validator("work_phone")(_work_phone)


class CaregiverPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=32)
    work_phone: str | None = Field(None, max_length=32)
    active: bool | None = None

    _check_work_phone = field_validator("work_phone")(_work_phone)


class CaregiverOut(Out):
    id: int
    organisation_id: int
    name: str
    phone: str
    work_phone: str
    active: bool


class ServiceIn(BaseModel):
    organisation_id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=32)
    tasks: list[str] = []


class ServicePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    code: str | None = Field(None, min_length=1, max_length=32)
    tasks: list[str] | None = None


class TaskOut(Out):
    position: int
    label: str


class ServiceOut(Out):
    id: int
    organisation_id: int
    name: str
    code: str
    tasks: list[TaskOut]


class BadgeIn(BaseModel):
    kind: Literal["caregiver_card", "client_tag"]
    uid: str | None = Field(None, min_length=1, max_length=64, description=(
        "a card's UID (hex); for a client tag, leave it out to have the fleet mint a signed "
        "token, or give an existing tag's text to import it"))
    caregiver_id: int | None = None
    client_id: int | None = None
    active: bool = True


class BadgePatch(BaseModel):
    active: bool
    reason: str | None = Field(None, max_length=200, description="why it is revoked")


class BadgeReplaceIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="lost, stolen, copied, worn")
    uid: str | None = Field(None, min_length=1, max_length=64, description=(
        "the new card's UID; for a client tag, leave it out to mint a new signed token"))


class BadgeOut(Out):
    id: int
    organisation_id: int
    kind: str
    uid: str
    caregiver_id: int | None
    client_id: int | None
    active: bool
    signed: bool
    created_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    replaces_id: int | None
    sun_uid: str | None = None  # an NTAG 424 DNA (SUN): its chip UID
    sun_counter: int | None = None  # its last accepted read counter


class DeviceIn(BaseModel):
    ident: str = Ident
    kind: Literal["reader", "phone"] = "reader"
    client_id: int | None = None
    caregiver_id: int | None = None


class DeviceOut(Out):
    id: int
    ident: str
    kind: str
    organisation_id: int
    client_id: int | None
    caregiver_id: int | None
    status: str
    acked_seq: int
    last_seen: datetime | None
    clock_offset_s: int | None
    fw_version: str | None
    health: dict[str, Any] | None
    staged_expires_at: datetime | None = None  # credentials staged, not yet confirmed


class VisitIn(BaseModel):
    client_id: int
    caregiver_id: int
    service_id: int | None = None
    planned_start: AwareDatetime
    planned_end: AwareDatetime


class VisitPatch(BaseModel):
    client_id: int | None = None
    caregiver_id: int | None = None
    service_id: int | None = None
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None
    status: Literal["planned", "in_progress", "done", "cancelled"] | None = None


class VisitOut(Out):
    id: int
    organisation_id: int
    client_id: int
    caregiver_id: int
    service_id: int | None
    planned_start: datetime
    planned_end: datetime
    status: str


class VisitDetailOut(VisitOut):
    """VisitOut's fields and the visit's detail (fleet.visit_detail)."""

    planned: dict[str, Any]
    client: dict[str, Any]
    caregiver: dict[str, Any]
    service: dict[str, Any]
    events: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    record_status: str | None
    raw: dict[str, Any]
    retained: dict[str, Any]
    late_min: int | None
    late: bool
    suggested_code: str
    correction: dict[str, Any] | None
    corrections: list[dict[str, Any]]
    validation: dict[str, Any]
    km: int | None
    expenses_cents: int | None
    report: str | None
    tasks_done: list[dict[str, Any]]
    tasks_not_done: list[dict[str, Any]]
    audit: list[dict[str, Any]]


class ClockEventOut(Out):
    id: int
    device_id: int
    seq: int
    badge_uid: str | None
    tag: str | None
    dir: str
    method: str
    reason: str | None
    device_ts: datetime
    received_at: datetime
    time_quality: str
    clock_offset_s: int
    pos: list[float] | None
    visit_id: int | None
    match_status: str
    tag_proof: str | None = None  # "sun" (a verified NTAG 424 read) or "static"
    # fleet.presence.LEVELS: sun_verified, static_tag_near, static_tag, position, manual
    proof_level: str | None = None


class VisitRecordOut(Out):
    id: int
    visit_id: int
    actual_start: datetime | None
    actual_end: datetime | None
    retained_start: datetime | None
    retained_end: datetime | None
    start_event_id: int | None
    end_event_id: int | None
    status: str
    correction_code: str | None
    correction_reason: str | None


class RejectionOut(Out):
    id: int
    device_ident: str
    topic: str
    seq: int | None
    reason: str
    raw: str
    created_at: datetime


class AnomalyOut(Out):
    id: int
    kind: str
    organisation_id: int
    device_id: int | None
    clock_event_id: int | None
    visit_id: int | None
    detail: str
    created_at: datetime
    resolved: bool


class AnomalyPatch(BaseModel):
    resolved: bool


class ReasonIn(BaseModel):
    reason: str | None = Field(None, max_length=2000)


class BlockIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class CredentialsOut(Out):
    """Shown once: the fleet keeps only a hash of the password."""

    ident: str
    username: str
    password: str
    client_id: str
    status: str
    broker_enforced: bool


class StagedOut(CredentialsOut):
    """Staged credentials (fleet.lifecycle.stage): not active until confirmed."""

    staging_id: str
    expires_at: datetime
    maint_key: str | None = None  # written to the box as its `mkey` setting


class MaintenanceCodeOut(BaseModel):
    """A one-time code that opens a reader's serial console (fleet.maintenance)."""

    ident: str
    code: str
    expires_at: datetime


class ConfirmIn(BaseModel):
    staging_id: str = Field(min_length=1, max_length=64)
    digest: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class AbandonIn(BaseModel):
    staging_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(None, max_length=2000)


class EnrolmentOut(BaseModel):
    ident: str
    token: str
    expires_at: datetime


class EnrolIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class DeviceCommandOut(Out):
    id: int
    kind: str
    payload: dict[str, Any] | None
    state: str
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    done_at: datetime | None
    result: str | None
    created_by: str | None


class AuditOut(Out):
    id: int
    at: datetime
    who: str
    role: str | None
    action: str
    target: str
    why: str | None
    detail: dict[str, Any] | None


class AlertOut(Out):
    id: int
    kind: str
    organisation_id: int
    device_id: int | None
    visit_id: int | None
    caregiver_id: int | None
    detail: dict[str, Any] | None
    created_at: datetime
    opened_at: datetime | None
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    acknowledged_who: str | None


# -- updates (fleet.updates) ----------------------------------------------------------------------
class BundleOut(Out):
    id: int
    product: str
    version: str
    manifest_sha256: str
    signature: str
    size: int
    file_count: int
    created_at: datetime
    created_by: str | None


class RolloutIn(BaseModel):
    bundle_id: int
    devices: list[str] | None = Field(None, min_length=1, max_length=10000)
    filter: dict[str, Any] | None = None  # {"fw", "prefix", "organisation_id"}
    waves: list[int] = Field(default_factory=lambda: [10, 50, 100], min_length=1,
                             max_length=10)
    max_failures: int = Field(1, ge=1)
    offer_ttl_s: int = Field(3600, ge=60, le=30 * 86400)
    offer: dict[str, Any] | None = Field(None, description=(
        "the offer signed offline by the release manager (`telegest fleet bundle offer`): "
        "{oid, exp, ch, v, mh, sig}; required"))


class RolloutTargetOut(BaseModel):
    device: str
    wave: int
    state: str
    progress: int
    why: str | None
    command_id: int | None


class RolloutOut(BaseModel):
    id: int
    bundle_id: int
    version: str
    state: str
    reason: str | None
    wave: int
    waves: list[int]
    max_failures: int
    failures: int
    created_at: datetime
    created_by: str | None
    wave_counts: list[dict[str, int]]
    targets: list[RolloutTargetOut]
    offer: dict[str, Any] | None = None  # {oid, ch, exp} of the signed offer


# -- the office side: corrections, validation, review --------------------------------------------
class CorrectionIn(BaseModel):
    arrival: AwareDatetime | None = Field(None, description="the retained arrival")
    departure: AwareDatetime | None = Field(None, description="the retained departure")
    code: str | None = Field(None, max_length=8, description=(
        "CRE, MDT, SUP, COA, COD or CO2; left out: the code suggested by what is missing"))
    why: str | None = Field(None, max_length=2000, description="required")


class CorrectionOut(Out):
    id: int
    visit_id: int
    code: str
    arrival: datetime | None
    departure: datetime | None
    why: str
    who: str
    role: str | None
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    supersedes_id: int | None


class WhyIn(BaseModel):
    why: str | None = Field(None, max_length=2000, description="required")


class ValidationOut(BaseModel):
    visit_id: int
    validated: bool
    validated_at: datetime | None
    validated_who: str | None


class MonthValidationOut(Out):
    id: int
    organisation_id: int
    month: str
    validated_at: datetime
    validated_who: str
    visits: int
    reopened_at: datetime | None
    reopened_who: str | None
    reopen_why: str | None


# -- the agency's settings (fleet.agency_settings) --------------------------------------------------
class AlertSettingsOut(BaseModel):
    organisation_id: int
    timezone: str
    tolerance_min: int
    rounding_mode: str
    rounding_step_min: int
    overrun_policy: str
    late_after_min: int
    missed_after_min: int
    oncall_emails: list[str]
    sos_number: str
    positions_keep_days: int
    rejections_keep_days: int
    audit_keep_days: int
    report_window_h: int
    report_km_max: int
    report_expenses_max_cents: int
    home_radius_m: int


class AlertSettingsPatch(BaseModel):
    """Only the fields sent change; the values are checked in fleet.agency_settings."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    tolerance_min: int | None = None
    rounding_mode: Literal["none", "nearest", "planned"] | None = None
    rounding_step_min: int | None = None
    overrun_policy: Literal["bill", "cap"] | None = None
    late_after_min: int | None = None
    missed_after_min: int | None = None
    oncall_emails: list[str] | None = None
    sos_number: str | None = Field(None, max_length=32)
    positions_keep_days: int | None = None
    rejections_keep_days: int | None = None
    audit_keep_days: int | None = None
    report_window_h: int | None = None
    report_km_max: int | None = None
    report_expenses_max_cents: int | None = None
    home_radius_m: int | None = None
