"""The HTTPS device gateway: what a phone (the caregiver web app) calls instead of MQTT.

A browser cannot reach Mosquitto (Debian's build has no WebSocket listener), so the phone
speaks JSON over HTTPS with the same payloads as the MQTT topics (docs/protocol.md, "Device
gateway (HTTPS)"): `POST /gw/v1/clock` takes an `up/clock` batch and answers the `down/ack`
only after the commit; `POST /gw/v1/health` an `up/health` report; `GET /gw/v1/config` the
phone's planning; `GET /gw/v1/cmd` its commands; `/gw/v1/sos` and `/gw/v1/push` its SOS and
Web Push subscription (fleet.gateway.sos). The same `fleet.ingest` checks apply.
"""
from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from fleet.gateway import absences, inbox, routes, sos

    app.include_router(routes.router, prefix="/gw/v1")
    app.include_router(absences.router, prefix="/gw/v1")  # absences, the professional card
    app.include_router(inbox.router, prefix="/gw/v1")  # messages and call-backs
    app.include_router(sos.router, prefix="/gw/v1")
    routes.install_errors(app)
