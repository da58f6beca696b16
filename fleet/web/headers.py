"""Security headers on every response of the fleet's web side (API, console, caregiver app,
gateway), as an ASGI middleware.

The Content-Security-Policy runs scripts and styles from the fleet's own origin only: no inline
script, no inline event handler, no inline style, no eval; nothing may frame a page
(frame-ancestors 'none'). Only the API's own documentation pages (/docs, /redoc: FastAPI's, their
code on cdn.jsdelivr.net) get a wider policy, with the hash of their one inline script.
Strict-Transport-Security is sent only on a request that came over https: the scheme uvicorn
gives the request, which is https behind a reverse proxy only when that proxy's address is
trusted (uvicorn's FORWARDED_ALLOW_IPS; 127.0.0.1 and ::1 by default: a proxy on the same
machine) and it sends X-Forwarded-Proto; the header from anyone else is ignored.
"""
from __future__ import annotations

import base64
import hashlib
import re

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; "
       "media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' https://cdn.jsdelivr.net {hashes}; "
            "style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com "
            "'unsafe-inline'; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; font-src https://fonts.gstatic.com; worker-src 'self' blob:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=31536000; includeSubDomains"
FIXED = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate it
    # links carry no address out: an enrolment link holds a one-time token
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # the caregiver app reads QR codes with the camera and may ask for a position
    (b"permissions-policy", b"camera=(self), geolocation=(self), microphone=(), payment=(), "
                            b"usb=()"),
]
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def script_hashes(html: bytes) -> str:
    """The CSP sources that allow exactly the inline scripts of this page."""
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
        for m in _INLINE_SCRIPT.finditer(html))


class SecurityHeaders:
    """Adds the headers to every HTTP response; a header a route set itself is kept."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        if scope.get("path") in DOCS_PATHS:
            await self._docs(scope, receive, send, https)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _added(message.get("headers", []), CSP, https)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope, receive, send, https: bool) -> None:
        """FastAPI's documentation page, held until its body is known (a few KiB) so that its
        inline script's hash goes in the policy."""
        start: dict = {}
        body = bytearray()

        async def hold(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            csp = DOCS_CSP.format(hashes=script_hashes(bytes(body)))
            await send({**start, "headers": _added(start.get("headers", []), csp, https)})
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, hold)


def _added(headers, csp: str, https: bool) -> list:
    have = {name.lower() for name, _ in headers}
    extra = [(b"content-security-policy", csp.encode()), *FIXED]
    if https:
        extra.append((b"strict-transport-security", HSTS.encode()))
    return list(headers) + [(n, v) for n, v in extra if n not in have]
