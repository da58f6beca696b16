"""The technician's commands: `telegest device ports|flash|deploy|console` and
`telegest badge write|read|sheet`. Thin handlers over tools/field's API; tools/cli.py wires
them in with add_commands(), and main() builds the same table for tests and standalone use."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tools import argtypes as at
from tools.errors import TelegestError
from tools.waiting import Attempts, Waiting

BAUD = 115200
CONNECT_ATTEMPTS = 7


class Bar:
    """A progress bar on stderr: redrawn in place on a terminal, every 25 % otherwise."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.last: tuple[str, int] = ("", -1)

    def __call__(self, label: str, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        step = pct if self.tty else pct // 25 * 25
        if (label, step) == self.last:
            return
        self.last = (label, step)
        fill = self.width * pct // 100
        line = f"{label:<12.40} [{'#' * fill}{'.' * (self.width - fill)}] {pct:3d}%"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if pct >= 100 else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# -- device ------------------------------------------------------------------------------------
def cmd_ports(args) -> int:
    from tools.field.ports import list_serial_ports

    ports = list_serial_ports()
    if not ports:
        print("no serial port: plug the board in with a data USB cable (a charge-only cable "
              "shows nothing)")
        return 0
    for p in ports:
        print(f"{p.device:<22} {p.usb_id:<10} {p.hint}" + (f" ({p.description})"
                                                           if p.description else ""))
    return 0


def cmd_flash(args) -> int:
    from tools.field.flash import flash_image

    tries = Attempts(f"connecting to the ESP32 bootloader on {args.port}",
                     args.connect_attempts)
    verbose = getattr(args, "verbose", False)

    def echo(line: str) -> None:
        tries.esptool_line(line)
        if verbose:
            print(line, file=sys.stderr)

    bar, erasing = Bar(), []

    def progress(label: str, done: int, total: int) -> None:
        if erasing and (label != "erase" or done >= total):
            erasing.pop().stop()
        bar(label, done, total)
        if label == "erase" and done < total:  # one step of 10 to 30 s: said while it runs
            erasing.append(Waiting("erasing the whole flash (10 to 30 s)").__enter__())

    try:
        r = flash_image(args.port, args.image, chip=args.chip, address=args.address,
                        baud=args.baud, before=args.before, stub=not args.no_stub,
                        erase=not args.no_erase, connect_attempts=args.connect_attempts,
                        force=args.force, progress=progress, echo=echo)
    finally:
        for w in erasing:
            w.stop()
    print(f"chip: {r.description}, MAC {r.mac}")
    print(f"wrote {r.size} bytes at {r.address:#x}{' after a full erase' if r.erased else ''}; "
          f"verified (MD5 {r.md5})")
    for note in r.notes:
        print(f"note: {note}")
    print("next: telegest device deploy " + args.port)
    return 0


def cmd_deploy(args) -> int:
    from tools.field.bundle import build_bundle, firmware_version
    from tools.field.deploy import deploy

    bundle = build_bundle(compile=not args.source)
    fleet = None
    if args.fleet:  # a box whose console is locked needs a maintenance code from the fleet
        from tools.field.provision import FleetApi

        fleet = FleetApi(args.fleet, _api_key(args))
    bar = Bar()
    with Waiting(f"waiting for the MicroPython prompt on {args.port}", args.timeout) as wait:
        def progress(name: str, done: int, total: int) -> None:
            wait.stop()
            bar(name.rsplit("/", 1)[-1], done, total)

        p = deploy(args.port, baud=args.baud, dry_run=args.dry_run, reset=not args.no_reset,
                   bundle=bundle, timeout=args.timeout, version=firmware_version(),
                   progress=progress, fleet=fleet, say=lambda m: print(m, file=sys.stderr))
    if args.dry_run:
        for f in p.copy:
            print(f"would copy   {f.dest} ({len(f.data)} bytes)")
        for path in p.delete:
            print(f"would delete {path}")
        print(f"dry run: {len(p.copy)} to copy ({p.bytes_to_copy} bytes), {len(p.delete)} to "
              f"delete, {p.unchanged} up to date")
        return 0
    for path in p.deleted:
        print(f"deleted {path}")
    print(f"deployed firmware {firmware_version()}: {len(p.copied)} copied, "
          f"{len(p.deleted)} deleted, {p.unchanged} up to date"
          + ("" if args.no_reset else "; the board restarts with it"))
    return 0


def cmd_console(args) -> int:
    from tools.field.console import ReaderConsole, passthrough, pretty

    if args.raw:
        if sys.stdin.isatty():
            print("raw console: lines go to the board as typed; Ctrl-] then Enter, or Ctrl-D, "
                  "to quit", file=sys.stderr)
        passthrough(args.port, sys.stdin, sys.stdout, baud=args.baud)
        return 0
    show: Callable[[object], str] = (lambda a: json.dumps(a)) if args.json else pretty
    with ReaderConsole(args.port, args.baud, args.timeout) as c:
        if args.line:
            with Waiting(f"waiting for the reader's answer on {args.port}", args.timeout):
                answer = c.command(" ".join(_quote(w) for w in args.line))
            print(show(answer))
            return 0
        print("reader console: type help, status, selftest, taps, journal, counters, wifi, "
              "broker; quit to leave", file=sys.stderr)
        while True:
            try:
                line = input("reader> ").strip()
            except EOFError:
                return 0
            if line in ("quit", "exit"):
                return 0
            if not line:
                continue
            try:
                with Waiting("waiting for the reader's answer", args.timeout):
                    answer = c.command(line)
                print(show(answer))
            except TelegestError as e:
                print(f"telegest: {e}", file=sys.stderr)
                if "lost the serial link" in str(e):
                    return e.exit_code


def _quote(word: str) -> str:
    """Words given on our command line keep their spaces on the reader's (console.split)."""
    if word and not any(c in word for c in ' \t"\\'):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- badge ---------------------------------------------------------------------------------------
def cmd_badge_write(args) -> int:
    from tools.field.badge import check_token, check_with_db, check_with_fleet, write_badge

    if args.ntag424:
        from tools.field.sun_cli import cmd_badge_write_ntag424

        return cmd_badge_write_ntag424(args)
    if args.token is None:
        raise TelegestError("give the token to write (or --ntag424 for an NTAG 424 DNA)")
    token = check_token(args.token)
    if args.db:
        check_with_db(args.db, token)
        checked = "issued by the fleet (database), signature verified"
    elif args.fleet:
        from tools.field.provision import FleetApi

        check_with_fleet(FleetApi(args.fleet, _api_key(args)), token)
        checked = "issued by the fleet and active"
    else:
        checked = "shape only: give --fleet or --db to check its signature"

    def replace(old: str) -> bool:
        if args.force:
            print(f"replacing token {old!r} (--force)", file=sys.stderr)
            return True
        if not sys.stdin.isatty():
            return False  # no one to ask: refused unless --force
        try:
            answer = input(f"this badge holds another token {old!r}: replace it with "
                           f"{token!r}? [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes", "o", "oui")

    print("lay the badge on the reader...", file=sys.stderr)
    with Waiting("waiting for a badge on the reader", args.timeout) as wait:
        b = write_badge(args.port, token, uri=args.uri, lang=args.lang, timeout=args.timeout,
                        baud=args.baud, replace=lambda old: (wait.stop(), replace(old))[1])
    print(f"badge {b.uid}: wrote and checked token {b.token!r}" +
          (f" and {args.uri}" if args.uri else "") + f" (token checked: {checked})")
    return 0


def _api_key(args) -> str:
    key = args.api_key or os.environ.get("TELEGEST_API_KEY")
    if not key:
        raise TelegestError("give the fleet API key: --api-key or TELEGEST_API_KEY "
                            "(a technician's or an admin's)")
    return key


def cmd_badge_read(args) -> int:
    from tools.field.badge import read_badge

    print("lay the badge on the reader...", file=sys.stderr)
    with Waiting("waiting for a badge on the reader", args.timeout):
        b = read_badge(args.port, timeout=args.timeout, baud=args.baud)
    if args.json:
        print(json.dumps({"uid": b.uid, "records": b.records}))
        return 0
    print(f"badge {b.uid}")
    if not b.records:
        print("  empty (no NDEF record): write it with `telegest badge write`")
    for r in b.records:
        print("  " + {"text": lambda: f"text [{r.get('lang')}]: {r.get('text')}",
                      "uri": lambda: f"uri: {r.get('uri')}"}.get(r["type"], lambda: str(r))())
    return 0


def cmd_badge_sheet(args) -> int:
    from tools.field.sheet import BadgeLabel, badge_sheet, read_labels, token_problem

    labels: list[BadgeLabel] = []
    if args.csv:
        if _same_file(args.out, args.csv):
            raise TelegestError(f"the sheet {args.out} would overwrite the CSV it is made from: "
                                "give the PDF another name, e.g. badges.pdf")
        labels, used = read_labels(args.csv, args.encoding)
        print(f"{args.csv}: {len(labels)} badges read ({used})", file=sys.stderr)
    for name, token in args.badge or []:
        problem = token_problem(token.strip())
        if problem or not name.strip():
            raise TelegestError(f"--badge {name!r} {token!r}: give the name, then the token"
                                + (f" ({problem})" if problem else ""))
        labels.append(BadgeLabel(name.strip(), token.strip()))
    pages = badge_sheet(labels, args.out)
    print(f"{args.out}: {len(labels)} badges on {pages} A4 page{'s' if pages > 1 else ''}; "
          "print at 100 % (no fit to page) and cut along the marks")
    return 0


def _same_file(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or (pa.exists() and pb.exists()
                                                and os.path.samefile(pa, pb))
    except OSError:
        return False


# -- the table ---------------------------------------------------------------------------------
def _port(p: argparse.ArgumentParser) -> None:
    p.add_argument("port", type=at.serial_url,
                   help="serial port: /dev/ttyUSB0, COM3, socket://host:port, "
                        "rfc2217://host:port, loop://")
    p.add_argument("--baud", type=at.baud, default=BAUD, help="baud rate (default 115200)")


def cmd_provision(args) -> int:
    from tools.field.provision import FleetApi, provision

    key = _api_key(args)
    wifi = (args.wifi_ssid, args.wifi_password or "") if args.wifi_ssid else None
    brokers = at.parse_brokers(args.broker)
    host, port = brokers[0]
    ca = _provision_ca(args, port)
    with Waiting(f"provisioning {args.ident} on {args.port}", args.wait):
        provision(args.port, FleetApi(args.fleet, key), args.ident, host, port,
                  client_id=args.client_id, wifi=wifi, baud=args.baud, wait_s=args.wait, ca=ca,
                  brokers=brokers)
    return 0


def _provision_ca(args, port: int) -> str | None:
    """The CA the box gets: --ca, or `telegest up`'s when the box is sent to its TLS port;
    "" with --plain (the box's CA cleared: in clear)."""
    from tools.field.provision import default_ca
    from tools.pki import read_ca

    if args.plain:
        print(f"no TLS (--plain): the box talks to port {port} in clear, its password can be "
              "sniffed on the way", flush=True)
        return ""
    path = args.ca or default_ca(port, args.up_data)
    if path is None:
        print("no --ca: the box keeps the CA it has (none on a new box: in clear). Give the "
              "broker's CA (`telegest fleet pki init` made it) to have it speak TLS", flush=True)
        return None
    ca = read_ca(path)
    print(f"TLS: the box will verify the broker against {path}", flush=True)
    return ca


def add_commands(device_parsers, badge_parsers, command) -> None:
    """Register the field commands under `telegest device` and `telegest badge`."""
    command(device_parsers, "ports", cmd_ports,
            "list serial ports and what seems attached (ESP32 USB bridges by VID:PID)")

    f = command(device_parsers, "flash", cmd_flash,
                "erase the ESP32 and write a MicroPython image, verified (esptool)")
    _port(f)
    f.add_argument("image", help="MicroPython .bin for the board (ESP32_GENERIC-...bin)")
    f.add_argument("--chip", default="esp32", choices=["esp32", "esp32s3"])
    f.add_argument("--address", type=at.flash_address,
                   help="flash offset (default: 0x1000 on ESP32, 0x0 on S3)")
    f.add_argument("--no-stub", action="store_true",
                   help="talk to the ROM bootloader only (slower; no full erase)")
    f.add_argument("--no-erase", action="store_true", help="keep the rest of the flash")
    f.add_argument("--before", default="default-reset",
                   choices=["default-reset", "usb-reset", "no-reset"],
                   help="how to enter download mode (no-reset: you hold BOOT and tap EN)")
    f.add_argument("--connect-attempts", type=at.positive_int, default=CONNECT_ATTEMPTS,
                   help="times to reset the board and try to reach its bootloader, each "
                        "shown as it starts (default %(default)s)")
    f.add_argument("--force", action="store_true",
                   help="flash a box holding clock-ins not yet sent to the fleet (they are lost)")

    d = command(device_parsers, "deploy", cmd_deploy,
                "copy the reader firmware (.mpy) to the board, only what changed (mpremote)")
    _port(d)
    d.add_argument("--dry-run", action="store_true", help="list what would change, write nothing")
    d.add_argument("--no-reset", action="store_true", help="do not restart the board afterwards")
    d.add_argument("--source", action="store_true", help="copy .py sources, no mpy-cross")
    d.add_argument("--timeout", type=at.positive_seconds, default=10.0,
                   help="seconds to wait for the MicroPython prompt (default %(default)s)")
    d.add_argument("--fleet", type=at.http_url,
                   help="the fleet's URL: a box whose console is locked needs a one-time "
                        "maintenance code from it to open its REPL (docs/technician.md)")
    d.add_argument("--api-key", help="with --fleet; or TELEGEST_API_KEY")

    pv = command(device_parsers, "provision", cmd_provision,
                 "register the box in the fleet, write its identity, Wi-Fi and broker "
                 "credentials over serial in two phases (staged, read back, confirmed: a "
                 "failure leaves the old ones working), and check that it connects")
    _port(pv)
    pv.add_argument("--ident", required=True, type=at.ident, help="the device id, e.g. r-0042")
    pv.add_argument("--client-id", type=at.positive_int,
                    help="the home where it is installed (new box)")
    pv.add_argument("--fleet", default="http://127.0.0.1:8000", type=at.http_url,
                    help="the fleet's URL")
    pv.add_argument("--api-key", help="or TELEGEST_API_KEY")
    pv.add_argument("--broker", required=True, type=at.brokers,
                    help="host:port the box connects to, or several separated by commas (a "
                         "cluster's nodes: the box moves to the next when one fails)")
    tls = pv.add_mutually_exclusive_group()
    tls.add_argument("--ca", help="the broker's CA certificate (PEM), installed on the box: it "
                     "speaks TLS and verifies the broker against it (default: `telegest up`'s "
                     "<data>/pki/ca.pem when --broker is its TLS port)")
    tls.add_argument("--plain", action="store_true",
                     help="no TLS: clear the box's CA (its password then travels in clear)")
    pv.add_argument("--up-data", default="var", help="`telegest up`'s data folder, to find its "
                    "CA (default %(default)s)")
    pv.add_argument("--wifi-ssid")
    pv.add_argument("--wifi-password")
    pv.add_argument("--wait", type=at.positive_seconds, default=30.0,
                    help="seconds to wait for the link (default %(default)s)")

    c = command(device_parsers, "console", cmd_console,
                "the reader's technician console: status, selftest, taps, journal, counters, "
                "wifi [set], broker [set], reboot")
    _port(c)
    c.add_argument("line", nargs="*", help="one command to send, e.g. status (none: interactive)")
    c.add_argument("--raw", action="store_true",
                   help="pass-through: lines typed go to the board, everything it prints "
                        "comes out (boot log, REPL)")
    c.add_argument("--json", action="store_true", help="answers as one JSON line")
    c.add_argument("--timeout", type=at.positive_seconds, default=3.0,
                   help="seconds to wait for an answer (default %(default)s)")

    w = command(badge_parsers, "write", cmd_badge_write,
                "write a client's token on an NTAG through a PN532 reader, and check it")
    _port(w)
    w.add_argument("token", nargs="?", help="the client's tag token (1 to 64 characters)")
    w.add_argument("--uri", help="also write this URI record")
    w.add_argument("--lang", default="fr", type=at.nfc_lang, help="language of the text record")
    w.add_argument("--timeout", type=at.positive_seconds, default=10.0,
                   help="seconds to wait for the badge (default %(default)s)")
    w.add_argument("--force", action="store_true",
                   help="replace another token already on the badge without asking (without a "
                        "terminal to ask on, a badge holding another token is refused)")
    w.add_argument("--fleet", type=at.http_url,
                   help="check with the fleet at this URL that it issued the token and that it "
                        "is active (with --api-key or TELEGEST_API_KEY)")
    w.add_argument("--api-key", help="or TELEGEST_API_KEY (for --fleet)")
    w.add_argument("--db", help="or check in the fleet's database: issued, active, its "
                                "signature verified with the organisation's secret; with "
                                "--ntag424, the database holding the keys (default: "
                                "TELEGEST_DATABASE_URL)")
    from tools.field.sun_cli import add_write_options

    add_write_options(w)

    r = command(badge_parsers, "read", cmd_badge_read, "read a badge's UID and NDEF records")
    _port(r)
    r.add_argument("--timeout", type=at.positive_seconds, default=10.0,
                   help="seconds to wait for the badge (default %(default)s)")
    r.add_argument("--json", action="store_true")

    s = command(badge_parsers, "sheet", cmd_badge_sheet,
                "a PDF of QR badges to print (A4, 12 a page, cut marks)")
    s.add_argument("out", help="the PDF to write (never the CSV: refused)")
    s.add_argument("--csv", help="CSV whose first row names the columns: name,token (or "
                                 "nom;jeton, as French Excel saves it)")
    s.add_argument("--encoding", help="the CSV's encoding (default: detected, UTF-8 with or "
                                      "without BOM, UTF-16 with BOM, or cp1252)")
    s.add_argument("--badge", nargs=2, action="append", metavar=("NAME", "TOKEN"),
                   help="one badge (repeatable)")
