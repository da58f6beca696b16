"""The update download on the device: offer, chunks, checks, the switch, the trial boot.

See firmware/ota/__init__.py for the flash layout and the steps; docs/updates.md.
"""
import binascii
import hashlib
import json

from firmware.ota import (MAX_MANIFEST, RETRY_MS, TRIAL_BOOTS, _NAME_CHARS, _hex, _mkdir,
                          _open_w, _remove, _rename, _rmtree, _sync, check_channel,
                          check_manifest, file_sha256, offer_message, raise_min, read_min,
                          read_state, verify_signed, version_tuple, write_state)


class UpdateError(Exception):
    def __init__(self, why, detail=""):
        super().__init__(why)
        self.why = why
        self.detail = detail


class Updater:
    """One device's updates. `on_offer` takes a parsed update command, `on_chunk` a down/ota
    payload, `outgoing(now_ms)` gives what to publish; `health(ok)` confirms a trial boot.
    `reboot` becomes True when the box should reset (the runtime does it). `channel` is the
    channel this box follows (firmware/trust.py CHANNEL by default)."""

    def __init__(self, root, fw, keys=None, clock=None, deadline_s=120, boot_state=None,
                 channel=None):
        if keys is None or channel is None:
            import firmware.trust as trust
            keys = trust.KEYS if keys is None else keys
            channel = getattr(trust, "CHANNEL", "stable") if channel is None else channel
        self.root = root
        self.keys = keys
        self.channel = channel
        self.clock = clock
        self.deadline_s = deadline_s
        self.state = boot_state if boot_state is not None else read_state(root)
        self.fw = self.state.get("v") or fw if self.state.get("cur") else fw
        self.job = None  # the update in progress
        self.reboot = False
        self._out = []  # reports waiting to go out
        self._booted = None
        self.connected = False
        self.counters_ = {"ota_offers": 0, "ota_refused": 0, "ota_chunks": 0,
                          "ota_stale_chunks": 0, "ota_retries": 0}
        self.min = read_min(root)
        if self.state.get("cur") and "try" not in self.state and self.state.get("v"):
            self._raise_min(self.state["v"])  # confirmed: a power cut may have come before
        o = self.state.get("out")
        if o:
            self._report(o.get("id"), None, o.get("v"), o.get("st"), o.get("why"))

    def _raise_min(self, v):
        try:
            self.min = raise_min(self.root, v)
        except (OSError, ValueError) as e:  # flash full: raised at the next boot
            print("# ota min:", e)

    # -- reports ------------------------------------------------------------------------------
    def _report(self, id, b, v, st, why=None, p=None):
        parts = ['{"id":%s' % (int(id) if type(id) is int else "null")]
        if b is not None:
            parts.append('"b":%d' % b)
        parts.append('"v":"%s"' % _safe(v))
        parts.append('"st":"%s"' % st)
        if why:
            parts.append('"why":"%s"' % _safe(why))
        if p is not None:
            parts.append('"p":%d' % p)
        self._out.append(("report", (",".join(parts) + "}").encode()))

    def _fail(self, id, b, v, why, detail=""):
        self.counters_["ota_refused"] += 1
        print("# update %s refused: %s %s" % (v, why, detail))
        self._report(id, b, v, "failed", why)

    # -- the offer ----------------------------------------------------------------------------
    def on_offer(self, cmd, now_s):
        """`cmd`: the parsed down/cmd object with "cmd": "update"."""
        self.counters_["ota_offers"] += 1
        id, b, v = cmd.get("id"), cmd.get("b"), cmd.get("v")
        job = self.job
        if job is not None and job["id"] == id:
            job["wait"] = None  # the fleet offers again: ask for the current chunk now
            return
        o = self.state.get("out")
        if o and o.get("id") == id:
            self._report(id, b, o.get("v"), o.get("st"), o.get("why"))
            return
        if type(id) is not int or type(b) is not int or type(v) is not str:
            return self._fail(id, b, v, "bad_offer")
        try:
            mh, ms, exp, oid = cmd["mh"], cmd["ms"], cmd["exp"], cmd["oid"]
            ch, sig = check_channel(cmd["ch"]), binascii.a2b_base64(cmd["osig"].encode())
            if (type(mh) is not str or len(mh) != 64 or type(ms) is not int
                    or not 0 < ms <= MAX_MANIFEST or type(exp) is not int
                    or type(oid) is not int or oid < 0):
                raise ValueError
            binascii.unhexlify(mh.encode())
            vt = version_tuple(v)
            newer = vt > version_tuple(self.fw)
            older = self.min is not None and vt < version_tuple(self.min)
        except Exception:  # a missing field too: an offer without its signature is refused
            return self._fail(id, b, v, "bad_offer")
        q = self.clock.quality() if hasattr(self.clock, "quality") else None
        if q == "unsynced":  # cannot tell an expired offer: refused until the clock is set
            return self._fail(id, b, v, "no_clock")
        if exp < now_s:
            return self._fail(id, b, v, "expired")
        if ch != self.channel:
            return self._fail(id, b, v, "wrong_channel", ch)
        if older:
            return self._fail(id, b, v, "below_minimum", self.min)
        if not newer:
            return self._fail(id, b, v, "not_newer", self.fw)
        if job is not None or "try" in self.state:
            return self._fail(id, b, v, "busy")
        if not self.keys:
            return self._fail(id, b, v, "no_trusted_key")
        if not verify_signed(self.keys, offer_message(oid, exp, ch, v, mh), sig):
            return self._fail(id, b, v, "bad_signature")
        slot = "b" if self.state.get("cur") == "a" else "a"
        sdir = self.root + "/" + slot
        _mkdir(self.root)
        if file_sha256(sdir + "/.manifest") != mh:  # not the same bundle half fetched: clear
            _rmtree(sdir)
        _mkdir(sdir)
        self.job = {"id": id, "b": b, "v": v, "mh": mh, "slot": slot, "dir": sdir,
                    "files": [(".manifest", ms, mh)], "i": 0, "o": 0, "f": None, "h": None,
                    "wait": None, "done": 0, "total": ms, "pct": 0}
        self._report(id, b, v, "downloading", p=0)
        self._guarded(self._next_file)

    def _guarded(self, step):
        try:
            step()
        except UpdateError as e:
            self._abort(e.why, e.detail)
        except ValueError as e:
            self._abort("bad_manifest", str(e))
        except OSError as e:
            self._abort("flash_error", str(e))

    # -- chunks -------------------------------------------------------------------------------
    def _next_file(self):
        """Open the next file to fetch, skipping those already in place (resume)."""
        job = self.job
        while job["i"] < len(job["files"]):
            name, size, sha = job["files"][job["i"]]
            path = job["dir"] + "/" + name
            if file_sha256(path) == sha:
                if job["i"] == 0:
                    self._load_manifest()
                job["done"] += size
                job["i"] += 1
                continue
            _mkdirs(job["dir"], name)
            job["f"] = _open_w(path + ".part")
            job["h"] = hashlib.sha256()
            job["o"] = 0
            job["wait"] = None
            if size == 0:
                self._close_file()
                continue
            return
        self._switch()

    def _load_manifest(self):
        job = self.job
        with open(job["dir"] + "/.manifest") as f:
            doc = json.load(f)
        files = check_manifest(doc, job["v"])
        job["files"] = job["files"][:1] + files
        job["total"] += sum(s for _, s, _ in files)

    def _close_file(self):
        job = self.job
        name, size, sha = job["files"][job["i"]]
        f = job["f"]
        _sync(f)
        f.close()
        job["f"] = None
        path = job["dir"] + "/" + name
        if _hex(job["h"].digest()) != sha:
            _remove(path + ".part")
            raise UpdateError("sha_mismatch", name)
        _rename(path + ".part", path)
        if job["i"] == 0:
            try:
                self._load_manifest()
            except ValueError as e:
                raise UpdateError("bad_manifest", str(e))
        job["i"] += 1

    def on_chunk(self, payload):
        job = self.job
        if job is None:
            self.counters_["ota_stale_chunks"] += 1
            return
        try:
            m = json.loads(payload)
            if m["b"] != job["b"] or m["f"] != job["i"] or m["o"] != job["o"]:
                self.counters_["ota_stale_chunks"] += 1
                return
            data = binascii.a2b_base64(m["d"].encode())
        except Exception:
            self.counters_["ota_stale_chunks"] += 1
            return
        self._guarded(lambda: self._write(data))

    def _write(self, data):
        job = self.job
        name, size, _ = job["files"][job["i"]]
        if not data or job["o"] + len(data) > size:
            raise UpdateError("bad_chunk", name)
        job["f"].write(data)
        job["h"].update(data)
        job["o"] += len(data)
        job["done"] += len(data)
        job["wait"] = None
        self.counters_["ota_chunks"] += 1
        if job["o"] == size:
            self._close_file()
            self._next_file()
        pct = job["done"] * 100 // job["total"] if job["total"] else 100
        if self.job is not None and pct >= job["pct"] + 25:
            job["pct"] = pct - pct % 25
            self._report(job["id"], job["b"], job["v"], "downloading", p=job["pct"])

    def _abort(self, why, detail=""):
        job, self.job = self.job, None
        if job is None:
            return
        if job["f"] is not None:
            try:
                job["f"].close()
            except OSError:
                pass
        _rmtree(job["dir"])  # the running slot is untouched
        self._fail(job["id"], job["b"], job["v"], why, detail)

    def _switch(self):
        job = self.job
        st = self.state
        new = {"cur": job["slot"], "v": job["v"], "prev": st.get("cur"),
               "pv": self.fw, "try": TRIAL_BOOTS, "id": job["id"]}
        write_state(self.root, new)
        self.job = None
        self.state = new
        self._report(job["id"], job["b"], job["v"], "installed")
        self.reboot = True

    # -- the trial boot -----------------------------------------------------------------------
    def health(self, ok, up_s):
        """Called with each health report: confirm a trial boot when healthy, ask for a reboot
        (hence a rollback) when `deadline_s` passed without it."""
        st = self.state
        if "try" not in st:
            return
        if ok and self.connected:
            out = {"id": st.get("id"), "v": st.get("v"), "st": "ok"}
            new = {"cur": st["cur"], "v": st["v"], "prev": st.get("prev"), "pv": st.get("pv"),
                   "out": out}
            write_state(self.root, new)
            self.state = new
            self._raise_min(st["v"])  # from now on nothing older is taken, even signed
            self._report(out["id"], None, out["v"], "ok")
        elif up_s >= self.deadline_s and not self.reboot:
            print("# update %s not healthy after %d s: rebooting to roll back"
                  % (st.get("v"), up_s))
            self.reboot = True

    # -- network ------------------------------------------------------------------------------
    def outgoing(self, now_ms):
        """[("report" | "get", payload)] to publish on up/ota now."""
        out, self._out = self._out, []
        job = self.job
        if job is not None and job["f"] is not None and self.connected:
            w = job["wait"]
            if w is None or now_ms - w >= RETRY_MS or now_ms < w:
                if w is not None:
                    self.counters_["ota_retries"] += 1
                job["wait"] = now_ms
                out.append(("get", ('{"id":%d,"b":%d,"f":%d,"o":%d}'
                                    % (job["id"], job["b"], job["i"], job["o"])).encode()))
        return out

    def counters(self):
        return self.counters_


def _safe(s):
    if type(s) is not str:
        return ""
    return "".join(c for c in s[:40] if c in _NAME_CHARS or c == " ")


def _mkdirs(base, name):
    parts = name.split("/")[:-1]
    path = base
    for p in parts:
        path += "/" + p
        _mkdir(path)
