"""Settings of the fleet service, read from the environment and checked at start.

Nothing secret has a default: an MQTT password, when the broker needs one, comes from the
environment or not at all.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite:///var/telegest.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_WEAK_SECRETS = {"", "changeme", "change-me", "secret", "password", "admin", "telegest"}


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable."""


def parse_addresses(text: str, name: str) -> list[tuple[str, int]]:
    """'host:port,host:port' -> [(host, port), ...]; a clear error naming `name` otherwise."""
    out = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(f"{name}: {item!r} is not host:port (several separated by "
                                "commas, e.g. 127.0.0.1:1883,127.0.0.1:1884)")
        out.append((host, int(port)))
    return out


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _bool(name: str, default: str) -> bool:
    raw = (_env(name, default) or default).lower()
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise SettingsError(f"{name}={raw!r}: expected 1 or 0")
    return raw in ("1", "true", "yes")


def _int(name: str, default: int, lo: int, hi: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value}: expected {lo}..{hi}")
    return value


def check_redis_url(url: str | None) -> None:
    """TELEGEST_QUOTA_REDIS_URL, when set, is Redis's: SettingsError otherwise."""
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"TELEGEST_QUOTA_REDIS_URL={url!r}: a redis://, rediss:// or "
                            "unix:// URL")


@dataclass(frozen=True)
class Settings:
    """`Settings()` reads TELEGEST_* variables; keyword arguments override them (tests)."""

    database_url: str = field(
        default_factory=lambda: _env("TELEGEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    mqtt_host: str = field(default_factory=lambda: _env("TELEGEST_MQTT_HOST", "127.0.0.1"))
    mqtt_port: int = field(default_factory=lambda: _int("TELEGEST_MQTT_PORT", 1883, 1, 65535))
    mqtt_username: str | None = field(default_factory=lambda: _env("TELEGEST_MQTT_USERNAME"))
    mqtt_password: str | None = field(default_factory=lambda: _env("TELEGEST_MQTT_PASSWORD"))
    mqtt_tls: bool = field(
        default_factory=lambda: (_env("TELEGEST_MQTT_TLS", "0") or "0").lower()
        in ("1", "true", "yes"))
    mqtt_protocol: str = field(default_factory=lambda: _env("TELEGEST_MQTT_PROTOCOL", "v5"))
    # more MQTT listeners to move to when the one in use fails ("host:port,host:port": a NATS
    # cluster's nodes); the worker tries mqtt_host:mqtt_port first, then these in turn
    mqtt_brokers: str = field(default_factory=lambda: _env("TELEGEST_MQTT_BROKERS", ""))
    # NATS mode (fleet.nats_transport): the worker consumes the devices' up subjects through a
    # JetStream consumer on these servers ("nats://host:port,..."); unset: MQTT (Mosquitto)
    nats_urls: str = field(default_factory=lambda: _env("TELEGEST_NATS_URLS", ""))
    # replicas of the worker's JetStream stream; 0: one per server given, at most 3
    nats_replicas: int = field(default_factory=lambda: _int("TELEGEST_NATS_REPLICAS", 0, 0, 5))
    batch_max: int = field(
        default_factory=lambda: _int("TELEGEST_INGEST_BATCH_MAX", 500, 1, 100_000))
    batch_wait_ms: int = field(
        default_factory=lambda: _int("TELEGEST_INGEST_BATCH_WAIT_MS", 50, 0, 60_000))
    log_level: str = field(default_factory=lambda: _env("TELEGEST_LOG_LEVEL", "INFO"))
    # the fleet-duties lease (fleet.lease): a dead leader is replaced within about this
    lease_ttl_s: int = field(default_factory=lambda: _int("TELEGEST_LEASE_TTL_S", 15, 2, 600))
    # the leader's alert sweeps (device offline, late and missed visits) run this often
    alert_sweep_s: int = field(default_factory=lambda: _int("TELEGEST_ALERT_SWEEP_S", 30, 1, 3600))
    # every absolute link the fleet hands out (enrolment QR codes, e-mails) starts here, never
    # with the Host header a request came with; unset: DEFAULT_PUBLIC_URL (`fleet api` and
    # `up` put their own port there), fine on one machine, wrong for a phone
    public_url: str = field(
        default_factory=lambda: _env("TELEGEST_PUBLIC_URL", DEFAULT_PUBLIC_URL))
    public_url_configured: bool = field(
        default_factory=lambda: _env("TELEGEST_PUBLIC_URL") is not None)
    # console sessions (fleet.console.sessions): end after this long without a request, and
    # after the absolute lifetime however active
    console_idle_minutes: int = field(
        default_factory=lambda: _int("TELEGEST_CONSOLE_IDLE_MINUTES", 30, 1, 24 * 60))
    console_session_minutes: int = field(
        default_factory=lambda: _int("TELEGEST_CONSOLE_SESSION_MINUTES", 480, 5, 31 * 24 * 60))
    # API quotas counted in Redis rather than the database (fleet.quotas.RedisCounter)
    quota_redis_url: str | None = field(
        default_factory=lambda: _env("TELEGEST_QUOTA_REDIS_URL"))
    # the outbox (fleet.outbox): SMTP server; no host = e-mails wait in the outbox
    smtp_host: str | None = field(default_factory=lambda: _env("TELEGEST_SMTP_HOST"))
    smtp_port: int = field(default_factory=lambda: _int("TELEGEST_SMTP_PORT", 587, 1, 65535))
    smtp_username: str | None = field(default_factory=lambda: _env("TELEGEST_SMTP_USERNAME"))
    smtp_password: str | None = field(default_factory=lambda: _env("TELEGEST_SMTP_PASSWORD"))
    smtp_from: str | None = field(default_factory=lambda: _env("TELEGEST_SMTP_FROM"))
    smtp_starttls: bool = field(default_factory=lambda: _bool("TELEGEST_SMTP_STARTTLS", "1"))
    outbox_poll_s: int = field(default_factory=lambda: _int("TELEGEST_OUTBOX_POLL_S", 5, 1, 600))
    # the retention job (fleet.retention): run by the lease holder at start, then this often
    retention_every_s: int = field(
        default_factory=lambda: _int("TELEGEST_RETENTION_EVERY_S", 86400, 60, 7 * 86400))
    # a row is tried this many times (waiting outbox_backoff_s, doubling) before it is dead
    outbox_max_attempts: int = field(
        default_factory=lambda: _int("TELEGEST_OUTBOX_MAX_ATTEMPTS", 8, 1, 100))
    # Web Push (fleet.webpush): the fleet's VAPID key pair, made there (0600) on first use;
    # unset: beside the SQLite database (`telegest up`'s data folder), else var/
    vapid_key_file: str = field(default_factory=lambda: _env("TELEGEST_VAPID_KEY_FILE", ""))
    # push endpoints are https; plain http only for a test's own push service
    webpush_allow_http: bool = field(
        default_factory=lambda: _bool("TELEGEST_WEBPUSH_ALLOW_HTTP", "0"))
    outbox_backoff_s: int = field(
        default_factory=lambda: _int("TELEGEST_OUTBOX_BACKOFF_S", 60, 1, 86_400))

    def __post_init__(self) -> None:
        try:
            url = make_url(self.database_url)
        except ArgumentError:
            raise SettingsError(
                f"TELEGEST_DATABASE_URL={self.database_url!r} is not a database URL") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise SettingsError("TELEGEST_DATABASE_URL: only sqlite and postgresql are supported")
        check_redis_url(self.quota_redis_url)
        if self.mqtt_protocol not in ("v5", "v311"):
            raise SettingsError(f"TELEGEST_MQTT_PROTOCOL={self.mqtt_protocol!r}: v5 or v311")
        self._check_cluster()
        if self.mqtt_username and self.mqtt_password is None:
            raise SettingsError("TELEGEST_MQTT_USERNAME is set but TELEGEST_MQTT_PASSWORD is not")
        if self.mqtt_password is not None and self.mqtt_password.lower() in _WEAK_SECRETS:
            raise SettingsError("TELEGEST_MQTT_PASSWORD is a well-known default: choose a real one")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"TELEGEST_LOG_LEVEL={self.log_level!r}")
        self._check_public_url()
        self._check_smtp()
        if not self.vapid_key_file:
            folder = (os.path.dirname(url.database) if url.get_backend_name() == "sqlite"
                      and url.database and url.database != ":memory:" else "var")
            object.__setattr__(self, "vapid_key_file",
                               os.path.join(folder or ".", "vapid-private.pem"))

    @property
    def mqtt_addresses(self) -> list[tuple[str, int]]:
        """Every MQTT listener the worker may use, the first one first."""
        return [(self.mqtt_host, self.mqtt_port),
                *(a for a in parse_addresses(self.mqtt_brokers, "TELEGEST_MQTT_BROKERS")
                  if a != (self.mqtt_host, self.mqtt_port))]

    @property
    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_urls.split(",") if u.strip()]

    @property
    def nats_stream_replicas(self) -> int:
        return self.nats_replicas or min(3, max(1, len(self.nats_servers)))

    def _check_cluster(self) -> None:
        parse_addresses(self.mqtt_brokers, "TELEGEST_MQTT_BROKERS")
        for url in self.nats_servers:
            u = urlsplit(url)
            try:
                port = u.port
            except ValueError:
                port = None
            if u.scheme not in ("nats", "tls") or not u.hostname or port is None:
                raise SettingsError(f"TELEGEST_NATS_URLS: {url!r} is not a NATS server address "
                                    "(nats://host:port, several separated by commas)")

    def _check_public_url(self) -> None:
        u = urlsplit(self.public_url)
        if u.scheme not in ("http", "https") or not u.hostname or u.username or u.query \
                or u.fragment or "\\" in self.public_url:
            raise SettingsError(f"TELEGEST_PUBLIC_URL={self.public_url!r}: the address people "
                                "and phones reach the fleet at, as https://telegest.agence.fr "
                                "(no user, query or fragment)")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))

    def link(self, path: str) -> str:
        """An absolute link to `path` (starting with /) on the configured public URL."""
        return self.public_url + path

    def _check_smtp(self) -> None:
        if self.smtp_host is None:
            return
        if not self.smtp_from or not _ADDRESS.match(self.smtp_from):
            raise SettingsError("TELEGEST_SMTP_FROM: the sender address (e.g. "
                                "alertes@agence.fr) is required with TELEGEST_SMTP_HOST")
        if self.smtp_username and self.smtp_password is None:
            raise SettingsError("TELEGEST_SMTP_USERNAME is set but TELEGEST_SMTP_PASSWORD is not")
        if self.smtp_password is not None and self.smtp_password.lower() in _WEAK_SECRETS:
            raise SettingsError("TELEGEST_SMTP_PASSWORD is a well-known default: choose a real one")
