"""The outbox's `webhook` channel: sign a queued event and POST it to its endpoint.

Run by the outbox's dispatcher only (fleet.outbox.dispatch_due), never in a request or an
ingest batch. The signature is HMAC-SHA256, keyed by the endpoint's secret, of
`<unix time> + "." + <body>`, sent as `Telegest-Signature: t=<unix time>,v1=<hex>`; the time
is the send's, so a receiver may refuse an old replay (docs/integrations.md). The endpoint is
read at send time: a disabled or deleted one is not posted to. Redirects are not followed and
nothing of the answer is kept but its status and first bytes (SSRF care, docs/integrations.md).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from fleet.config import Settings
from fleet.models import WebhookEndpoint

if TYPE_CHECKING:  # fleet.outbox builds its SENDERS table from this module
    from fleet.outbox import Letter

TIMEOUT_S = 5  # connect and each read: a slow endpoint holds the dispatcher no longer
SIGNATURE_HEADER = "Telegest-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float | None = None,
           tolerance_s: int = 300) -> bool:
    """What a receiver does (the Python of docs/integrations.md, used by the tests)."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, ts, body).split("v1=", 1)[1]
    fresh = abs((time.time() if now is None else now) - ts) <= tolerance_s
    return fresh and hmac.compare_digest(expected, fields.get("v1", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913
        return None  # a 3xx is an answer like any other: refused below


_opener = urllib.request.build_opener(_NoRedirect)


class WebhookSender:
    def unavailable(self, settings: Settings) -> str | None:
        return None

    def load(self, session: Session, letter: Letter) -> Letter:
        """The endpoint's URL and secret as they are now, read before the send."""
        from fleet.outbox import SendError

        endpoint = session.get(WebhookEndpoint, (letter.payload or {}).get("endpoint_id"))
        if endpoint is None:
            raise SendError("endpoint deleted · destination supprimée", permanent=True)
        if not endpoint.active:
            raise SendError("endpoint disabled · destination désactivée", permanent=True)
        return dataclasses.replace(letter, recipient=endpoint.url,
                                   payload={**(letter.payload or {}), "secret": endpoint.secret})

    def send(self, letter: Letter, settings: Settings) -> None:
        from fleet.outbox import SendError

        body = letter.body.encode()
        payload = letter.payload or {}
        request = urllib.request.Request(letter.recipient, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "telegest-webhooks/1",
            "Telegest-Event": letter.subject, "Telegest-Delivery": str(payload.get("event_id")),
            SIGNATURE_HEADER: sign(payload["secret"], int(time.time()), body)})
        try:
            with _opener.open(request, timeout=TIMEOUT_S) as answer:
                status = answer.status
        except urllib.error.HTTPError as e:
            head = e.read(200).decode(errors="replace") if e.fp else ""
            e.close()
            # 410 Gone: the receiver says never again; anything else may be passing
            raise SendError(f"HTTP {e.code} {head}".strip(), permanent=e.code == 410) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            why = getattr(e, "reason", e)
            raise SendError(f"{type(why).__name__}: {why}") from None
        if not 200 <= status < 300:
            raise SendError(f"HTTP {status}")
