// A virtual MicroPython board: the real MicroPython interpreter (npm package
// @micropython/micropython-webassembly-pyscript) with its REPL on a TCP socket, so that
// `mpremote connect socket://127.0.0.1:PORT ...` and pyserial talk to it as to a USB board.
//
//   node tools/vboard/vboard.mjs PORT [--root DIR] [--inject] [--no-raw-paste]
//        [--box [--ap SSID] [--ap-password PW] [--uart ID=HOST:PORT]... [--unique-id HEX]]
//        [--install DIR]
//
// Prints "listening <port>" once ready (PORT 0 picks a free port). One client at a time; the
// next one waits, and finds the interpreter as the last one left it. What is simulated and
// what is not: docs/virtual-board.md.
//
// The port's own event-driven REPL (pyexec) does the friendly REPL, the raw REPL and the
// execution; this bridge only adds what that REPL cannot do inside a single JS thread:
//  - raw-paste mode (Ctrl-E A Ctrl-A): the C reader would block for stdin, so the bridge
//    holds the flow-control dialogue and hands the collected source to the raw REPL;
//  - soft reset: the port returns PYEXEC_FORCED_EXIT, the bridge starts a fresh interpreter
//    and carries the filesystem over, as a board keeps its flash.
//  - with --box, the reader box: stand-ins for machine, network, socket and ntptime
//    (tools/vboard/rom/, put on the board's path as its frozen modules), the wires out
//    (netbridge.mjs; streams.mjs for asyncio.open_connection, which the firmware's
//    net.py seam calls), and main.py's asyncio program running on the JS event loop
//    with the serial line as its sys.stdin until Ctrl-C, as on a board (the interrupt
//    character micropython.kbd_intr sets, which rom/_vboxboot.py passes on to the bridge).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync }
  from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NetBridge } from "./netbridge.mjs";
import { Streams } from "./streams.mjs";

const ROM = join(dirname(fileURLToPath(import.meta.url)), "rom");

// Each reset loads a fresh interpreter, and the package keeps its proxy tables on globalThis
// (Module, proxy_js_ref, pyProxyFinalizationRegistry): a finaliser of the previous
// interpreter's proxies would free slots of the new one ("memory access out of bounds" a
// while after a reset). So a registry acts only while the interpreter that made it is current.
let generation = 0;
const NativeFinalizationRegistry = globalThis.FinalizationRegistry;
globalThis.FinalizationRegistry = class extends NativeFinalizationRegistry {
  constructor(cleanup) {
    const made = generation;
    super((held) => {
      if (made === generation) cleanup(held);
    });
  }
};

const CTRL_A = 1, CTRL_B = 2, CTRL_C = 3, CTRL_D = 4, CTRL_E = 5;
const FORCED_EXIT = 0x100; // pyexec.h
const PASTE_WINDOW = 128; // MICROPY_REPL_STDIN_BUFFER_MAX / 2, as on a board
const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";
const HEAPSIZE = 1024 * 1024;

// The port's VFS raises OSError with Emscripten's errno numbers (ENOENT is 44) while its errno
// module has MicroPython's (ENOENT is 2). Host tools such as mpremote read the traceback, so
// the bridge writes it as a board does: "OSError: [Errno 2] ENOENT".
const ERRNO = {
  63: [1, "EPERM"], 44: [2, "ENOENT"], 29: [5, "EIO"], 8: [9, "EBADF"], 6: [11, "EAGAIN"],
  48: [12, "ENOMEM"], 2: [13, "EACCES"], 10: [16, "EBUSY"], 20: [17, "EEXIST"],
  75: [18, "EXDEV"], 43: [19, "ENODEV"], 54: [20, "ENOTDIR"], 31: [21, "EISDIR"],
  28: [22, "EINVAL"], 33: [24, "EMFILE"], 22: [27, "EFBIG"], 51: [28, "ENOSPC"],
  70: [29, "ESPIPE"], 69: [30, "EROFS"], 37: [36, "ENAMETOOLONG"], 52: [38, "ENOSYS"],
  55: [39, "ENOTEMPTY"], 138: [95, "EOPNOTSUPP"],
};

function boardErrno(text) {
  return text.replace(/OSError: (\d+)(?=\r?\n)/g, (m, n) => {
    const e = ERRNO[n];
    return e ? `OSError: [Errno ${e[0]}] ${e[1]}` : m;
  });
}

const MACHINE_SHIM = `# machine shim of the virtual board (tools/vboard --inject): no real hardware behind it.
class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1
    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = 0 if value is None else int(bool(value))
    def value(self, v=None):
        if v is None:
            return self._v
        self._v = int(bool(v))
    __call__ = value
    def on(self):
        self._v = 1
    def off(self):
        self._v = 0
    def irq(self, handler=None, trigger=3):
        self.handler = handler

class UART:
    # Loopback-free stub: write() records bytes in .tx, read() returns what a test put in .rx.
    def __init__(self, id, baudrate=115200, **kw):
        self.id = id
        self.baudrate = baudrate
        self.tx = bytearray()
        self.rx = bytearray()
    def init(self, baudrate=115200, **kw):
        self.baudrate = baudrate
    def write(self, buf):
        self.tx.extend(buf)
        return len(buf)
    def any(self):
        return len(self.rx)
    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n < 0 else min(n, len(self.rx))
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out
    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n < 0 else n)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

def unique_id():
    return b"\\x76\\x62\\x6f\\x61\\x72\\x64"

def freq(hz=None):
    return 240000000

def reset():
    raise SystemExit  # the bridge soft-resets; a board would hard-reset

soft_reset = reset
`;

function parseArgs(argv) {
  const opts = { port: null, root: null, inject: false, rawPaste: true, box: false, ap: null,
    apPassword: "", uarts: {}, uniqueId: "76626f783031", install: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--root") opts.root = argv[++i];
    else if (a === "--inject") opts.inject = true;
    else if (a === "--no-raw-paste") opts.rawPaste = false;
    else if (a === "--box") opts.box = true;
    else if (a === "--install") opts.install = argv[++i];
    else if (a === "--ap") opts.ap = argv[++i];
    else if (a === "--ap-password") opts.apPassword = argv[++i] ?? "";
    else if (a === "--unique-id") {
      opts.uniqueId = String(argv[++i] || "").toLowerCase();
      if (!/^([0-9a-f]{2}){1,16}$/.test(opts.uniqueId)) usage("--unique-id needs hex bytes");
    } else if (a === "--uart") {
      const m = /^(\d+)=(.+):(\d+)$/.exec(argv[++i] || "");
      if (!m) usage("--uart needs ID=HOST:PORT");
      opts.uarts[m[1]] = { host: m[2], port: parseInt(m[3], 10) };
    }
    else if (/^\d+$/.test(a) && opts.port === null) opts.port = parseInt(a, 10);
    else usage(`unexpected argument ${a}`);
  }
  if (opts.port === null) usage("PORT is required");
  if (opts.root !== null && !opts.root) usage("--root needs a directory");
  return opts;
}

function usage(msg) {
  process.stderr.write(`vboard: ${msg}\n` +
    "usage: node tools/vboard/vboard.mjs PORT [--root DIR] [--inject] [--no-raw-paste]\n" +
    "       [--box [--ap SSID] [--ap-password PW] [--uart ID=HOST:PORT]... [--unique-id HEX]]\n" +
    "       [--install DIR]\n");
  process.exit(2);
}

// -- the board's filesystem (Emscripten MEMFS) ----------------------------------------------

const SKIP = new Set(["/dev", "/proc"]);

function copyTree(src, dst, path = "/") {
  for (const name of src.readdir(path)) {
    if (name === "." || name === "..") continue;
    const p = path === "/" ? "/" + name : path + "/" + name;
    if (SKIP.has(p)) continue;
    const st = src.stat(p);
    if (src.isDir(st.mode)) {
      if (!dst.analyzePath(p).exists) dst.mkdir(p);
      copyTree(src, dst, p);
    } else if (src.isFile(st.mode)) {
      dst.writeFile(p, src.readFile(p));
    }
  }
}

function ensureDir(fs, p) {
  if (!fs.analyzePath(p).exists) fs.mkdir(p);
}

// /flash <-> a host folder, for --root (the build has no NODEFS to mount).
function hostToBoard(fs, host, board) {
  if (board) ensureDir(fs, board); // "" is the root, there already
  for (const name of readdirSync(host)) {
    const h = join(host, name), b = board + "/" + name;
    if (statSync(h).isDirectory()) hostToBoard(fs, h, b);
    else fs.writeFile(b, readFileSync(h));
  }
}

function boardToHost(fs, board, host) {
  mkdirSync(host, { recursive: true });
  const names = new Set(fs.readdir(board).filter((n) => n !== "." && n !== ".."));
  for (const name of readdirSync(host)) {
    if (!names.has(name)) rmSync(join(host, name), { recursive: true, force: true });
  }
  for (const name of names) {
    const b = board + "/" + name, h = join(host, name);
    if (fs.isDir(fs.stat(b).mode)) {
      if (existsSync(h) && !statSync(h).isDirectory()) rmSync(h);
      boardToHost(fs, b, h);
    } else {
      if (existsSync(h) && statSync(h).isDirectory()) rmSync(h, { recursive: true });
      writeFileSync(h, fs.readFile(b));
    }
  }
}

// The stand-in modules (tools/vboard/rom) into the board's /rom, written at every boot.
function romToBoard(fs, host, board) {
  ensureDir(fs, board);
  for (const name of readdirSync(host)) {
    if (name === "__pycache__") continue;
    const h = join(host, name), b = board + "/" + name;
    if (statSync(h).isDirectory()) romToBoard(fs, h, b);
    else if (name.endsWith(".py")) fs.writeFile(b, readFileSync(h));
  }
}

// -- the board -------------------------------------------------------------------------------

class Board {
  constructor(loadMicroPython, opts) {
    this.load = loadMicroPython;
    this.opts = opts;
    this.out = []; // interpreter output not yet sent
    this.mute = false;
    this.drop = 0; // output bytes to swallow: the raw REPL's "OK", which raw-paste does not send
    this.raw = false; // which REPL pyexec is in, followed from its output and our input
    this.rawLine = []; // raw REPL bytes since the last prompt, mirrored
    this.paste = null; // {src: [], count} while a raw-paste transfer runs
    this.mp = null;
    // --box only:
    this.net = opts.box ? new NetBridge() : null;
    this.streams = opts.box ? new Streams() : null; // _vnet: asyncio TCP streams
    this.program = false; // main.py's asyncio program is running: the line is its stdin
    this.stdin = []; // bytes for sys.stdin
    this.intrChar = CTRL_C; // micropython.kbd_intr's character, -1: none (see input())
    this.wdt = null; // {timeoutMs, fedAt} once the firmware armed machine.WDT
    this.pending = null; // "hard" or "soft": machine.reset()/soft_reset() asked for it
    this.resetCause = 1; // machine.PWRON_RESET
    this.onOutput = null; // called (soon) after output made outside input()
    this.flushing = false;
    this.work = Promise.resolve(); // input and resets, one at a time, in order
    if (this.net) {
      const t = setInterval(() => this.watchdog(), 500);
      t.unref();
    }
  }

  // Run `fn` after everything queued before it (input chunks, resets).
  enqueue(fn) {
    this.work = this.work.then(fn).catch((e) => {
      process.stderr.write(`vboard: ${e && e.stack ? e.stack : e}\n`);
    });
    return this.work;
  }

  sink(bytes) {
    for (const c of bytes) {
      if (this.drop > 0) {
        this.drop--;
        continue;
      }
      if (!this.mute) this.out.push(c);
    }
    if (this.onOutput && !this.flushing) {
      this.flushing = true;
      setImmediate(() => {
        this.flushing = false;
        this.onOutput();
      });
    }
  }

  // -- the box: what Python reaches as module _vbox ----------------------------------------
  vboxApi() {
    const net = this.net, opts = this.opts;
    const hex = (h) => Buffer.from(String(h), "hex");
    return {
      sleep: (ms) => net.sleep(ms),
      connect: (host, port, ms) => net.connect(host, port, ms),
      send: (h, data) => net.send(h, hex(data)),
      recv: (h, n, ms) => net.recv(h, n, ms),
      avail: (h, ms) => net.avail(h, ms),
      close: (h) => net.close(h),
      resolve: (host) => net.resolve(host),
      uart_open: (id) => {
        const u = opts.uarts[String(id)];
        return u ? net.connect(u.host, u.port, 2000) : 0;
      },
      ap: () => (opts.ap === null ? "" : JSON.stringify({ ssid: opts.ap,
        password: opts.apPassword })),
      unique_id: () => opts.uniqueId,
      kbd_intr: (c) => {
        this.intrChar = Number(c);
      },
      program_started: () => {
        this.program = true;
        this.stdin = [];
      },
      program_ended: () => {
        if (!this.program) return;
        this.program = false;
        this.wdt = null;
        setImmediate(() => this.enqueue(() => this.afterProgram()));
      },
      wdt_start: (ms) => {
        this.wdt = { timeoutMs: Math.max(1, ms), fedAt: Date.now() };
      },
      wdt_feed: () => {
        if (this.wdt) this.wdt.fedAt = Date.now();
      },
      reset: () => {
        this.pending = "hard";
      },
      soft_reset: () => {
        this.pending = "soft";
      },
      reset_cause: () => this.resetCause,
    };
  }

  readStdin() {
    const c = this.stdin.shift();
    return c === undefined ? null : c;
  }

  // The program is over (it returned, raised, or called machine.reset()).
  async afterProgram() {
    if (this.pending) {
      await this.reset(this.pending);
      return;
    }
    this.mp.replInit();
  }

  // Stop every asyncio task of this interpreter: the loop is replaced and its timer cleared.
  stopLoop() {
    if (!this.mp || !this.net) return;
    try {
      this.mp.runPython("import asyncio, js\nfrom asyncio import core as _c\n" +
        "if _c.asyncio_timer is not None:\n js.clearTimeout(_c.asyncio_timer)\n" +
        "asyncio.new_event_loop()");
    } catch (e) {
      // the interpreter is being replaced anyway
    }
    this.program = false;
    this.wdt = null;
    this.streams.closeAll(); // the stopped tasks' connections go with them
  }

  // Ctrl-C while main.py runs: KeyboardInterrupt ends it, the friendly REPL follows.
  interrupt() {
    this.stopLoop();
    this.emit("Traceback (most recent call last):\r\n  File \"main.py\", in <module>\r\n" +
      "KeyboardInterrupt: \r\n");
    this.mp.replInit();
  }

  watchdog() {
    const w = this.wdt;
    if (!this.program || !w || Date.now() - w.fedAt <= w.timeoutMs) return;
    this.wdt = null;
    this.enqueue(() => this.reset("wdt"));
  }

  // machine.reset() (and the watchdog): the board restarts from power-on, friendly REPL,
  // boot.py then main.py. A soft reset keeps the REPL mode it was asked from.
  async reset(kind) {
    this.pending = null;
    this.stopLoop();
    if (kind === "soft") {
      this.resetCause = 5;
      await this.softReset();
      return;
    }
    this.resetCause = kind === "wdt" ? 3 : 2;
    this.emit(kind === "wdt" ? "\r\nE (vboard) Task watchdog got triggered: reset\r\n" : "");
    this.emit("\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n");
    this.syncOut();
    this.raw = false;
    this.paste = null;
    await this.boot(this.mp);
  }

  async boot(previous) {
    if (previous && this.net) {
      this.mp = previous;
      this.stopLoop(); // the old interpreter's tasks must not run on
      this.net.closeAll(); // nor its sockets and UART cables stay open
    }
    generation++;
    const mp = await this.load({
      heapsize: HEAPSIZE,
      linebuffer: false,
      stdin: () => this.readStdin(),
      stdout: (d) => this.sink(d),
      stderr: (d) => this.sink(d),
    });
    const fs = mp.FS;
    if (previous) copyTree(previous.FS, fs);
    ensureDir(fs, "/flash");
    ensureDir(fs, "/lib");
    if (!previous && this.opts.root) {
      mkdirSync(this.opts.root, { recursive: true });
      hostToBoard(fs, this.opts.root, "/flash");
    }
    // --install: files laid on the board's / before the first boot (a prepared flash image:
    // the deployed firmware and its settings), never written back.
    if (!previous && this.opts.install) hostToBoard(fs, this.opts.install, "");
    if (this.opts.inject) fs.writeFile("/lib/machine.py", MACHINE_SHIM);
    fs.chdir("/");
    this.mp = mp;
    this.rawLine = [];
    this.paste = null;
    this.program = false;
    this.stdin = [];
    if (this.net) {
      romToBoard(fs, ROM, "/rom");
      mp.registerJsModule("_vbox", this.vboxApi());
      mp.registerJsModule("_vnet", this.streams.api());
      mp.runPython("import sys\nsys.path.insert(2, '/rom')\nimport _vboxboot");
    }
    // Start-up scripts, as a board runs them; main.py only when the friendly REPL follows.
    // pyexec makes Ctrl-C the interrupt character as it starts each one.
    this.intrChar = CTRL_C;
    this.runFile("boot.py");
    this.intrChar = CTRL_C;
    if (!this.raw) this.runFile("main.py");
    if (this.program) {
      // main.py started the firmware's asyncio program: no REPL until it ends or Ctrl-C.
    } else if (this.pending) {
      setImmediate(() => this.enqueue(() => this.afterProgram()));
    } else if (this.raw) {
      this.mute = true;
      mp.replInit();
      mp.replProcessChar(CTRL_A);
      this.mute = false;
      this.emit(RAW_BANNER + ">");
    } else {
      mp.replInit();
    }
  }

  runFile(name) {
    if (!this.mp.FS.analyzePath("/" + name).exists) return;
    try {
      this.mp.runPython(`exec(open('/${name}').read())`);
    } catch (e) {
      this.emit(String(e && e.message ? e.message : e).replace(/\r?\n/g, "\r\n"));
    }
  }

  emit(text) {
    for (const c of Buffer.from(text, "latin1")) this.out.push(c);
  }

  take() {
    const data = Buffer.from(this.out);
    this.out = [];
    // All output of one command is produced inside one input chunk, so a traceback is whole.
    return data.includes("OSError: ") ? Buffer.from(boardErrno(data.toString("latin1")), "latin1")
      : data;
  }

  async softReset() {
    if (this.pending === "hard") {
      await this.reset("hard");
      return;
    }
    this.pending = null;
    this.emit("MPY: soft reboot\r\n");
    this.syncOut();
    const previous = this.mp;
    await this.boot(previous);
  }

  syncOut() {
    if (this.opts.root && this.mp) boardToHost(this.mp.FS, "/flash", this.opts.root);
  }

  // Feed one byte to pyexec; true when it asked for a soft reset.
  feed(c) {
    const wasRaw = this.raw;
    if (wasRaw) {
      if (c === CTRL_A || c === CTRL_C || c === CTRL_D) this.rawLine = [];
      else if (c === CTRL_B) this.raw = false;
      else this.rawLine.push(c);
    }
    const start = this.out.length;
    const ret = this.mp.replProcessChar(c);
    if (!wasRaw && this.out.length > start &&
        Buffer.from(this.out.slice(start)).toString("latin1").includes(RAW_BANNER)) {
      this.raw = true;
      this.rawLine = [];
    }
    return (ret & FORCED_EXIT) !== 0;
  }

  // Process bytes from the client; resolves once the output for them is in this.out.
  async input(data) {
    for (const c of data) {
      if (this.program) {
        // As the board's UART/USB driver: only the interrupt character interrupts (a box
        // whose console is locked set none, firmware/main.py); any other byte is stdin.
        if (c === this.intrChar) this.interrupt();
        else this.stdin.push(c);
        continue;
      }
      if (this.paste) {
        if (await this.pasteByte(c)) await this.softReset();
        continue;
      }
      if (this.raw && c === CTRL_A && this.rawLine.length === 2 && this.rawLine[0] === CTRL_E) {
        const cmd = this.rawLine[1];
        this.rawLine = [];
        this.mp.replProcessChar(CTRL_C); // clears pyexec's line without output
        if (!this.opts.rawPaste) {
          // As firmware from before raw-paste: Ctrl-A just restarts the raw REPL.
          this.feed(CTRL_A);
        } else if (cmd === 0x41) {
          this.emit("R\x01" + String.fromCharCode(PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8) + "\x01");
          this.paste = { src: [], count: 0 };
        } else {
          this.emit("R\x00>"); // unknown command, as pyexec answers it
        }
        continue;
      }
      if (this.feed(c)) await this.softReset();
    }
  }

  // One byte of a raw-paste transfer; true when the pasted code asked for a soft reset.
  async pasteByte(c) {
    const p = this.paste;
    if (c === CTRL_C) {
      this.paste = null;
      this.emit("\x04\x04KeyboardInterrupt\r\n\x04>");
      return false;
    }
    if (c !== CTRL_D) {
      p.src.push(c);
      if (++p.count === PASTE_WINDOW) {
        p.count = 0;
        this.emit("\x01"); // another window is free: everything is buffered here already
      }
      return false;
    }
    this.paste = null;
    this.emit("\x04"); // end of data acknowledged, before execution as on a board
    if (this.onOutput) this.onOutput(); // sent now: the code may run for a while (sockets)
    if (p.src.some((b) => b === CTRL_A || b === CTRL_B)) {
      this.emit("\x04SyntaxError: Ctrl-A/Ctrl-B bytes in source (virtual board limit)\r\n\x04>");
      return false;
    }
    for (const b of p.src) this.feed(b);
    this.drop = 2;
    return this.feed(CTRL_D);
  }

  // The link went away: a half-sent raw-paste transfer is abandoned.
  hangUp() {
    if (this.paste) {
      this.paste = null;
      this.mp.replProcessChar(CTRL_C);
      this.rawLine = [];
    }
    this.syncOut();
  }
}

// -- the serial line over TCP ------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let loadMicroPython;
  try {
    ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
  } catch (e) {
    process.stderr.write("vboard: cannot load @micropython/micropython-webassembly-pyscript: " +
      "run `npm ci` at the repo root\n" + String(e) + "\n");
    process.exit(2);
  }
  const board = new Board(loadMicroPython, opts);
  await board.boot(null);

  let client = null;
  const waiting = [];
  // Output the firmware makes on its own (log lines, console answers) goes out as it comes.
  board.onOutput = () => {
    const out = board.take();
    if (client && out.length && !client.destroyed) client.write(out);
  };

  const attach = (sock) => {
    client = sock;
    sock.setNoDelay(true);
    const pending = board.take(); // what the board printed while nobody listened is lost,
    void pending; //                 as on a UART with nothing attached
    sock.on("data", (data) => {
      board.enqueue(async () => { // input is processed in arrival order, a chunk at a time
        await board.input(data);
        const out = board.take();
        if (client === sock && out.length && !sock.destroyed) sock.write(out);
      });
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      board.enqueue(() => {
        board.hangUp();
        board.take();
        if (client === sock) client = null;
        while (!client && waiting.length) {
          const next = waiting.shift();
          if (!next.destroyed) {
            attach(next);
            next.resume();
          }
        }
      });
    });
  };

  const server = net.createServer((sock) => {
    if (client) {
      sock.pause();
      sock.on("error", () => {});
      waiting.push(sock);
    } else {
      attach(sock);
    }
  });
  server.on("error", (e) => {
    process.stderr.write(`vboard: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, "127.0.0.1", () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });

  const quit = () => {
    try {
      board.syncOut();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGTERM", quit);
  process.on("SIGINT", quit);
  // A board does not vanish because one callback failed (a Python exception escaping an
  // asyncio step, say): say it on stderr (VirtualBoard shows it) and keep serving.
  process.on("uncaughtException", (e) => {
    process.stderr.write(`vboard: uncaught: ${e && e.stack ? e.stack : e}\n`);
  });
}

await main();
