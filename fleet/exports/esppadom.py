"""ESPPADOM DELIVERY: the télégestion message a SAAD sends its funders (APA, PCH, AM).

UN/CEFACT CrossIndustryDespatchAdvice, message version 1.4, one CrossIndustryDespatchAdvice per
visit, all in one root `ns:delivery` element as Compani's open emitter does (the guide defines
the message, not the file; docs/exports.md gives the field map). Each one carries:

- the effective period (délivrance effective): the raw clock times as received, each with how it
  was taken (ESPPADOM_TIMESTAMP_METHOD, see METHODS);
- the retained period (délivrance retenue) and its correction code (ESPPADOM_EFFECTIVITY_AJUST),
  or no retained period with SUP (a deleted visit) or HOR (only raw data is known: the
  receiver must ignore the retained period, so none is sent);
- the caregiver, the beneficiary, the SAAD, the funder and the order line (the plan's
  reference), and the billed quantity in hours (HUR) at the minute.

`prepare()` checks everything that would make a file wrong (an organisation without SIRET, a
funder without its télétransmission identifier) before a byte is written; `Delivery.chunks()`
then streams the file over a server-side cursor. Times are the agency's local time without an
offset, as the receivers read them (Domatel, Compani's code); durations count whole minutes.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.exports.rows import ExportError, Range, VisitRow, day_range, minutes, organisation, \
    people, visits
from fleet.funding import PlanIndex, PlanLine
from fleet.models import CORRECTION_CODES, Funder, Organisation
from fleet.types import utcnow

SCHEMA = Path(__file__).with_name("esppadom-delivery-1.4.xsd")
VERSION = "1.4"
NS = {
    "ns": "urn:un:unece:uncefact:data:standard:CrossIndustryDespatchAdvice:2",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:8",
    "pie": "urn:un:unece:uncefact:data:standard:PersonInformationEntity:1",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:8",
}
# How a clock event was taken -> ESPPADOM_TIMESTAMP_METHOD. Only BDG (badge) is documented in
# what is public of the list. A QR code is the client's tag fixed at the home, read by the
# caregiver's phone: the same proof of place as a card on the home's reader, so BDG too. A
# manual entry identified nothing: it is sent without an identification method (None) rather
# than with a code that would claim a badge.
METHODS = {"nfc": "BDG", "qr": "BDG", "manual": None}
CADRE = "PRE"            # ESPPADOM_CADRE: prestataire
CONTACT = "INT"          # ESPPADOM_CONTACT_PRESTATAIRE: intervenant
PRODUCT_NAME = "Aide à domicile"  # qdt:Name when the visit has no service
_SIRET = re.compile(r"^\d{14}$")
_CTRL = {c: None for c in range(32) if c not in (9, 10, 13)}  # not allowed in XML 1.0
_FILE_PART = re.compile(r"[^A-Za-z0-9_-]")
CHUNK = 64 * 1024


def esc(text: object) -> str:
    s = str(text).translate(_CTRL)
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    if '"' in s:
        s = s.replace('"', "&quot;")
    return s


def _list(tag: str, list_id: str, value: str) -> str:
    return f'<{tag} listID="{list_id}" listAgencyName="EDESS">{esc(value)}</{tag}>'


def _token(tag: str, value: str) -> str:
    return f'<{tag} schemeAgencyName="token" schemeID="token">{esc(value)}</{tag}>'


@dataclass(frozen=True)
class Retained:
    """The délivrance retenue of one visit: its code (None: as clocked) and period."""

    code: str | None
    start: datetime | None
    end: datetime | None

    @property
    def minutes(self) -> int:
        return minutes(self.start, self.end) or 0


def retained_of(row: VisitRow) -> Retained:
    """SUP: a deleted visit, sent with its code and no retained period. HOR: no retained
    period is known (or the record says so): only the raw data is sent, and the receiver is
    told to ignore the retained period. Otherwise the retained period with the correction
    code in force, if any."""
    code = row.correction_code
    if code == "SUP":
        return Retained("SUP", None, None)
    if code == "HOR" or row.retained_start is None or row.retained_end is None:
        return Retained("HOR", None, None)
    return Retained(code, row.retained_start, row.retained_end)


def billed_hours(mins: int) -> str:
    """Hours at the minute, two decimals: minutes = round(hours × 60) gives them back."""
    return f"{mins / 60:.2f}"


@dataclass
class Delivery:
    """A checked export, ready to stream (`chunks()`), with its file name."""

    session: Session
    org: Organisation
    span: Range
    funder: Funder | None
    plans: PlanIndex
    issued: datetime
    filename: str

    def _local(self, when: datetime) -> str:
        return when.astimezone(self.span.tz).isoformat(timespec="seconds")[:19]

    def header(self) -> str:
        xmlns = " ".join(f'xmlns:{p}="{uri}"' for p, uri in NS.items())
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<ns:delivery versionID="{VERSION}" ' \
               f'{xmlns}>\n'

    def chunks(self) -> Iterator[bytes]:
        """The file, in chunks of about 64 KiB; one query, streamed. The parts that repeat
        (a client, a caregiver, a plan) are built once and kept: they are few beside the
        visits."""
        clients, carers, services = people(self.session, self.org.id)
        self._parts = _Parts(self.org, clients, carers, services)
        stamp = self.issued.astimezone(self.span.tz).strftime("%Y%m%d%H%M%S")
        issued = self._local(self.issued)
        buf: list[str] = [self.header()]
        size = 0
        for row in visits(self.session, self.org.id, self.span):
            line = self.plans.find(row.client_id, row.service_id, self.span.day_of(
                row.planned_start))
            if line is None:
                continue
            text = self.advice(row, line, stamp, issued)
            buf.append(text)
            size += len(text)
            if size >= CHUNK:
                yield "".join(buf).encode()
                buf, size = [], 0
        buf.append("</ns:delivery>\n")
        yield "".join(buf).encode()

    def advice(self, row: VisitRow, line: PlanLine, stamp: str, issued: str) -> str:
        """One CrossIndustryDespatchAdvice (the element order is the schema's)."""
        parts = self._parts
        tid = f"{stamp}-{row.id}"
        kept = retained_of(row)
        actual = _TYPE_CODES[kept.code]
        if kept.start is not None:
            actual += (f"<ram:OccurrenceCISpecifiedPeriod><qdt:StartDateTime>"
                       f"{self._local(kept.start)}</qdt:StartDateTime><qdt:EndDateTime>"
                       f"{self._local(kept.end)}</qdt:EndDateTime>"
                       "</ram:OccurrenceCISpecifiedPeriod>")
        effective = ""
        if row.actual_start is not None or row.actual_end is not None:
            effective = ("<ram:AdditionalReferencedCIReferencedDocument>"
                         "<ram:EffectiveCISpecifiedPeriod>"
                         + self._stamp("ram:StartDateTime", row.actual_start, row.start_method)
                         + self._stamp("ram:EndDateTime", row.actual_end, row.end_method)
                         + "</ram:EffectiveCISpecifiedPeriod>"
                         "</ram:AdditionalReferencedCIReferencedDocument>")
        return (
            "<ns:CrossIndustryDespatchAdvice>"
            f"<ns:CIDDHExchangedDocumentContext><ram:VersionID>{VERSION}</ram:VersionID>"
            f"<ram:SpecifiedTransactionID>{tid}</ram:SpecifiedTransactionID>"
            "</ns:CIDDHExchangedDocumentContext>"
            f"<ns:CIDDHExchangedDocument><ram:ID>TG-{self.org.id}-{row.id}</ram:ID>"
            f"<ram:IssueDateTime>{issued}</ram:IssueDateTime></ns:CIDDHExchangedDocument>"
            "<ns:CIDDHSupplyChainTradeTransaction>"
            f"{parts.agreement(line)}"
            "<ram:ApplicableCIDDHSupplyChainTradeDelivery>"
            f"{parts.ship_to(row.client_id, line.beneficiary_ref)}"
            f"{parts.ship_from(row.caregiver_id)}"
            f"<ram:ActualDespatchCISupplyChainEvent>{actual}"
            "</ram:ActualDespatchCISupplyChainEvent>"
            f"{effective}</ram:ApplicableCIDDHSupplyChainTradeDelivery>"
            "<ram:ApplicableCIDDHSupplyChainTradeSettlement/>"
            "<ram:IncludedCIDDLSupplyChainTradeLineItem>"
            f"<ram:AssociatedCIDDLDocumentLineDocument><ram:LineID>{tid}</ram:LineID>"
            f"{parts.order_line(line)}</ram:AssociatedCIDDLDocumentLineDocument>"
            "<ram:SpecifiedCIDDLSupplyChainTradeDelivery>"
            f'<ram:BilledQuantity unitCode="HUR">{billed_hours(kept.minutes)}'
            "</ram:BilledQuantity></ram:SpecifiedCIDDLSupplyChainTradeDelivery>"
            f"{_SETTLEMENT}{parts.product(line, row.service_id)}"
            "</ram:IncludedCIDDLSupplyChainTradeLineItem>"
            "</ns:CIDDHSupplyChainTradeTransaction></ns:CrossIndustryDespatchAdvice>\n")

    def _stamp(self, tag: str, when: datetime | None, method: str | None) -> str:
        if when is None:
            return ""
        return (f"<{tag}><ram:CertifiedDateTime>{self._local(when)}</ram:CertifiedDateTime>"
                f"{_HOW.get(method or '', '')}</{tag}>")


def _how(code: str | None) -> str:
    if not code:
        return ""
    return (_list("ram:CustomerIdentificationMethod", "ESPPADOM_TIMESTAMP_METHOD", code)
            + _list("ram:SupplierIdentificationMethod", "ESPPADOM_TIMESTAMP_METHOD", code))


_HOW = {method: _how(code) for method, code in METHODS.items()}
_TYPE_CODES = {None: "", **{c: _list("ram:TypeCode", "ESPPADOM_EFFECTIVITY_AJUST", c)
                            for c in CORRECTION_CODES}}
_SETTLEMENT = ("<ram:SpecifiedCIDDLSupplyChainTradeSettlement>"
               + _list("ram:CadreIntervention", "ESPPADOM_CADRE", CADRE)
               + "</ram:SpecifiedCIDDLSupplyChainTradeSettlement>")


class _Parts:
    """The escaped XML of the parties and lines, built once each (memoised by id)."""

    def __init__(self, org: Organisation, clients: dict, carers: dict, services: dict) -> None:
        self.clients, self.carers, self.services = clients, carers, services
        self.saad = (_token("pie:ID", org.esppadom_id or org.siret)
                     + f"<pie:Name>{esc(org.name)}</pie:Name>"
                       f"<pie:SIRET>{esc(org.siret)}</pie:SIRET>")
        self._cache: dict[tuple, str] = {}

    def _memo(self, key: tuple, build) -> str:
        text = self._cache.get(key)
        if text is None:
            text = self._cache[key] = build()
        return text

    def agreement(self, line: PlanLine) -> str:
        return self._memo(("agreement", line.funder_id), lambda: (
            "<ram:ApplicableCIDDHSupplyChainTradeAgreement>"
            "<ram:BuyerOrderReferencedCIReferencedDocument><ram:IssuerCITradeParty>"
            f"{_token('pie:ID', line.funder_identifier)}"
            f"<pie:Name>{esc(line.funder_name)}</pie:Name>"
            "</ram:IssuerCITradeParty></ram:BuyerOrderReferencedCIReferencedDocument>"
            "<ram:ContractReferencedCIReferencedDocument>"
            f"{_token('qdt:GlobalID', 'P')}</ram:ContractReferencedCIReferencedDocument>"
            "</ram:ApplicableCIDDHSupplyChainTradeAgreement>"))

    def ship_to(self, client_id: int, beneficiary_ref: str) -> str:
        def build() -> str:
            client = self.clients[client_id]
            birth = ""
            if client.birth_date is not None:
                birth = f"<pie:BirthDate>{client.birth_date.isoformat()}T00:00:00</pie:BirthDate>"
            return ("<ram:ShipToCITradeParty>"
                    + _token("pie:ID", beneficiary_ref or f"C{client.id}")
                    + f"<pie:Name>{esc(client.name)}</pie:Name>"
                      f"<pie:LastName>{esc(client.name)}</pie:LastName>{birth}"
                      f"<pie:PostalCITradeAddress><pie:LineOne>{esc(client.address)}"
                      f"</pie:LineOne><pie:PostcodeCode>{esc(client.postcode)}</pie:PostcodeCode>"
                      f"<pie:CityName>{esc(client.city)}</pie:CityName>"
                      "<pie:CountryID>FR</pie:CountryID></pie:PostalCITradeAddress>"
                      "</ram:ShipToCITradeParty>")
        return self._memo(("ship_to", client_id, beneficiary_ref), build)

    def ship_from(self, caregiver_id: int) -> str:
        def build() -> str:
            carer = self.carers[caregiver_id]
            return (f"<ram:ShipFromCITradeParty>{self.saad}<pie:DefinedCITradeContact>"
                    + _token("pie:ID", f"I{carer.id}")
                    + f"<pie:PersonName>{esc(carer.name)}</pie:PersonName>"
                    + _list("pie:TypeCode", "ESPPADOM_CONTACT_PRESTATAIRE", CONTACT)
                    + "</pie:DefinedCITradeContact></ram:ShipFromCITradeParty>")
        return self._memo(("ship_from", caregiver_id), build)

    def order_line(self, line: PlanLine) -> str:
        return self._memo(("order", line.plan_id), lambda: (
            f"<ram:OrderLineID>{esc(line.reference)}</ram:OrderLineID>"))

    def product(self, line: PlanLine, service_id: int | None) -> str:
        def build() -> str:
            service = self.services.get(service_id)
            return ("<ram:SpecifiedCITradeProduct>"
                    + _list("qdt:ID", "ESPPADOM_TYPE_AIDE", line.funder_kind)
                    + f"<qdt:Name>{esc(service.name if service else PRODUCT_NAME)}</qdt:Name>"
                      "</ram:SpecifiedCITradeProduct>")
        return self._memo(("product", line.funder_kind, service_id), build)


def filename(org: Organisation, span: Range, funder: Funder | None, issued: datetime) -> str:
    """`{SAAD id}-{YYYYMM}-{APA|PCH|AM|ALL}-{yyMMddHHmm}.xml` (Compani's convention); a range
    that is not within one month gives `{YYYYMMDD}_{YYYYMMDD}` for the period."""
    saad = _FILE_PART.sub("", org.esppadom_id or org.siret) or f"org{org.id}"
    if (span.first.year, span.first.month) == (span.last.year, span.last.month):
        period = span.first.strftime("%Y%m")
    else:
        period = f"{span.first:%Y%m%d}_{span.last:%Y%m%d}"
    kind = funder.kind if funder is not None else "ALL"
    return f"{saad}-{period}-{kind}-{issued.astimezone(span.tz):%y%m%d%H%M}.xml"


def prepare(session: Session, org_id: int, first: date, last: date,
            funder_id: int | None = None, issued: datetime | None = None) -> Delivery:
    """Check the export of `org_id`'s visits from `first` to `last` (local days, included),
    for one funder or all; raises ExportError naming what is missing, before any output."""
    org = organisation(session, org_id)
    span = day_range(org, first, last)
    if not _SIRET.match(org.siret or ""):
        raise ExportError(422, f"organisation {org.id} ({org.name}) has no SIRET (14 digits): "
                               "set it before sending ESPPADOM deliveries (PATCH "
                               f"/api/v1/organisations/{org.id} with \"siret\")")
    funder = None
    if funder_id is not None:
        funder = session.get(Funder, funder_id)
        if funder is None or funder.organisation_id != org.id:
            raise ExportError(404, f"funder {funder_id} not found in organisation {org.id}")
    plans = PlanIndex.load(session, org.id, funder_id)
    _check_identifiers(session, org, span, plans)
    issued = issued or utcnow()
    return Delivery(session, org, span, funder, plans, issued,
                    filename(org, span, funder, issued))


def _check_identifiers(session: Session, org: Organisation, span: Range,
                       plans: PlanIndex) -> None:
    """A funder without its télétransmission identifier, to which a visit of the range would
    go, stops the export: one pass over the visits, only when such a funder has plans."""
    missing = {line.funder_id for lines in plans.by_client.values() for line in lines
               if not line.funder_identifier}
    if not missing:
        return
    used: set[int] = set()
    for row in visits(session, org.id, span):
        line = plans.find(row.client_id, row.service_id, span.day_of(row.planned_start))
        if line is not None and line.funder_id in missing:
            used.add(line.funder_id)
            if used == missing:
                break
    if used:
        names = ", ".join(f"funder {f.id} ({f.name}, {f.kind})" for f in session.scalars(
            select(Funder).where(Funder.id.in_(used)).order_by(Funder.id)))
        raise ExportError(422, f"no télétransmission identifier for {names}: set it "
                               "(console /funders, or PATCH /api/v1/funders/ID with "
                               "\"identifier\") before exporting; nothing was written")


def write(delivery: Delivery, out) -> int:
    """Stream `delivery` into the binary file `out`; returns the bytes written."""
    n = 0
    for chunk in delivery.chunks():
        out.write(chunk)
        n += len(chunk)
    return n
