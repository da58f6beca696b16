"""The daily quota counted in Redis (TELEGEST_QUOTA_REDIS_URL, fleet.quotas.RedisCounter),
against a real redis-server this test starts: two API apps (as two API processes) share one
exact count, threads at once never take the same call, the key expires a day after its day,
and a Redis that stops answering leaves the API answering (counted in the database)."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet import quotas
from fleet.api.app import create_app
from fleet.config import Settings, SettingsError
from fleet.models import ApiKey, ApiKeyUsage
from tests.helpers import telegest
from tests.hooks.test_api_quota import new_key
from tools.broker import free_port

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", str(tmp_path)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def two_apps(database_url, redis_server):
    """Two API apps on one database and one Redis (this test's own), as two API processes."""
    apps = [create_app(Settings(database_url=database_url, quota_redis_url=redis_server.url))
            for _ in range(2)]
    yield apps
    for app in apps:
        app.state.quota_counter.close()


def test_two_api_processes_share_one_count_in_redis(two_apps):
    a, b = two_apps
    key = new_key(a.state.sessions, daily_quota=3)
    with TestClient(a) as ca, TestClient(b) as cb:
        for c in (ca, cb):
            c.headers["Authorization"] = f"Bearer {key}"
        answers = [c.get("/api/v1/clients") for c in (ca, cb, ca, cb)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert int(answers[3].headers["Retry-After"]) >= 1
    with a.state.sessions() as s:
        assert s.scalars(select(ApiKeyUsage)).all() == []  # no database write per call
        assert quotas.used_today(s, s.scalars(select(ApiKey)).one(), None,
                                 a.state.quota_counter) == 4


def test_the_apikey_list_command_reads_the_count_from_redis(two_apps, redis_server,
                                                            database_url):
    a = two_apps[0]
    key = new_key(a.state.sessions, daily_quota=3)
    with TestClient(a) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        c.get("/api/v1/clients")
        c.get("/api/v1/clients")
    out = telegest("fleet", "apikey", "list", "--json", "--db", database_url,
                   env={"TELEGEST_QUOTA_REDIS_URL": redis_server.url})
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["calls_today"] == 2


def test_threads_at_once_take_exactly_the_quota_and_the_day_key_expires(two_apps):
    counter = two_apps[0].state.quota_counter
    with two_apps[0].state.sessions() as s:
        new_key(two_apps[0].state.sessions, daily_quota=50)
        key = s.scalars(select(ApiKey)).one()
        s.expunge(key)
    now = datetime.now(timezone.utc)
    start, seen, lock = threading.Barrier(8), [], threading.Lock()

    def client() -> None:
        start.wait()
        for _ in range(25):
            calls = counter.count(key, now).calls
            with lock:
                seen.append(calls)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 201))  # each call its own number
    assert sum(1 for n in seen if n <= 50) == 50
    name = counter._key(key, now.date())
    ttl = counter._redis.ttl(name)
    end_of_day = quotas._day_and_reset(now)[1].timestamp()
    assert end_of_day - now.timestamp() < ttl <= end_of_day - now.timestamp() + 86400 + 1


def test_redis_gone_the_api_still_answers_counting_in_the_database(two_apps, redis_server,
                                                                   caplog):
    app = two_apps[0]
    key = new_key(app.state.sessions, daily_quota=10)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        assert c.get("/api/v1/clients").headers["X-RateLimit-Remaining"] == "9"
        redis_server.stop()
        r = c.get("/api/v1/clients")
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "9"  # the DB's 1st
    assert app.state.quota_counter.fallbacks == 1
    assert "counting in the database" in caplog.text
    with app.state.sessions() as s:
        assert s.scalars(select(ApiKeyUsage.calls)).one() == 1


def test_a_quota_redis_url_that_is_not_redis_is_refused(database_url):
    with pytest.raises(SettingsError, match="TELEGEST_QUOTA_REDIS_URL"):
        Settings(database_url=database_url, quota_redis_url="http://127.0.0.1:6379")


def test_the_apikey_list_command_names_a_wrong_redis_url(database_url):
    out = telegest("fleet", "apikey", "list", "--db", database_url,
                   env={"TELEGEST_QUOTA_REDIS_URL": "http://127.0.0.1:6379"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "TELEGEST_QUOTA_REDIS_URL='http://127.0.0.1:6379': a redis://" in out.stderr
