"""The fleet side of the virtual box tests: a mosquitto enforcing device logins (dynamic
security), `telegest fleet api` driving it as `telegest up` runs it, and the ingest worker
logged in as fleet-worker."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fleet.config import Settings
from fleet.worker import IngestWorker
from tests.helpers import READY_S, ROOT
from tools.broker import Broker, free_port, wait_port


@pytest.fixture
def secured(tmp_path):
    broker = Broker("mosquitto", workdir=tmp_path / "secured", auth=True,
                    purpose="the virtual box e2e tests").start()
    yield broker
    broker.stop()


@pytest.fixture
def fleet_api(demo, secured, tmp_path):
    """`telegest fleet api` driving the broker's dynamic security, as `telegest up` runs it."""
    port = free_port()
    env = dict(os.environ, TELEGEST_DYNSEC_USERNAME=secured.admin[0],
               TELEGEST_DYNSEC_PASSWORD=secured.admin[1], TELEGEST_MQTT_HOST=secured.host,
               TELEGEST_MQTT_PORT=str(secured.port))
    log = open(tmp_path / "api.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "fleet", "api", "--db", demo[0],
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        if not wait_port("127.0.0.1", port, READY_S):
            raise AssertionError((tmp_path / "api.log").read_text())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def ingest_worker(db_url: str, broker: Broker) -> IngestWorker:
    """The ingest worker logged in to `broker` as fleet-worker, started."""
    return IngestWorker(Settings(database_url=db_url, mqtt_host=broker.host,
                                 mqtt_port=broker.port, mqtt_username=broker.worker[0],
                                 mqtt_password=broker.worker[1])).start()


@pytest.fixture
def fleet_worker(demo, secured):
    w = ingest_worker(demo[0], secured)
    yield w
    w.stop()
