// The virtual box's wires out of the interpreter: TCP sockets (the firmware's MQTT) and the
// UART cables to simulators (the PN532), done by Node's `net` in a worker thread.
//
// Why a worker: the interpreter runs in the main JS thread and MicroPython code expects
// blocking calls (socket.connect, sock.read with a timeout, uart.any). The main thread
// posts a request to the worker and sleeps in Atomics.wait on a SharedArrayBuffer until
// the worker writes the answer and notifies it; meanwhile the worker's own event loop does
// the I/O. Every blocking request carries a deadline the worker enforces, and the main thread
// gives up 2 s after it in any case, so a peer that never answers cannot hang the board.
//
// The seam, as seen from Python (module `_vbox`, registered by vboard.mjs):
//   connect(host, port, timeout_ms) -> handle (>0) or -errno
//   send(handle, bytes) -> n or -errno           (queued in Node; never blocks)
//   recv(handle, n, timeout_ms) -> bytes: data, b"" at EOF; or -errno (ETIMEDOUT, ...)
//   avail(handle, wait_ms) -> bytes buffered (waits up to wait_ms for the first one), -errno
//   close(handle)
//   resolve(host) -> "a.b.c.d" or "" when the name does not resolve
//   sleep(ms)                                      (a real sleep: no busy loop)
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import net from "node:net";
import dns from "node:dns";

const DATA = 65536; // largest answer (bytes) of one request
const HDR = 16; // Int32 words: [0] ready flag, [1] sequence, [2] status, [3] length
const MARGIN_MS = 2000;

export const ERR = { ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTUNREACH: 113, ECONNRESET: 104,
  EBADF: 9, ENOTCONN: 107, EIO: 5 };

function errnoOf(e) {
  const code = e && e.code;
  if (code === "ECONNREFUSED") return ERR.ECONNREFUSED;
  if (code === "ECONNRESET" || code === "EPIPE") return ERR.ECONNRESET;
  if (code === "ETIMEDOUT") return ERR.ETIMEDOUT;
  if (code === "ENOTFOUND" || code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return ERR.EHOSTUNREACH;
  }
  return ERR.EIO;
}

// -- main thread: synchronous calls ------------------------------------------------------

export class NetBridge {
  constructor() {
    this.sab = new SharedArrayBuffer(HDR + DATA);
    this.ctl = new Int32Array(this.sab, 0, 4);
    this.data = new Uint8Array(this.sab, HDR);
    this.nap = new Int32Array(new SharedArrayBuffer(4));
    this.seq = 0;
    this.worker = new Worker(new URL(import.meta.url), { workerData: { sab: this.sab } });
    this.worker.unref(); // the board's life is the serial server's, not this thread's
    this.worker.on("error", (e) => {
      process.stderr.write(`vboard netbridge: ${e && e.stack ? e.stack : e}\n`);
    });
  }

  // One request; returns [status, bytes or null].
  call(msg, timeoutMs = 0) {
    const seq = ++this.seq;
    Atomics.store(this.ctl, 0, 0);
    this.worker.postMessage({ ...msg, seq, timeoutMs });
    const end = Date.now() + timeoutMs + MARGIN_MS;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) return [-ERR.ETIMEDOUT, null]; // the worker is stuck: give up
      Atomics.wait(this.ctl, 0, 0, left);
      if (Atomics.load(this.ctl, 0) === 1) {
        if (Atomics.load(this.ctl, 1) === seq) break;
        Atomics.store(this.ctl, 0, 0); // a late answer to a call we gave up on
      }
    }
    const status = this.ctl[2], len = this.ctl[3];
    return [status, len >= 0 ? this.data.slice(0, len) : null];
  }

  connect(host, port, timeoutMs) {
    return this.call({ op: "connect", host: String(host), port: Number(port) }, timeoutMs)[0];
  }

  send(h, bytes) {
    return this.call({ op: "send", h, data: Uint8Array.from(bytes) })[0];
  }

  recv(h, n, timeoutMs) {
    const [st, buf] = this.call({ op: "recv", h, n: Math.min(n, DATA) }, timeoutMs);
    return st < 0 ? st : buf;
  }

  avail(h, waitMs) {
    return this.call({ op: "avail", h }, waitMs)[0];
  }

  close(h) {
    this.call({ op: "close", h });
  }

  closeAll() {
    this.call({ op: "closeAll" });
  }

  resolve(host) {
    const [st, buf] = this.call({ op: "resolve", host: String(host) }, 5000);
    return st < 0 || !buf ? "" : Buffer.from(buf).toString("latin1");
  }

  sleep(ms) {
    if (ms > 0) Atomics.wait(this.nap, 0, 0, ms);
  }

  stop() {
    this.worker.terminate();
  }
}

// -- worker thread: the I/O ----------------------------------------------------------------

function workerMain() {
  const { sab } = workerData;
  const ctl = new Int32Array(sab, 0, 4);
  const data = new Uint8Array(sab, HDR);
  const conns = new Map(); // handle -> {sock, chunks: [Buffer], size, eof, err}
  let next = 1;
  let waiting = null; // the one request (the main thread makes one at a time) not answered

  const answer = (seq, status, bytes = null) => {
    waiting = null;
    if (bytes) data.set(bytes.subarray(0, DATA));
    ctl[1] = seq;
    ctl[2] = status;
    ctl[3] = bytes ? Math.min(bytes.length, DATA) : -1;
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
  };

  const take = (c, n) => {
    const all = Buffer.concat(c.chunks);
    const out = all.subarray(0, n);
    c.chunks = all.length > n ? [all.subarray(n)] : [];
    c.size = all.length - out.length;
    if (c.paused && c.size < DATA) {
      c.paused = false;
      c.sock.resume();
    }
    return out;
  };

  // Try to answer the pending request from a connection's state; true when answered.
  const settle = (w) => {
    const c = conns.get(w.h);
    if (!c) {
      answer(w.seq, -ERR.EBADF);
      return true;
    }
    if (w.op === "recv") {
      if (c.size > 0) answer(w.seq, 0, take(c, w.n));
      else if (c.eof) answer(w.seq, 0, Buffer.alloc(0));
      else if (c.err) answer(w.seq, -c.err);
      else return false;
      return true;
    }
    if (w.op === "avail") {
      if (c.size > 0 || c.eof || c.err) {
        answer(w.seq, c.size > 0 ? c.size : c.err && !c.eof ? -c.err : 0);
        return true;
      }
      return false;
    }
    return false;
  };

  const park = (w) => {
    if (settle(w)) return;
    waiting = w;
    w.timer = setTimeout(() => {
      if (waiting === w) answer(w.seq, w.op === "avail" ? 0 : -ERR.ETIMEDOUT);
    }, Math.max(0, w.timeoutMs));
  };

  const wake = (h) => {
    const w = waiting;
    if (w && w.h === h && settle(w)) clearTimeout(w.timer);
  };

  parentPort.on("message", (m) => {
    try {
      handle(m);
    } catch (e) { // a bad request (a port out of range...) fails alone, the thread goes on
      process.stderr.write(`vboard netbridge: ${e && e.stack ? e.stack : e}\n`);
      if (waiting === null || waiting.seq !== m.seq) answer(m.seq, -ERR.EIO);
    }
  });

  function handle(m) {
    if (m.op === "connect") {
      const h = next++;
      const c = { sock: null, chunks: [], size: 0, eof: false, err: 0, paused: false };
      let done = false;
      const finish = (status) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (status < 0) {
          c.sock.destroy();
          conns.delete(h);
        }
        answer(m.seq, status);
      };
      const timer = setTimeout(() => finish(-ERR.ETIMEDOUT), Math.max(1, m.timeoutMs));
      c.sock = net.connect({ host: m.host, port: m.port });
      c.sock.setNoDelay(true);
      conns.set(h, c);
      c.sock.on("connect", () => finish(h));
      c.sock.on("data", (d) => {
        c.chunks.push(d);
        c.size += d.length;
        if (c.size >= DATA && !c.paused) {
          c.paused = true;
          c.sock.pause();
        }
        wake(h);
      });
      c.sock.on("end", () => {
        c.eof = true;
        wake(h);
      });
      c.sock.on("error", (e) => {
        c.err = errnoOf(e);
        finish(-c.err);
        wake(h);
      });
      c.sock.on("close", () => {
        c.eof = c.eof || !c.err;
        wake(h);
      });
    } else if (m.op === "send") {
      const c = conns.get(m.h);
      if (!c) answer(m.seq, -ERR.EBADF);
      else if (c.err) answer(m.seq, -c.err);
      else if (c.sock.destroyed || c.sock.writableEnded) answer(m.seq, -ERR.ECONNRESET);
      else {
        c.sock.write(Buffer.from(m.data));
        answer(m.seq, m.data.length);
      }
    } else if (m.op === "recv" || m.op === "avail") {
      park(m);
    } else if (m.op === "close") {
      const c = conns.get(m.h);
      if (c) {
        c.sock.destroy();
        conns.delete(m.h);
      }
      answer(m.seq, 0);
    } else if (m.op === "closeAll") {
      for (const c of conns.values()) c.sock.destroy();
      conns.clear();
      answer(m.seq, 0);
    } else if (m.op === "resolve") {
      if (net.isIPv4(m.host)) {
        answer(m.seq, 0, Buffer.from(m.host, "latin1"));
        return;
      }
      dns.lookup(m.host, { family: 4 }, (e, addr) => {
        if (e) answer(m.seq, -ERR.EHOSTUNREACH);
        else answer(m.seq, 0, Buffer.from(addr, "latin1"));
      });
    } else {
      answer(m.seq, -ERR.EIO);
    }
  }
}

if (!isMainThread && workerData && workerData.sab) workerMain();
