"""Fixtures of the webhook and quota tests: a real HTTP server in this process that records the
webhooks it receives (and may answer an error, or not be listening at all), an agency with an
endpoint."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleet import webhook_delivery, webhooks
from tests.fleet.conftest import make_agency
from tools.broker import free_port


class Receiver:
    """An HTTP server on 127.0.0.1:`port`; `start()` / `stop()` at will (stopped: connections
    are refused). Keeps each POST as (headers, body bytes); answers `status`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[tuple[dict, bytes]] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self, secret: str) -> list[dict]:
        """The bodies received, each checked against its signature (an AssertionError if one
        is wrong)."""
        out = []
        with self._lock:
            received = list(self.received)
        for headers, body in received:
            assert webhook_delivery.verify(secret, headers["Telegest-Signature"], body), headers
            out.append(json.loads(body))
        return out


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def hooked(session, receiver):
    """make_agency plus one endpoint at the receiver for every event: (agency, endpoint,
    secret)."""
    agency = make_agency(session)
    endpoint, secret = webhooks.create(session, agency["org"].id, receiver.url,
                                       ["visit.created", "visit.modified", "visit.cancelled",
                                        "clock.in", "clock.out", "anomaly"], who="test")
    session.commit()
    return agency, endpoint, secret
