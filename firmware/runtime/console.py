"""The technician's command interface on the serial port: one command per line in, one
line out: a JSON object, `ok`, or `error: <reason>`. Log lines the runtime prints start with
"# ", so a CLI skips them. Commands: see COMMANDS and docs/firmware.md.

Arguments are separated by spaces; an argument with spaces is written in double quotes, with
\\" and \\\\ inside: wifi set "My Home" "pa ss".

Provisioning sends a whole settings document instead, hex-encoded UTF-8 JSON, so every
character of a Wi-Fi password travels exactly: `settings drop`, `settings chunk <hex>`...,
`settings stage` (answers the digests of what was stored and read back), then `settings commit
<digest>`. No answer or error ever holds a setting's value (docs/firmware.md).

Once the box has a maintenance key, only _OPEN commands answer (status, nothing secret) until
`maint <code>` (firmware/runtime/maintenance.py); `exit` locks it again. Ctrl-C (0x03) does not
reach the MicroPython REPL on such a box: here it drops the line being typed; `repl`, in
maintenance mode, lets it through again. Other control bytes are ignored.
"""
import json

from firmware.runtime.maintenance import Maintenance
from firmware.ticks import ticks_ms

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

_MAX_LINE = const(200)
_MAX_DOC = const(4096)  # hex characters of a staged settings document (2 KiB of JSON)
COMMANDS = ("status", "selftest", "taps", "journal", "wifi", "broker", "settings", "counters",
            "reboot", "help", "maint", "exit", "repl")
_OPEN = ("status", "selftest", "journal", "counters", "help", "maint", "exit")  # when locked
_SECRET = ("wifi", "broker", "settings", "maint")  # their errors never quote an exception's text
_HEXDIGITS = "0123456789abcdefABCDEF"
_BROKER_KEYS = {"host": "host", "port": "port", "id": "id", "user": "user", "password": "pass",
                "brokers": "brokers"}


def split(line):
    """Words of a command line; double quotes group words. Raises ValueError."""
    out = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == " " or c == "\t":
            i += 1
        elif c == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise ValueError("unclosed quote")
                c = line[i]
                if c == "\\" and i + 1 < n:
                    buf.append(line[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            out.append("".join(buf))
        else:
            j = i
            while j < n and line[j] != " " and line[j] != "\t":
                j += 1
            out.append(line[i:j])
            i = j
    return out


class Console:
    """Answers commands about the runtime `rt` (firmware/runtime/app.py's Runtime)."""

    def __init__(self, rt):
        self.rt = rt
        self.handled = 0
        self.errors = 0
        self._doc = []  # hex chunks of the settings document being received
        self._doc_len = 0
        self._staged = None  # (keys, digest) of the document staged on flash
        self.maint = Maintenance(rt)

    def handle(self, line):
        """One command line -> one answer line (never raises)."""
        self.handled += 1
        try:
            words = split(line.strip())
        except ValueError as e:
            return self._error(str(e))
        if not words:
            return self._error("empty command (try help)")
        name = words[0].lower()
        if name not in COMMANDS:
            return self._error("unknown command %s (try help)" % name)
        if name not in _OPEN and not self.maint.allows(ticks_ms()):
            return self._error("locked: %s needs maintenance mode. Enter `maint <code>`, the "
                               "code `telegest fleet device maintenance-code %s` gives"
                               % (name, self.rt.device_id))
        try:
            answer = getattr(self, "cmd_" + name)(words[1:])
        except ValueError as e:
            return self._error(str(e))
        except Exception as e:  # a command must never kill the console
            if name in _SECRET:  # an exception's text could quote a value
                return self._error("%s in %s" % (type(e).__name__, name))
            return self._error("%s: %s" % (type(e).__name__, e))
        if type(answer) is dict:
            return json.dumps(answer)
        return answer

    def _error(self, reason):
        self.errors += 1
        return "error: " + reason.replace("\n", " ")

    @staticmethod
    def _none(args):
        if args:
            raise ValueError("takes no arguments")

    def cmd_help(self, args):
        self._none(args)
        return {"commands": list(COMMANDS), "console": self.maint.state(ticks_ms()),
                "set": ["wifi set <ssid> [password]",
                        "broker set host|port|brokers|id|user|password <value>",
                        "settings drop | chunk <hex> | stage | commit <digest>",
                        "maint <code> | exit | repl"]}

    def cmd_status(self, args):
        self._none(args)
        out = self.rt.status()
        out["console"] = self.maint.state(ticks_ms())
        return out

    def cmd_maint(self, args):
        if not args:
            raise ValueError("usage: maint <code> (XXXXXX-XXXXXX-XXXXXX, from the fleet)")
        return self.maint.enter("".join(args), ticks_ms())  # typed with spaces: one code

    def cmd_exit(self, args):
        self._none(args)
        self.maint.exit()
        return {"console": self.maint.state(ticks_ms())}

    def cmd_repl(self, args):
        """Ctrl-C stops the firmware and opens the MicroPython REPL (mpremote, `telegest device
        deploy`), until `exit` or the end of maintenance (Runtime.console_step applies it)."""
        self._none(args)
        self.maint.repl = True
        return {"repl": True}

    def cmd_selftest(self, args):
        self._none(args)
        return self.rt.selftest()

    def cmd_taps(self, args):
        self._none(args)
        taps = self.rt.taps
        rows = [] if taps is None else [{"ts": t[0], "uid": t[1], "fb": t[2]} for t in taps.last()]
        return {"taps": rows}

    def cmd_journal(self, args):
        self._none(args)
        core = self.rt.core
        if core is None:
            raise ValueError("safe mode: the journal is not open")
        j = core.journal
        return {"depth": j.depth, "acked": j.acked, "last": j.last_seq, "first": j.first_seq,
                "full": j.full, "max": j.max_records, "torn": j.torn, "corrupt": j.corrupt}

    def cmd_counters(self, args):
        self._none(args)
        return self.rt.counters()

    def cmd_wifi(self, args):
        rt = self.rt
        if not args:
            w = rt.wifi
            return {"ssid": w.ssid, "password_set": bool(w.password), "status": w.status(),
                    "rssi": w.rssi(), "ip": w.ip(), "drops": w.drops}
        if args == ["scan"]:
            return {"networks": rt.wifi.scan()}
        if args[0] != "set" or not 2 <= len(args) <= 3:
            raise ValueError("usage: wifi | wifi scan | wifi set <ssid> [password]")
        ssid, pw = args[1], args[2] if len(args) == 3 else ""
        if not ssid:
            raise ValueError("ssid is empty")
        if pw and not 8 <= len(pw) <= 63:
            raise ValueError("a WPA password has 8 to 63 characters")
        rt.settings.update((("ssid", ssid), ("password", pw)))
        rt.wifi.configure(ssid, pw)
        return "ok"

    def cmd_broker(self, args):
        rt = self.rt
        s = rt.settings
        if not args:
            return {"host": s.get("host"), "port": s.get("port"), "brokers": s.get("brokers"),
                    "id": rt.device_id,
                    "id_setting": s.get("id"), "user": s.get("user"),
                    "password_set": bool(s.get("pass")),
                    "status": rt.link.status() if rt.link is not None else "off",
                    "reboot_needed": rt.reboot_needed}
        if args[0] != "set" or len(args) != 3 or args[1] not in _BROKER_KEYS:
            raise ValueError("usage: broker | broker set host|port|brokers|id|user|password "
                             "<value>")
        key = _BROKER_KEYS[args[1]]
        s.set(key, args[2])
        if key == "id":
            rt.reboot_needed = s.get("id") != rt.device_id  # topics are fixed at start
        else:
            rt.apply_broker()
        return "ok"

    def cmd_settings(self, args):
        s = self.rt.settings
        if not args:
            try:
                s.staged()
                pending = True
            except ValueError:
                pending = False
            return {"pending": pending, "received": self._doc_len,
                    "staged": self._staged[0] if self._staged else None}
        op = args[0]
        if op == "drop" and len(args) == 1:
            self._doc, self._doc_len, self._staged = [], 0, None
            s.drop()
            return "ok"
        if op == "chunk" and len(args) == 2:
            part = args[1]
            if any(c not in _HEXDIGITS for c in part):
                self._doc, self._doc_len = [], 0
                raise ValueError("a chunk is hex digits only; the document was dropped")
            if self._doc_len + len(part) > _MAX_DOC:
                self._doc, self._doc_len = [], 0
                raise ValueError("settings document over %d hex digits; dropped" % _MAX_DOC)
            self._doc.append(part)
            self._doc_len += len(part)
            return {"received": self._doc_len}
        if op == "stage" and len(args) == 1:
            return self._stage(s)
        if op == "commit" and len(args) == 2:
            return self._commit(s, args[1])
        raise ValueError("usage: settings | settings drop | settings chunk <hex> | settings "
                         "stage | settings commit <digest>")

    def _stage(self, s):
        from firmware.runtime.settings import digest
        text = "".join(self._doc)
        self._doc, self._doc_len, self._staged = [], 0, None
        s.drop()
        if not text:
            raise ValueError("no settings document received (settings chunk <hex> first)")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError("the settings document is not whole hex (a chunk was lost?)")
        try:
            doc = json.loads(raw.decode())
        except Exception:  # UnicodeError, ValueError: never quote the text
            raise ValueError("the settings document is not UTF-8 JSON")
        stored = s.stage(doc)  # written to flash, and read back from it
        keys = sorted(doc)
        d = digest(stored, keys)
        self._staged = (keys, d)
        return {"staged": keys, "digest": d, "broker_digest": digest(stored, ("user", "pass"))}

    def _commit(self, s, want):
        from firmware.runtime.settings import digest
        if self._staged is None:
            raise ValueError("nothing staged (settings stage first)")
        keys, d = self._staged
        if want.lower() != d or digest(s.staged(), keys) != d:
            raise ValueError("the digest does not match the staged settings; nothing changed")
        was_open = self.maint.key() is None
        s.commit()
        self._staged = None
        if was_open and self.maint.key() is not None:
            self.maint.grant(ticks_ms())
        rt = self.rt
        if "ssid" in keys or "password" in keys:
            rt.wifi.configure(s.get("ssid"), s.get("password"))
        rt.apply_broker()
        rt.reboot_needed = (s.get("id") or rt.device_id) != rt.device_id
        return {"committed": keys, "reboot_needed": rt.reboot_needed}

    def cmd_reboot(self, args):
        self._none(args)
        self.rt.request_reboot()
        return "ok"


class LinePort:
    """Assembles command lines from a serial stream without blocking. `stream` has ready()
    -> bool and read1() -> one character (str or bytes), and write(str)."""

    def __init__(self, stream):
        self.stream = stream
        self._buf = bytearray(_MAX_LINE)
        self._n = 0
        self._over = False

    def poll(self):
        """A complete line, or None; an over-long line comes back as None after answering."""
        s = self.stream
        while s.ready():
            c = s.read1()
            if not c:
                return None
            b = c[0] if type(c) is not str else ord(c)
            if b == 10 or b == 13:
                if self._over:
                    self._over = False
                    self._n = 0
                    s.write("error: line too long\n")
                    continue
                if self._n == 0:
                    continue  # \r\n, empty lines
                n, self._n = self._n, 0
                try:
                    return bytes(self._buf[:n]).decode()
                except UnicodeError:
                    s.write("error: not UTF-8\n")
                    continue
            if b == 3:  # Ctrl-C where it does not reach the REPL: drops the line
                self._n = 0
                self._over = False
                continue
            if b < 32 and b != 9:  # other control bytes (Ctrl-A, Ctrl-E...): ignored
                continue
            if self._n >= _MAX_LINE:
                self._over = True
            else:
                self._buf[self._n] = b & 0xFF
                self._n += 1
        return None

    def answer(self, text):
        self.stream.write(text + "\n")
