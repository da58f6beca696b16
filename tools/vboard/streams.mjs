// The virtual box's asyncio TCP streams: what the firmware's `firmware/runtime/net.py` seam
// (`open_stream`) gets on the board, done by Node's `net` in the main thread.
//
// Why not the worker of netbridge.mjs: its calls block the interpreter (Atomics.wait), which
// is right for socket.socket and wrong for asyncio. Here nothing blocks: Python awaits the
// promises these calls return (the port's asyncio resumes a task when its promise settles),
// and the JS event loop does the I/O between asyncio steps.
//
// A wait never consumes: `wait` resolves once there is something to read and `take` reads it
// synchronously. So a Python task cancelled while it waits (asyncio.wait_for) loses no byte,
// and a connect cancelled half-way leaves a handle the Python side closes.
//
// The seam, as seen from Python (module `_vnet`, registered by vboard.mjs with --box):
//   connect(host, port) -> handle (>0), at once; the connection is being made
//   connected(h) -> Promise: 0 once connected, or -errno (ECONNREFUSED...)
//   ready(h) -> n > 0 bytes buffered, 0 at EOF, -errno after an error, null: nothing yet
//   wait(h) -> Promise of what ready(h) gives, once it is not null
//   take(h, n) -> up to n buffered bytes, in hex (a Uint8Array reaches Python byte by byte
//                 through the proxy: 3 ms for 64 bytes, where hex and unhexlify take 50 us)
//   write(h, hex) -> n queued, or -errno (never blocks)
//   drain(h) -> Promise: 0 once Node's write buffer is below its mark, or -errno
//   close(h)
import net from "node:net";
import { ERR } from "./netbridge.mjs";

function errnoOf(e) {
  const code = e && e.code;
  if (code === "ECONNREFUSED") return ERR.ECONNREFUSED;
  if (code === "ECONNRESET" || code === "EPIPE") return ERR.ECONNRESET;
  if (code === "ETIMEDOUT") return ERR.ETIMEDOUT;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EHOSTUNREACH" ||
      code === "ENETUNREACH") {
    return ERR.EHOSTUNREACH;
  }
  return ERR.EIO;
}

const HIGH = 65536; // bytes buffered before the socket is paused (the peer then waits)

export class Streams {
  constructor() {
    this.conns = new Map(); // handle -> {sock, chunks, size, eof, err, up, waiters, ...}
    this.next = 1;
  }

  connect(host, port) {
    const h = this.next++;
    const c = { sock: null, chunks: [], size: 0, eof: false, err: 0, up: false, waiters: [],
      connecting: [], paused: false };
    this.conns.set(h, c);
    const settle = () => {
      for (const r of c.connecting.splice(0)) r(c.err ? -c.err : 0);
      const st = this.ready(h);
      if (st !== null) for (const r of c.waiters.splice(0)) r(st);
    };
    try {
      c.sock = net.connect({ host: String(host), port: Number(port) });
    } catch (e) { // a port out of range, say: a refusal like any other
      c.err = ERR.EIO;
      c.eof = true;
      queueMicrotask(settle);
      return h;
    }
    c.sock.setNoDelay(true);
    c.sock.on("connect", () => {
      c.up = true;
      settle();
    });
    c.sock.on("data", (d) => {
      c.chunks.push(d);
      c.size += d.length;
      if (c.size >= HIGH && !c.paused) {
        c.paused = true;
        c.sock.pause();
      }
      settle();
    });
    c.sock.on("end", () => {
      c.eof = true;
      settle();
    });
    const unblock = () => {
      for (const r of (c.drains || []).splice(0)) r(-(c.err || ERR.ECONNRESET));
    };
    c.sock.on("error", (e) => {
      c.err = c.err || errnoOf(e);
      settle();
      unblock();
    });
    c.sock.on("close", () => {
      c.eof = true;
      settle();
      unblock();
    });
    c.sock.on("drain", () => {
      for (const r of (c.drains || []).splice(0)) r(0);
    });
    return h;
  }

  connected(h) {
    const c = this.conns.get(h);
    if (!c) return Promise.resolve(-ERR.EBADF);
    if (c.up || c.err) return Promise.resolve(c.err ? -c.err : 0);
    if (c.eof) return Promise.resolve(-ERR.ECONNRESET);
    return new Promise((r) => c.connecting.push(r));
  }

  ready(h) {
    const c = this.conns.get(h);
    if (!c) return -ERR.EBADF;
    if (c.size > 0) return c.size;
    if (c.err) return -c.err;
    if (c.eof) return 0;
    return null;
  }

  wait(h) {
    const st = this.ready(h);
    if (st !== null) return Promise.resolve(st);
    return new Promise((r) => this.conns.get(h).waiters.push(r));
  }

  take(h, n) {
    const c = this.conns.get(h);
    if (!c || c.size === 0) return "";
    const all = c.chunks.length === 1 ? c.chunks[0] : Buffer.concat(c.chunks);
    const out = all.subarray(0, Math.max(0, n));
    c.chunks = all.length > out.length ? [all.subarray(out.length)] : [];
    c.size = all.length - out.length;
    if (c.paused && c.size < HIGH) {
      c.paused = false;
      c.sock.resume();
    }
    return out.toString("hex");
  }

  write(h, hex) {
    const c = this.conns.get(h);
    if (!c) return -ERR.EBADF;
    if (c.err) return -c.err;
    if (!c.up || c.sock.destroyed || c.sock.writableEnded) return -ERR.ENOTCONN;
    const data = Buffer.from(String(hex), "hex");
    c.sock.write(data);
    return data.length;
  }

  drain(h) {
    const c = this.conns.get(h);
    if (!c) return Promise.resolve(-ERR.EBADF);
    if (c.err) return Promise.resolve(-c.err);
    if (!c.sock.writableNeedDrain) return Promise.resolve(0);
    c.drains = c.drains || [];
    return new Promise((r) => c.drains.push(r));
  }

  close(h) {
    const c = this.conns.get(h);
    if (!c) return;
    this.conns.delete(h);
    if (c.sock) c.sock.destroy();
    for (const r of c.connecting.splice(0)) r(-ERR.EBADF);
    for (const r of c.waiters.splice(0)) r(-ERR.EBADF);
    for (const r of (c.drains || []).splice(0)) r(-ERR.EBADF);
  }

  // A reset or the Wi-Fi going: every stream ends.
  closeAll() {
    for (const h of [...this.conns.keys()]) this.close(h);
  }

  api() {
    return {
      connect: (host, port) => this.connect(host, port),
      connected: (h) => this.connected(h),
      ready: (h) => this.ready(h),
      wait: (h) => this.wait(h),
      take: (h, n) => this.take(h, n),
      write: (h, hex) => this.write(h, hex),
      drain: (h) => this.drain(h),
      close: (h) => this.close(h),
      close_all: () => this.closeAll(),
    };
  }
}
