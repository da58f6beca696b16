"""The gateway's SOS and Web Push endpoints (docs/protocol.md, "SOS" and "Web Push").

`POST /gw/v1/sos` stores a phone's SOS (fleet.sos) and answers only after the commit, so a
phone that got the answer may forget it; a resend of the same `id` answers the same. A blocked
phone gets the usual 403 with Clear-Site-Data (the `Phone` dependency): its SOS is refused and
the phone erased. `GET /gw/v1/sos` gives the agency's SOS number, the fleet's VAPID public key
and the phone's SOS of the last day with their acknowledgement. `POST` and `DELETE
/gw/v1/push` store or drop the phone's Web Push subscription.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints, field_validator

from fleet import sos, webpush
from fleet.api.deps import SessionDep
from fleet.gateway.routes import NO_STORE, Phone
from fleet.models import AlertSettings

router = APIRouter(tags=["device gateway"])
MAX_AGE_S = 7 * 86400  # an SOS older than this on the phone's clock is stamped as received


class SosIn(BaseModel):
    """`id`: the phone's own id for this SOS (resends carry the same); `ts`: its clock;
    `pos`: [lat, lon, accuracy in metres] if it has one; `visit`: the visit it thinks of."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    ts: int = Field(ge=0, le=2**40)
    pos: list[float] | None = Field(None, min_length=3, max_length=3)
    visit: int | None = Field(None, ge=1, le=2**31 - 1)

    @field_validator("pos")
    @classmethod
    def _position(cls, pos: list[float] | None) -> list[float] | None:
        if pos is None:
            return None
        lat, lon, acc = pos
        if not all(math.isfinite(v) for v in pos) or not (-90 <= lat <= 90 and
                                                          -180 <= lon <= 180 and
                                                          0 <= acc <= 100_000):
            raise ValueError("pos is [lat, lon, accuracy_m]: -90..90, -180..180, 0..100000")
        return pos


@router.post("/sos")
def raise_sos(body: SosIn, device: Phone, session: SessionDep,
              request: Request) -> JSONResponse:
    now = datetime.now(timezone.utc)
    ts = datetime.fromtimestamp(body.ts, timezone.utc)
    if (now - ts).total_seconds() > MAX_AGE_S:
        ts = now
    position = sos.Position(body.pos[0], body.pos[1], round(body.pos[2])) if body.pos else None
    alert, new = sos.raise_sos(session, device, body.id, ts, position, body.visit,
                               request.app.state.settings.public_url, now)
    session.commit()
    return JSONResponse({"id": body.id, "stored": True, "new": new, "sos": alert.id},
                        headers=NO_STORE)


@router.get("/sos")
def sos_state(device: Phone, session: SessionDep, request: Request) -> JSONResponse:
    rules = session.get(AlertSettings, device.organisation_id)
    return JSONResponse({"number": rules.sos_number if rules else "",
                         "push_key": webpush.public_key(request.app.state.settings),
                         "alerts": sos.for_device(session, device)}, headers=NO_STORE)


class PushKeys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=64)


class PushSubscriptionIn(BaseModel):
    """A browser's PushSubscription.toJSON()."""

    endpoint: str = Field(max_length=1000)
    keys: PushKeys


@router.post("/push")
def push_subscribe(body: PushSubscriptionIn, device: Phone, session: SessionDep,
                   request: Request) -> JSONResponse:
    try:
        webpush.subscribe(session, device, body.endpoint, body.keys.p256dh, body.keys.auth,
                          request.app.state.settings.webpush_allow_http)
    except webpush.SubscriptionProblem as e:
        session.rollback()
        return JSONResponse({"error": "bad_subscription", "detail": str(e)}, 422,
                            headers=NO_STORE)
    session.commit()
    return JSONResponse({"subscribed": True}, headers=NO_STORE)


class PushEndpoint(BaseModel):
    endpoint: str = Field(max_length=1000)


@router.delete("/push")
def push_unsubscribe(body: PushEndpoint, device: Phone, session: SessionDep) -> JSONResponse:
    gone = webpush.unsubscribe(session, device, body.endpoint)
    session.commit()
    return JSONResponse({"subscribed": False, "removed": gone}, headers=NO_STORE)
