"""Argument types for the `telegest` command table: a bad value is refused by argparse before
any handler runs (so before anything is erased, written or sent), with one line saying what was
expected; `Parser` prints that line as `telegest: ...` and exits with code 2.

Exit codes of every `telegest` command (docs/technician.md, "Exit codes"):
0 done; 2 refused or failed with a message saying why (bad argument, bad file, nothing answers,
the board or the fleet said no); 70 a bug (an unexpected error: the message says to report it);
130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

EXIT_OK, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 0, 2, 70, 130
DOCUMENTED_EXIT_CODES = (EXIT_OK, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED)
_INT64 = 2**63 - 1
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$")


class Parser(argparse.ArgumentParser):
    """argparse with its usage error as one `telegest:` line (the usage is in --help)."""

    def add_argument(self, *args, **kwargs):
        if kwargs.get("type") is int:  # a number a database or a socket can hold
            kwargs["type"] = integer
        if "--db" in args and "type" not in kwargs:  # every command's database, checked alike
            kwargs["type"] = database_url
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        where = self.prog.removeprefix("telegest").strip()
        sys.stderr.write(f"telegest: {where + ': ' if where else ''}{message} "
                         f"(see `{self.prog} --help`)\n")
        sys.exit(EXIT_ERROR)


def _ranged(kind: type, lo: float | None, hi: float | None, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what}")
        return value
    parse.__name__ = kind.__name__
    return parse


integer = _ranged(int, -_INT64, _INT64, "a whole number of at most 19 digits")
positive_int = _ranged(int, 1, _INT64, "a whole number from 1")
count = _ranged(int, 0, 1_000_000, "a whole number from 0 to 1000000")
seconds = _ranged(float, 0, 86_400 * 366, "a number of seconds, 0 or more")
positive_seconds = _ranged(float, 0.001, 86_400 * 366, "a number of seconds above 0")
port_number = _ranged(int, 1, 65535, "a TCP port from 1 to 65535")
baud = _ranged(int, 300, 12_000_000, "a baud rate such as 115200")


def host(text: str) -> str:
    """A host name or an IP address (IPv6 without brackets)."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOST.match(text) or text.replace(".", "").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or an IP address")
    return text


def broker(text: str) -> str:
    """host:port, mqtt://host:port or host (port 1883): checked, returned as given."""
    parse_broker(text)
    return text


def brokers(text: str) -> str:
    """One broker address or several separated by commas (a cluster's MQTT listeners, tried
    in turn): each checked as `broker`, returned as given."""
    if not [parse_broker(t) for t in text.split(",") if t.strip()]:
        raise argparse.ArgumentTypeError("expected host:port, several separated by commas")
    return text


def parse_brokers(text: str) -> list[tuple[str, int]]:
    return [parse_broker(t.strip()) for t in text.split(",") if t.strip()]


def nats_urls(text: str) -> str:
    """nats://host:port, several separated by commas."""
    for url in (t.strip() for t in text.split(",")):
        if not url.startswith(("nats://", "tls://")):
            raise argparse.ArgumentTypeError(
                f"bad NATS server address {url!r}: expected nats://host:port, several "
                "separated by commas")
        parse_broker(url.split("://", 1)[1])
    return text


def parse_broker(text: str) -> tuple[str, int]:
    rest = text.split("://", 1)[1] if "://" in text else text
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [::1]:1883
        h, sep, p = rest[1:].partition("]")
        p = p[1:] if p.startswith(":") else ("1883" if not p else "x")
        if not sep:
            p = "x"
    elif rest.count(":") == 1:
        h, _, p = rest.partition(":")
    else:
        h, p = rest, "1883"
    example = "expected host:port, e.g. 127.0.0.1:1883"
    try:
        port = port_number(p)
        host(h)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"bad broker address {text!r} ({e}): {example}") from None
    return h, port


def http_url(text: str) -> str:
    """http(s)://host[:port][/path]."""
    try:
        u = urlsplit(text)
        u.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad URL {text!r}: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise argparse.ArgumentTypeError(
            f"bad URL {text!r}: expected http://host:port, e.g. http://127.0.0.1:8000")
    return text.rstrip("/")


def ident(text: str) -> str:
    """A device id: letters, digits, '.', '_' and '-', up to 64, e.g. r-0042."""
    if not _IDENT.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device id: letters, digits, '.', '_' and '-' (no spaces), "
            "1 to 64 characters, e.g. r-0042")
    return text


def flash_address(text: str) -> int:
    """A flash offset: 0x1000, 4096, 0x0..."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a flash offset: give it in hex (0x1000) or decimal") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r}: a flash offset is from 0x0 to 0xFFFFFFFF")
    return value


def database_url(text: str) -> str:
    """A SQLAlchemy URL for SQLite or PostgreSQL; a SQLite file's folder must exist."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    example = ("expected sqlite:///path/to/telegest.db or "
               "postgresql+psycopg://user@host:5432/telegest")
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise argparse.ArgumentTypeError(f"bad database URL {text!r}: {example}") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise argparse.ArgumentTypeError(
            f"database {backend!r} is not supported ({text!r}): {example}")
    if backend == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{url.database} is a folder, not a database file")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(
                f"no folder {path.parent} for the database {path.name}: create it first")
    return text


def serial_url(text: str) -> str:
    """A pyserial URL: a device path (/dev/ttyUSB0, COM3), socket://host:port,
    rfc2217://host:port or loop://."""
    example = "/dev/ttyUSB0, COM3, socket://host:port, rfc2217://host:port or loop://"
    if not text.strip():
        raise argparse.ArgumentTypeError(f"give a serial port: {example}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    if scheme in ("socket", "rfc2217"):
        netloc = rest.split("?", 1)[0].rstrip("/")
        h, colon, p = netloc.rpartition(":")
        if not colon or not h:
            raise argparse.ArgumentTypeError(
                f"{text!r} has no port: write {scheme}://host:port, e.g. "
                f"{scheme}://127.0.0.1:4000")
        try:
            port_number(p)
            host(h.strip("[]"))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"bad serial URL {text!r}: {e}") from None
        return text
    if scheme in ("loop", "spy", "hwgrep", "alt", "cp2110"):
        return text
    raise argparse.ArgumentTypeError(f"unknown kind of port {scheme}://: {example}")


def nfc_lang(text: str) -> str:
    """An NDEF Text record's language code: fr, en, fr-FR..."""
    if not re.match(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$", text) or len(text) > 35:
        raise argparse.ArgumentTypeError(f"{text!r} is not a language code such as fr or fr-FR")
    return text


def folder(text: str) -> str:
    """A folder that exists or can be made (not a file, nor inside one)."""
    p = Path(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("give a folder")
    try:
        for q in (p, *p.parents):
            if q.exists():
                if not q.is_dir():
                    raise argparse.ArgumentTypeError(
                        f"{q} is a file, not a folder" + ("" if q == p else f" (for {text})"))
                break
    except OSError as e:  # a name too long, a loop of links
        raise argparse.ArgumentTypeError(f"{text[:60]!r}…: {e.strerror}") from None
    return text
