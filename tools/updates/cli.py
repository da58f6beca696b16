"""`telegest fleet bundle keygen|create|sign|offer|upload|list` and
`telegest fleet rollout start|status|list|pause|resume|cancel`.

Thin handlers over fleet.updates and fleet.update_signing. Making and signing a bundle and
signing its offer are local file operations (the private key never leaves the release
manager's machine); upload and rollouts act on the database directly, like `telegest fleet
device`, named in the audit log as `cli:<--by>`. A key's passphrase is read from
TELEGEST_KEY_PASSPHRASE, --passphrase-file or a prompt, never from the command line.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.errors import TelegestError

DEFAULT_DB = os.environ.get("TELEGEST_DATABASE_URL", "sqlite:///var/telegest.db")
PASSPHRASE_ENV = "TELEGEST_KEY_PASSPHRASE"
PASSPHRASE_FILE_HELP = (f"a file whose first line is the key's passphrase, when "
                        f"{PASSPHRASE_ENV} is not set (neither: it is asked)")


@contextmanager
def _library() -> Iterator:
    from fleet.updates import UpdateError
    try:
        yield
    except UpdateError as e:
        raise TelegestError(e.message) from None


@contextmanager
def _session(db: str) -> Iterator:
    from fleet.db import make_engine, prepare, session_factory
    prepare(db)
    engine = make_engine(db)
    try:
        with session_factory(engine)() as session, _library():
            yield session
            session.commit()
    finally:
        engine.dispose()


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise TelegestError(f"{path}: {e.strerror}") from None


def _by(args) -> str:
    if not args.by.strip():
        raise TelegestError("--by: say who you are (it goes to the audit log)")
    return f"cli:{args.by.strip()}"


# -- bundles ---------------------------------------------------------------------------------
def _passphrase(args, confirm: bool = False) -> bytes:
    """The key's passphrase: TELEGEST_KEY_PASSPHRASE, else --passphrase-file (its first line),
    else a prompt (twice when `confirm`). Never an argument: argv is visible to every user."""
    pw = os.environ.get(PASSPHRASE_ENV)
    if pw is None and getattr(args, "passphrase_file", None):
        pw = _read(args.passphrase_file).decode("utf-8", "replace").splitlines()[0:1]
        pw = pw[0] if pw else ""
    if pw is None:
        try:
            pw = getpass.getpass("passphrase of the signing key: ")
            if confirm and getpass.getpass("again: ") != pw:
                raise TelegestError("the two passphrases differ")
        except (EOFError, KeyboardInterrupt, OSError):
            raise TelegestError(f"no passphrase: type it at the prompt, or set "
                                f"{PASSPHRASE_ENV}") from None
    if not pw:
        raise TelegestError("an empty passphrase protects nothing")
    return pw.encode()


def _key(args) -> tuple[bytes, bytes | None]:
    """The private key file and, when it is encrypted, its passphrase."""
    from fleet.update_signing import key_is_encrypted
    pem = _read(args.key)
    return pem, _passphrase(args) if key_is_encrypted(pem) else None


def cmd_keygen(args) -> int:
    from fleet.private_files import write_private
    from fleet.update_signing import keygen
    out = Path(args.out)
    if args.passphrase_file and not args.passphrase:
        raise TelegestError("--passphrase-file: add --passphrase, or the key is written "
                            "unencrypted")
    if out.exists():
        raise TelegestError(f"{out} exists: a signing key is never overwritten")
    pem, pub = keygen(_passphrase(args, confirm=True) if args.passphrase else None)
    try:  # 0600 from the start: the file never exists with wider rights
        write_private(out, pem, exclusive=True)
    except OSError as e:
        raise TelegestError(f"cannot write {out}: {e.strerror}") from None
    print(f"private key: {out}{' (encrypted with your passphrase)' if args.passphrase else ''}"
          f" (keep it offline; whoever holds it can update every reader)")
    print("public key, for firmware/trust.py and TELEGEST_UPDATE_KEYS:")
    print(f'KEYS = ("{pub}",)')
    return 0


def cmd_create(args) -> int:
    from fleet.updates import build_bundle, collect_files, write_bundle
    with _library():
        files = collect_files(args.source, args.prefix)
        bundle = build_bundle(args.version, files)
    Path(args.out).write_bytes(write_bundle(bundle))
    size = sum(len(b) for b in files.values())
    print(f"{args.out}: version {args.version}, {len(files)} files, {size} bytes, manifest "
          f"sha256 {bundle.sha256} (unsigned: `telegest fleet bundle sign` next)")
    return 0


def cmd_sign(args) -> int:
    from fleet.updates import read_bundle, sign_bundle
    with _library():
        data = sign_bundle(_read(args.bundle), *_key(args))
        b = read_bundle(data)
    out = args.out or args.bundle
    Path(out).write_bytes(data)
    print(f"{out}: version {b.version} signed (manifest sha256 {b.sha256})")
    return 0


def _duration(text: str) -> int:
    m = re.fullmatch(r"(\d{1,7})([smhd]?)", text.strip())
    if not m or int(m.group(1)) <= 0:
        raise TelegestError(f"--expires-in {text!r}: e.g. 3600, 90m, 48h, 7d")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def cmd_offer(args) -> int:
    from fleet.update_signing import sign_offer
    from fleet.updates import read_bundle
    with _library():
        bundle = read_bundle(_read(args.bundle))
        exp = int(time.time()) + _duration(args.expires_in)
        pem, pw = _key(args)
        offer = sign_offer(pem, bundle, args.channel, exp, args.id, passphrase=pw)
    out = args.out or f"{args.bundle}.offer.json"
    Path(out).write_text(json.dumps(offer, indent=1) + "\n")
    print(f"{out}: offer {offer['oid']} of version {offer['v']} on channel {offer['ch']}, "
          f"valid until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(exp))} "
          f"(`telegest fleet rollout start {offer['v']} --offer {out}` next)")
    return 0


def cmd_upload(args) -> int:
    from fleet.updates import store_bundle
    with _session(args.db) as session:
        row = store_bundle(session, _read(args.bundle), _by(args))
        print(f"bundle {row.id}: version {row.version}, {row.file_count} files, "
              f"{row.size} bytes, signature checked")
    return 0


def cmd_bundle_list(args) -> int:
    from sqlalchemy import select

    from fleet.models import UpdateBundle
    with _session(args.db) as session:
        rows = [{"id": b.id, "version": b.version, "files": b.file_count, "size": b.size,
                 "sha256": b.manifest_sha256, "created_at": b.created_at.isoformat(),
                 "created_by": b.created_by}
                for b in session.scalars(select(UpdateBundle).order_by(UpdateBundle.id))]
    if args.json:
        print(json.dumps(rows, indent=1))
    for r in rows if not args.json else []:
        print(f"{r['id']:>4}  {r['version']:<10} {r['files']:>3} files {r['size']:>8} B  "
              f"{r['sha256'][:16]}…  {r['created_by']}")
    return 0


# -- rollouts --------------------------------------------------------------------------------
def _bundle_id(session, ref: str) -> int:
    from sqlalchemy import select

    from fleet.models import UpdateBundle
    bid = session.scalar(select(UpdateBundle.id).where(UpdateBundle.version == ref))
    if bid is None and ref.isascii() and ref.isdigit():
        bid = int(ref) if session.get(UpdateBundle, int(ref)) else None
    if bid is None:
        raise TelegestError(f"no bundle of version or id {ref!r} (telegest fleet bundle list)")
    return bid


def _print_status(st: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(st, indent=1, default=str))
        return
    print(f"rollout {st['id']}: {st['version']} {st['state']}"
          f"{' (' + st['reason'] + ')' if st['reason'] else ''}; wave {st['wave'] + 1} of "
          f"{len(st['wave_counts'])}; {st['failures']} failed (pauses at {st['max_failures']})")
    if st.get("offer"):
        o = st["offer"]
        print(f"  offer {o['oid']} on channel {o['ch']}, signed valid until "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(o['exp']))}")
    for i, counts in enumerate(st["wave_counts"]):
        print(f"  wave {i + 1}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for t in st["targets"]:
        if t["state"] not in ("waiting", "ok"):
            print(f"  {t['device']:<20} {t['state']:<12} {t['progress']:>3} %  {t['why'] or ''}")


def cmd_start(args) -> int:
    from fleet.updates import rollout_status, start_rollout
    filt = {k: v for k, v in (("fw", args.fw), ("prefix", args.prefix)) if v}
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    if devices is None and not filt and not args.all:
        raise TelegestError("say which devices: --devices a,b,c, --fw, --prefix or --all")
    try:
        waves = [int(w) for w in args.waves.split(",")]
    except ValueError:
        raise TelegestError("--waves: percents, e.g. 10,50,100") from None
    try:
        offer = json.loads(_read(args.offer))
    except ValueError:
        raise TelegestError(f"{args.offer}: not a signed offer (telegest fleet bundle offer)"
                            ) from None
    with _session(args.db) as session:
        r = start_rollout(session, _bundle_id(session, args.bundle), _by(args),
                          devices=devices, filt=None if devices else filt, waves=waves,
                          max_failures=args.max_failures, offer_ttl_s=args.ttl, offer=offer)
        session.flush()
        _print_status(rollout_status(session, r.id), args.json)
    return 0


def cmd_status(args) -> int:
    from fleet.updates import rollout_status
    with _session(args.db) as session:
        _print_status(rollout_status(session, args.id), args.json)
    return 0


def cmd_rollout_list(args) -> int:
    from sqlalchemy import select

    from fleet.models import Rollout
    from fleet.updates import rollout_status
    with _session(args.db) as session:
        for rid in session.scalars(select(Rollout.id).order_by(Rollout.id)).all():
            st = rollout_status(session, rid)
            print(f"{rid:>4}  {st['version']:<10} {st['state']:<9} {len(st['targets'])} devices, "
                  f"{st['failures']} failed")
    return 0


def _steer(action: str) -> Callable[[argparse.Namespace], int]:
    def handler(args) -> int:
        from fleet.updates import rollout_status, set_rollout_state
        with _session(args.db) as session:
            set_rollout_state(session, args.id, action, _by(args), args.reason)
            session.flush()
            _print_status(rollout_status(session, args.id), False)
        return 0
    return handler


def add_commands(fleet_parsers, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `bundle ...` and `rollout ...` under `telegest fleet`;
    `command(parent, name, handler, help)` as in tools.cli."""
    b = fleet_parsers.add_parser(
        "bundle", help="firmware update bundles: keygen, create, sign, offer, upload, list",
        description="signed firmware bundles (docs/updates.md)").add_subparsers(
        dest="bundle_cmd", required=True)
    k = command(b, "keygen", cmd_keygen, "a new Ed25519 signing key (private key file + "
                "the public key for firmware/trust.py)")
    k.add_argument("--out", required=True, help="private key file to create (mode 600)")
    k.add_argument("--passphrase", action="store_true",
                   help=f"encrypt the key with a passphrase (asked, or {PASSPHRASE_ENV}, or "
                        "--passphrase-file)")
    k.add_argument("--passphrase-file", help="file whose first line is the passphrase")
    c = command(b, "create", cmd_create, "bundle a firmware package directory")
    c.add_argument("source", help="the package directory, e.g. firmware/ or a build of .mpy")
    c.add_argument("--version", required=True, help="dotted integers, newer than the fleet's")
    c.add_argument("--prefix", default="firmware", help="package name inside the slot")
    c.add_argument("-o", "--out", required=True, help="bundle file to write (.tgb)")
    s = command(b, "sign", cmd_sign, "sign a bundle's manifest with the release key")
    s.add_argument("bundle")
    s.add_argument("--key", required=True, help="private key file (bundle keygen)")
    s.add_argument("--passphrase-file", help=PASSPHRASE_FILE_HELP)
    s.add_argument("-o", "--out", help="signed bundle file (default: in place)")
    o = command(b, "offer", cmd_offer, "sign the offer of a bundle: channel and expiry (what "
                "a rollout sends to the devices)")
    o.add_argument("bundle", help="the signed bundle file")
    o.add_argument("--key", required=True, help="private key file (bundle keygen)")
    o.add_argument("--passphrase-file", help=PASSPHRASE_FILE_HELP)
    o.add_argument("--channel", default="stable", help="the devices' channel (firmware/trust.py "
                                                       "CHANNEL)")
    o.add_argument("--expires-in", default="7d", help="how long the offer is valid: the "
                                                      "whole rollout must fit, e.g. 48h, 7d")
    o.add_argument("--id", type=int, help="the offer id (default: random)")
    o.add_argument("-o", "--out", help="offer file (default: <bundle>.offer.json)")
    u = command(b, "upload", cmd_upload, "store a signed bundle in the fleet")
    u.add_argument("bundle")
    u.add_argument("--db", default=DEFAULT_DB)
    u.add_argument("--by", required=True, help="who you are, for the audit log")
    ls = command(b, "list", cmd_bundle_list, "bundles in the fleet")
    ls.add_argument("--db", default=DEFAULT_DB)
    ls.add_argument("--json", action="store_true")

    r = fleet_parsers.add_parser(
        "rollout", help="roll a bundle out in waves: start, status, list, pause, resume, cancel",
        description="rollouts in waves with a failure threshold (docs/updates.md)"
    ).add_subparsers(dest="rollout_cmd", required=True)
    st = command(r, "start", cmd_start, "offer a bundle to devices, wave after wave")
    st.add_argument("bundle", help="bundle version or id")
    st.add_argument("--offer", required=True, help="the signed offer (bundle offer)")
    st.add_argument("--devices", help="comma-separated idents")
    st.add_argument("--fw", help="or: readers running this version")
    st.add_argument("--prefix", help="or: readers whose ident starts so")
    st.add_argument("--all", action="store_true", help="or: every reader")
    st.add_argument("--waves", default="10,50,100", help="cumulative percents")
    st.add_argument("--max-failures", type=int, default=1,
                    help="failed devices that pause the rollout")
    st.add_argument("--ttl", type=int, default=3600, help="seconds a device has to finish")
    st.add_argument("--db", default=DEFAULT_DB)
    st.add_argument("--by", required=True, help="who you are, for the audit log")
    st.add_argument("--json", action="store_true")
    ss = command(r, "status", cmd_status, "waves, counts and the devices not ok")
    ss.add_argument("id", type=int)
    ss.add_argument("--db", default=DEFAULT_DB)
    ss.add_argument("--json", action="store_true")
    rl = command(r, "list", cmd_rollout_list, "all rollouts")
    rl.add_argument("--db", default=DEFAULT_DB)
    for action in ("pause", "resume", "cancel"):
        p = command(r, action, _steer(action), f"{action} a rollout")
        p.add_argument("id", type=int)
        p.add_argument("--reason")
        p.add_argument("--db", default=DEFAULT_DB)
        p.add_argument("--by", required=True, help="who you are, for the audit log")
