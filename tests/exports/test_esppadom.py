"""ESPPADOM DELIVERY: the XML against our schema, the guide's examples, every correction code,
identification methods, funders, time zones and the errors named before anything is written."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from lxml import etree

from fleet.exports import esppadom
from fleet.exports.rows import ExportError
from fleet.models import FundingPlan

NS = esppadom.NS
SCHEMA = etree.XMLSchema(etree.parse(str(esppadom.SCHEMA)))
NOV = (date(2026, 11, 1), date(2026, 11, 30))


def export(session, org, first=NOV[0], last=NOV[1], funder=None):
    d = esppadom.prepare(session, org.id, first, last, funder)
    chunks = list(d.chunks())
    doc = etree.fromstring(b"".join(chunks))
    SCHEMA.assertValid(doc)
    return d, doc, chunks


def advices(doc) -> dict[str, etree._Element]:
    """CrossIndustryDespatchAdvice by visit id."""
    out = {}
    for adv in doc.findall("ns:CrossIndustryDespatchAdvice", NS):
        ident = adv.findtext("ns:CIDDHExchangedDocument/ram:ID", namespaces=NS)
        out[ident.rsplit("-", 1)[1]] = adv
    return out


def x(adv, path: str) -> str | None:
    return adv.findtext(path, namespaces=NS)


DELIVERY = "ns:CIDDHSupplyChainTradeTransaction/ram:ApplicableCIDDHSupplyChainTradeDelivery/"
ACTUAL = DELIVERY + "ram:ActualDespatchCISupplyChainEvent/"
EFFECTIVE = DELIVERY + ("ram:AdditionalReferencedCIReferencedDocument/"
                        "ram:EffectiveCISpecifiedPeriod/")
LINE = "ns:CIDDHSupplyChainTradeTransaction/ram:IncludedCIDDLSupplyChainTradeLineItem/"
BILLED = LINE + "ram:SpecifiedCIDDLSupplyChainTradeDelivery/ram:BilledQuantity"


def test_the_guides_examples_effective_beside_retained(session, office):
    durand, alice = office.clients[0], office.carers[0]
    v1 = office.visit(durand, alice, "2026-11-23", "09:00", arrival="09:00",
                      departure="10:05", retained=("09:00", "10:00"))  # 1 h 05 -> 1 h
    v2 = office.visit(durand, alice, "2026-11-24", "14:00", arrival="14:00",
                      departure="15:20", retained=("14:00", "15:30"))  # half hour: 1 h 30
    v3 = office.visit(durand, alice, "2026-11-25", "14:00", arrival="14:00",
                      departure="15:20", retained=("14:00", "15:00"))  # overrun capped: 1 h
    session.commit()
    _, doc, _ = export(session, office.org)
    assert doc.get("versionID") == "1.4"
    by = advices(doc)
    a = by[str(v1.id)]
    assert x(a, EFFECTIVE + "ram:StartDateTime/ram:CertifiedDateTime") == "2026-11-23T09:00:00"
    assert x(a, EFFECTIVE + "ram:EndDateTime/ram:CertifiedDateTime") == "2026-11-23T10:05:00"
    assert x(a, EFFECTIVE + "ram:StartDateTime/ram:CustomerIdentificationMethod") == "BDG"
    assert x(a, EFFECTIVE + "ram:EndDateTime/ram:SupplierIdentificationMethod") == "BDG"
    assert x(a, ACTUAL + "ram:OccurrenceCISpecifiedPeriod/qdt:StartDateTime") == \
        "2026-11-23T09:00:00"
    assert x(a, ACTUAL + "ram:OccurrenceCISpecifiedPeriod/qdt:EndDateTime") == \
        "2026-11-23T10:00:00"
    assert a.find(ACTUAL + "ram:TypeCode", NS) is None  # retained as clocked by the rules
    assert x(a, BILLED) == "1.00"
    assert a.find(BILLED, NS).get("unitCode") == "HUR"
    assert x(by[str(v2.id)], BILLED) == "1.50"
    assert x(by[str(v2.id)], EFFECTIVE + "ram:EndDateTime/ram:CertifiedDateTime") == \
        "2026-11-24T15:20:00"
    assert x(by[str(v3.id)], BILLED) == "1.00"


def test_every_party_and_the_order_line(session, office):
    durand, alice = office.clients[0], office.carers[0]
    v = office.visit(durand, alice, "2026-11-23", "09:00", arrival="09:00", departure="10:00",
                     retained=("09:00", "10:00"), service=office.service)
    session.commit()
    _, doc, _ = export(session, office.org)
    a = advices(doc)[str(v.id)]
    t = "ns:CIDDHSupplyChainTradeTransaction/"
    issuer = t + ("ram:ApplicableCIDDHSupplyChainTradeAgreement/"
                  "ram:BuyerOrderReferencedCIReferencedDocument/ram:IssuerCITradeParty/")
    assert x(a, issuer + "pie:ID") == "CD75-APA"
    assert x(a, issuer + "pie:Name") == "CD 75 APA"
    assert x(a, DELIVERY + "ram:ShipToCITradeParty/pie:ID") == "B75-0042"
    assert x(a, DELIVERY + "ram:ShipToCITradeParty/pie:BirthDate") == "1938-04-02T00:00:00"
    assert x(a, DELIVERY + "ram:ShipToCITradeParty/pie:PostalCITradeAddress/pie:CityName") \
        == "Paris"
    assert x(a, DELIVERY + "ram:ShipFromCITradeParty/pie:SIRET") == "12345678900011"
    assert x(a, DELIVERY + "ram:ShipFromCITradeParty/pie:ID") == "SAAD449"
    contact = DELIVERY + "ram:ShipFromCITradeParty/pie:DefinedCITradeContact/"
    assert x(a, contact + "pie:PersonName") == "Alice Martin"
    assert x(a, contact + "pie:TypeCode") == "INT"
    assert x(a, LINE + "ram:AssociatedCIDDLDocumentLineDocument/ram:OrderLineID") == \
        "APA-2026-001"
    assert x(a, LINE + "ram:SpecifiedCITradeProduct/qdt:ID") == "APA"
    assert x(a, LINE + "ram:SpecifiedCITradeProduct/qdt:Name") == "Aide au lever"
    assert x(a, LINE + "ram:SpecifiedCIDDLSupplyChainTradeSettlement/ram:CadreIntervention") \
        == "PRE"


@pytest.mark.parametrize("code, raw, retained, period", [
    ("CRE", (None, None), ("09:00", "10:00"), True),
    ("MDT", ("09:00", "10:00"), ("09:00", "10:00"), True),
    ("COA", (None, "10:02"), ("09:00", "10:00"), True),
    ("COD", ("09:01", None), ("09:00", "10:00"), True),
    ("CO2", (None, None), ("09:00", "10:00"), True),
    ("SUP", ("09:00", "09:03"), None, False),
    ("HOR", ("09:00", "10:10"), None, False),
])
def test_each_correction_code(session, office, code, raw, retained, period):
    v = office.visit(office.clients[0], office.carers[0], "2026-11-23", "09:00",
                     arrival=raw[0], departure=raw[1], retained=retained, code=code)
    session.commit()
    _, doc, _ = export(session, office.org)
    a = advices(doc)[str(v.id)]
    code_el = a.find(ACTUAL + "ram:TypeCode", NS)
    assert code_el.text == code
    assert code_el.get("listID") == "ESPPADOM_EFFECTIVITY_AJUST"
    assert (a.find(ACTUAL + "ram:OccurrenceCISpecifiedPeriod", NS) is not None) == period
    assert x(a, BILLED) == ("1.00" if period else "0.00")
    # the raw times are sent as they are, whatever the correction
    assert (x(a, EFFECTIVE + "ram:StartDateTime/ram:CertifiedDateTime") is not None) == \
        (raw[0] is not None)
    assert (x(a, EFFECTIVE + "ram:EndDateTime/ram:CertifiedDateTime") is not None) == \
        (raw[1] is not None)
    if raw == (None, None):
        assert a.find(DELIVERY + "ram:AdditionalReferencedCIReferencedDocument", NS) is None


def test_a_record_without_retained_period_is_sent_as_hor(session, office):
    v = office.visit(office.clients[0], office.carers[0], "2026-11-23", "09:00",
                     arrival="09:00")  # departure not clocked, nothing retained yet
    session.commit()
    _, doc, _ = export(session, office.org)
    a = advices(doc)[str(v.id)]
    assert x(a, ACTUAL + "ram:TypeCode") == "HOR"
    assert x(a, EFFECTIVE + "ram:StartDateTime/ram:CertifiedDateTime") == "2026-11-23T09:00:00"


def test_identification_method_of_qr_and_manual(session, office):
    v = office.visit(office.clients[0], office.carers[0], "2026-11-23", "09:00",
                     arrival="09:00", departure="10:00", retained=("09:00", "10:00"),
                     methods=("qr", "manual"))
    session.commit()
    _, doc, _ = export(session, office.org)
    a = advices(doc)[str(v.id)]
    assert x(a, EFFECTIVE + "ram:StartDateTime/ram:CustomerIdentificationMethod") == "BDG"
    end = a.find(EFFECTIVE + "ram:EndDateTime", NS)
    assert end.findtext("ram:CertifiedDateTime", namespaces=NS) == "2026-11-23T10:00:00"
    assert end.find("ram:CustomerIdentificationMethod", NS) is None


def test_filter_by_funder_and_file_names(session, office):
    durand, petit = office.clients
    alice = office.carers[0]
    va = office.visit(durand, alice, "2026-11-23", "09:00", arrival="09:00",
                      departure="10:00", retained=("09:00", "10:00"))
    vp = office.visit(petit, alice, "2026-11-23", "11:00", arrival="11:00",
                      departure="12:00", retained=("11:00", "12:00"))
    # before Petit's plan starts: no funder, not in the file
    vx = office.visit(petit, alice, "2026-10-30", "11:00", arrival="11:00",
                      departure="12:00", retained=("11:00", "12:00"))
    session.commit()
    issued = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)
    d = esppadom.prepare(session, office.org.id, date(2026, 10, 1), date(2026, 11, 30),
                         office.funders["PCH"].id, issued=issued)
    assert d.filename == "SAAD449-20261001_20261130-PCH-2612010930.xml"
    doc = etree.fromstring(b"".join(d.chunks()))
    SCHEMA.assertValid(doc)
    assert set(advices(doc)) == {str(vp.id)}
    _, doc, _ = export(session, office.org, date(2026, 10, 1))
    assert set(advices(doc)) == {str(va.id), str(vp.id)}
    assert str(vx.id) not in advices(doc)
    d = esppadom.prepare(session, office.org.id, *NOV, issued=issued)
    assert d.filename == "SAAD449-202611-ALL-2612010930.xml"


def test_days_are_the_agencys_local_days(session, office):
    durand, alice = office.clients[0], office.carers[0]
    late = office.visit(durand, alice, "2026-11-30", "23:30", 20, arrival="23:30",
                        departure="23:50", retained=("23:30", "23:50"))
    # 00:30 in Paris on 1 December is still 30 November in UTC: not in November's file
    next_month = office.visit(durand, alice, "2026-12-01", "00:30", 20, arrival="00:30",
                              departure="00:50", retained=("00:30", "00:50"))
    session.commit()
    _, doc, _ = export(session, office.org)
    by = advices(doc)
    assert str(next_month.id) not in by
    assert x(by[str(late.id)], EFFECTIVE + "ram:StartDateTime/ram:CertifiedDateTime") == \
        "2026-11-30T23:30:00"
    assert x(by[str(late.id)], BILLED) == "0.33"


def test_an_empty_range_is_a_valid_empty_file(session, office):
    _, doc, chunks = export(session, office.org, date(2026, 6, 1), date(2026, 6, 30))
    assert advices(doc) == {}
    assert b"".join(chunks).startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_an_organisation_without_siret_is_refused(session, office):
    office.org.siret = ""
    session.commit()
    with pytest.raises(ExportError) as e:
        esppadom.prepare(session, office.org.id, *NOV)
    assert e.value.status == 422 and "SIRET" in e.value.message


def test_a_funder_without_identifier_is_named_before_anything_is_written(session, office):
    durand, petit = office.clients
    cpam = office.funders["AM"]
    session.add(FundingPlan(organisation_id=office.org.id, client_id=petit.id,
                            funder_id=cpam.id, reference="AM-1", valid_from=date(2026, 1, 1)))
    office.visit(durand, office.carers[0], "2026-11-23", "09:00", arrival="09:00",
                 departure="10:00", retained=("09:00", "10:00"))
    session.commit()
    # CPAM has a plan but no visit of the range goes to it: the export goes ahead
    export(session, office.org)
    office.visit(petit, office.carers[0], "2026-11-23", "11:00", arrival="11:00",
                 departure="12:00", retained=("11:00", "12:00"), service=office.service)
    session.commit()
    # Petit's PCH plan and his AM plan both cover the visit: the older plan (PCH) wins
    export(session, office.org)
    pch_plan = session.query(FundingPlan).filter_by(reference="PCH-77").one()
    session.delete(pch_plan)
    session.commit()
    with pytest.raises(ExportError) as e:
        esppadom.prepare(session, office.org.id, *NOV)
    assert e.value.status == 422
    assert f"funder {cpam.id} (CPAM, AM)" in e.value.message
    with pytest.raises(ExportError):
        esppadom.prepare(session, office.org.id, *NOV, funder_id=cpam.id)
    # the APA file alone does not involve CPAM
    export(session, office.org, funder=office.funders["APA"].id)


def test_text_is_escaped(session, office):
    durand = office.clients[0]
    durand.name = 'Mme "Durand" & <fils>\x01'
    session.commit()
    v = office.visit(durand, office.carers[0], "2026-11-23", "09:00", arrival="09:00",
                     departure="10:00", retained=("09:00", "10:00"))
    session.commit()
    _, doc, _ = export(session, office.org)
    assert x(advices(doc)[str(v.id)], DELIVERY + "ram:ShipToCITradeParty/pie:Name") == \
        'Mme "Durand" & <fils>'


def test_many_visits_come_in_many_chunks(session, office):
    durand, alice = office.clients[0], office.carers[0]
    for day in range(1, 31):
        for hour in range(7, 19):
            office.visit(durand, alice, f"2026-11-{day:02d}", f"{hour:02d}:00", 50,
                         arrival=f"{hour:02d}:00", departure=f"{hour:02d}:50",
                         retained=(f"{hour:02d}:00", f"{hour:02d}:50"))
    session.commit()
    _, doc, chunks = export(session, office.org)
    assert len(advices(doc)) == 30 * 12
    assert len(chunks) > 5
    assert all(len(c) < 2 * esppadom.CHUNK for c in chunks)


def test_a_range_backwards_or_an_unknown_funder(session, office):
    with pytest.raises(ExportError) as e:
        esppadom.prepare(session, office.org.id, date(2026, 11, 30), date(2026, 11, 1))
    assert e.value.status == 422
    with pytest.raises(ExportError) as e:
        esppadom.prepare(session, office.org.id, *NOV, funder_id=999)
    assert e.value.status == 404
    with pytest.raises(ExportError) as e:
        esppadom.prepare(session, 999, *NOV)
    assert e.value.status == 404


@pytest.mark.parametrize("mode, step, policy, clocked, billed", [
    ("nearest", 15, "bill", "10:05", "1.00"),   # 1 h clocked 1 h 05: retained 1 h
    ("nearest", 30, "bill", "10:20", "1.50"),   # 1 h 20, half-hour rounding: 1 h 30
    ("none", 15, "cap", "10:20", "1.00"),       # 1 h 20, overruns not billed: 1 h
])
def test_the_guides_examples_through_the_agencys_rules(session, office, mode, step, policy,
                                                       clocked, billed):
    """The retained period as fleet.retained derives it from the raw clock times, then the
    export: raw 09:00 to `clocked` in the effective period, `billed` hours retained."""
    from fleet.models import VisitRecord
    from fleet.retained import retained_period

    org = office.org
    org.rounding_mode, org.rounding_step_min, org.overrun_policy = mode, step, policy
    v = office.visit(office.clients[0], office.carers[0], "2026-11-23", "09:00",
                     arrival="09:00", departure=clocked)
    rec = session.query(VisitRecord).filter_by(visit_id=v.id).one()
    rec.retained_start, rec.retained_end = retained_period(rec.actual_start, rec.actual_end,
                                                           v, org)
    session.commit()
    _, doc, _ = export(session, org)
    a = advices(doc)[str(v.id)]
    assert x(a, BILLED) == billed
    assert x(a, EFFECTIVE + "ram:EndDateTime/ram:CertifiedDateTime") == \
        f"2026-11-23T{clocked}:00"
    assert a.find(ACTUAL + "ram:TypeCode", NS) is None
