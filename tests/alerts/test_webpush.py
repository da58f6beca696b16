"""fleet.webpush on its own: the RFC 8291 example encrypted byte for byte, a VAPID header the
test's own verifier accepts (tests/push_service.py), the key pair made once with mode 0600, and
notifications queued per subscribed phone in the outbox."""
from __future__ import annotations

import stat

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from fleet import webpush
from fleet.models import Caregiver, Device, Outbox, PushSubscription
from tests.push_service import PushService, check_vapid, decrypt, unb64u

# RFC 8291 Appendix A
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PUBLIC = ("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNto"
             "IAiw4")
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
BODY = ("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInm"
        "YWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQex"
        "SgSxsj_Qulcy4a-fN")


def _key(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64u(b64), "big"), ec.SECP256R1())


def test_rfc8291_example_is_encrypted_byte_for_byte():
    body = webpush.encrypt(PLAINTEXT, UA_PUBLIC, AUTH, salt=unb64u(SALT),
                           server_key=_key(AS_PRIVATE))
    assert webpush.b64u(body) == BODY
    # and the test's own decryption (the browser's side) reads it back
    assert decrypt(body, _key(UA_PRIVATE), unb64u(AUTH)) == PLAINTEXT


def test_a_fresh_encryption_differs_and_still_decrypts():
    a = webpush.encrypt(PLAINTEXT, UA_PUBLIC, AUTH)
    assert a != webpush.encrypt(PLAINTEXT, UA_PUBLIC, AUTH), "new salt and key each time"
    assert decrypt(a, _key(UA_PRIVATE), unb64u(AUTH)) == PLAINTEXT


def test_vapid_key_made_once_0600_and_its_jwt_verifies(tmp_path):
    path = tmp_path / "keys" / "vapid-private.pem"
    key = webpush.private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = webpush.private_key(path)
    assert again.private_numbers() == key.private_numbers(), "made once, then read"
    header = webpush.vapid_header(key, "https://push.example:8443/send/abc",
                                  "mailto:ops@agence.fr")
    k = check_vapid(header, "https://push.example:8443")
    assert unb64u(k)[0] == 4 and len(unb64u(k)) == 65
    forged = header.replace("t=", "t=" + "x", 1)
    with pytest.raises((InvalidSignature, ValueError, AssertionError)):
        check_vapid(forged, "https://push.example:8443")


def test_notify_caregiver_queues_one_row_per_subscribed_active_phone(session):
    from fleet.models import Organisation

    org = Organisation(name="Agence")
    session.add(org)
    session.flush()
    carer = Caregiver(organisation_id=org.id, name="Alice")
    session.add(carer)
    session.flush()
    phones = [Device(ident=f"p{i}", kind="phone", organisation_id=org.id,
                     caregiver_id=carer.id, status=status)
              for i, status in enumerate(("active", "active", "blocked"))]
    session.add_all(phones)
    session.flush()
    sub = PushService()  # its key pair only: no server needed here
    keys = {"p256dh": webpush.b64u(webpush._point(sub.key.public_key())),
            "auth": webpush.b64u(sub.auth)}
    for i, phone in enumerate(phones):
        webpush.subscribe(session, phone, f"https://push.example/{i}", **keys)
    assert webpush.notify_caregiver(session, carer.id, "message", "Nouveau message",
                                    "Lisez-le", "/app/#/messages", dedupe="m:1") == 2
    webpush.notify_caregiver(session, carer.id, "message", "Nouveau message", "Lisez-le",
                             "/app/#/messages", dedupe="m:1")  # the same again: no new row
    rows = session.query(Outbox).filter_by(channel="webpush").all()
    assert sorted(r.payload["endpoint"] for r in rows) == ["https://push.example/0",
                                                           "https://push.example/1"]
    assert rows[0].payload["message"] == {"kind": "message", "title": "Nouveau message",
                                          "body": "Lisez-le", "url": "/app/#/messages"}
    with pytest.raises(ValueError):
        webpush.notify_caregiver(session, carer.id, "spam", "x", "y")
    assert session.query(PushSubscription).count() == 3


def _agency_with_subscribed_alice(session, *others: str):
    """An agency, Alice with one active phone subscribed to push, and caregivers `others`
    without one; returns (organisation, [Alice, *others])."""
    from fleet.models import Organisation

    org = Organisation(name="Agence")
    session.add(org)
    session.flush()
    people = [Caregiver(organisation_id=org.id, name=n) for n in ("Alice", *others)]
    session.add_all(people)
    session.flush()
    phone = Device(ident="p-alice", kind="phone", organisation_id=org.id,
                   caregiver_id=people[0].id, status="active")
    session.add(phone)
    session.flush()
    sub = PushService()
    webpush.subscribe(session, phone, "https://push.example/alice",
                      p256dh=webpush.b64u(webpush._point(sub.key.public_key())),
                      auth=webpush.b64u(sub.auth))
    return org, people


def test_a_message_to_caregivers_is_announced_by_web_push(session):
    """fleet.messages.send_to_caregivers calls announce(): each recipient's subscribed phone
    gets one notification ("Message obligatoire" for a mandatory one); others none."""
    from fleet import messages

    org, (alice, bruno) = _agency_with_subscribed_alice(session, "Bruno")
    msg = messages.send_to_caregivers(session, org, subject="Réunion lundi", body="9 h",
                                      caregiver_ids=[alice.id, bruno.id], mandatory=True,
                                      who="user:chef", role="manager")
    (row,) = session.query(Outbox).filter_by(channel="webpush").all()
    assert row.payload["endpoint"] == "https://push.example/alice"
    assert row.payload["message"] == {"kind": "message", "title": "Message obligatoire",
                                      "body": "Réunion lundi", "url": "/app/#/messages"}
    assert f"message:{msg.id}:{alice.id}:" in row.dedupe_key  # one per message and phone


def test_an_absence_decision_is_announced_to_the_caregiver(session):
    """fleet.absences.decide tells the caregiver's phones by Web Push: "Absence acceptée" with
    the agency's local days, or "Absence refusée" with the office's reason; once per decision."""
    from datetime import date

    from fleet import absences

    _, (alice,) = _agency_with_subscribed_alice(session)
    leave = absences.create(session, alice, "leave", absences.period(
        "Europe/Paris", date(2030, 7, 1), date(2030, 7, 14)), "", who="device:p-alice",
        role="device")
    sick = absences.create(session, alice, "sick", absences.period(
        "Europe/Paris", date(2030, 8, 3), date(2030, 8, 3)), "", who="device:p-alice",
        role="device")
    absences.decide(session, leave, True, "", who="user:chef", role="manager")
    absences.decide(session, sick, False, "déjà remplacée", who="user:chef", role="manager")
    got = [r.payload["message"] for r in
           session.query(Outbox).filter_by(channel="webpush").order_by(Outbox.id)]
    assert got == [
        {"kind": "absence", "title": "Absence acceptée",
         "body": "Votre absence du 01/07 au 14/07 est acceptée.", "url": "/app/#/absences"},
        {"kind": "absence", "title": "Absence refusée",
         "body": "Votre absence du 03/08 est refusée : déjà remplacée",
         "url": "/app/#/absences"}]
