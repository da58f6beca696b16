"""File-level updates of the firmware package: verify, stage, switch, confirm or roll back.

Flash layout under `root` (/ota on the box):
    state.json    which slot runs: {"cur": "a"|"b"|null, "v", "prev", "pv", "try", "id", "out"}
    min.json      the minimum version: {"v": "0.2.0"}; only ever raised, kept apart from
                  state.json so that a rollback or a lost state never lowers it
    a/, b/        two slots, each a whole `firmware` package (a/firmware/reader.py ...)
`cur` null is the factory firmware (frozen, or /lib/firmware). boot.py calls boot(root,
sys.path), which puts `root/<cur>` first on sys.path, so the slot's package wins.

An update (docs/updates.md, docs/protocol.md "Updates"):
1. The offer on down/cmd carries the manifest's sha256 and the release key's Ed25519
   signature over the offer itself: offer_message(oid, exp, ch, v, mh), its id, expiry,
   channel, version and manifest digest. Checked first, before anything is fetched, with the
   expiry, the channel and the persistent minimum version (`min.json`, raised when an update
   is confirmed good; an offer older than it is refused even when correctly signed).
2. The manifest, then each file, is fetched chunk by chunk (up/ota asks, down/ota answers),
   hashed as it is written (`<name>.part`), checked against its sha256, renamed into place, in
   the slot that is not running. A slot already holding the same manifest is resumed.
3. The switch is one rename: state.json.tmp over state.json with cur = the new slot, the old
   one as prev and "try": TRIAL_BOOTS. A power cut before it runs the old firmware, after it
   the new one; both slots are complete at that moment.
4. The new firmware must report healthy (connected, reader ok) within `deadline_s` of its
   boot: it then clears "try" and reports ok. Otherwise it asks for a reboot; a boot that
   finds "try" used up switches back to prev (one rename again) and the old firmware
   reports the failure with why "rolled_back".
"""
import binascii
import hashlib
import json
import os

try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

SIGNED_PREFIX = b"telegest bundle v1\n"  # the manifest signature (bundle files, old firmware)
OFFER_PREFIX = b"telegest offer v2\n"  # the offer signature, what this firmware checks
CHANNEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
PRODUCT = "telegest-reader"
CHUNK = const(640)  # raw bytes per down/ota chunk: 856 base64 characters, under 1 KiB
MAX_MANIFEST = const(8192)
MAX_FILES = const(64)
MAX_TOTAL = const(524288)  # bytes of files in a bundle
TRIAL_BOOTS = const(1)  # boots the new firmware gets to prove itself
RETRY_MS = const(5000)  # a chunk request unanswered this long is asked again
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"
_HEX = "0123456789abcdef"


def _hex(b):
    return "".join(_HEX[c >> 4] + _HEX[c & 15] for c in b)


# Every change to flash goes through these, so the tests can cut the power at each one.
def _open_w(path):
    return open(path, "wb")


def _rename(a, b):
    os.rename(a, b)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


def _rmdir(path):
    try:
        os.rmdir(path)
    except OSError:
        pass


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _rmtree(path):
    if not _is_dir(path):
        _remove(path)
        return
    for name in os.listdir(path):
        _rmtree(path + "/" + name)
    _rmdir(path)


def _sync(f):
    f.flush()
    if hasattr(os, "fsync"):
        os.fsync(f.fileno())


def file_sha256(path):
    """sha256 hex of a file, or None when it cannot be read."""
    h = hashlib.sha256()
    buf = bytearray(512)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(buf if n == 512 else buf[:n])
    except OSError:
        return None
    return _hex(h.digest())


def version_tuple(v):
    """"0.2.10" -> (0, 2, 10); ValueError when it is not dotted integers."""
    parts = v.split(".")
    if not 1 <= len(parts) <= 4:
        raise ValueError("bad version")
    return tuple(int(p) for p in parts)


# -- the state file -----------------------------------------------------------------------
def read_state(root):
    """The slot state; a missing or unreadable file is the factory firmware."""
    try:
        with open(root + "/state.json") as f:
            st = json.load(f)
        if type(st) is dict and st.get("cur") in (None, "a", "b"):
            return st
    except (OSError, ValueError):
        pass
    return {"cur": None}


def write_state(root, st):
    _mkdir(root)
    tmp = root + "/state.json.tmp"
    f = _open_w(tmp)
    try:
        f.write(json.dumps(st).encode())
        _sync(f)
    finally:
        f.close()
    _rename(tmp, root + "/state.json")  # the switch: atomic on littlefs and POSIX


def boot(root, path=None):
    """At every boot, before the firmware is imported: count a trial boot, or roll back when
    the trial is used up; then put the running slot first on `path` (sys.path). Returns the
    state. Never raises: a failure leaves the factory or current slot in use."""
    st = read_state(root)
    try:
        if "try" in st:
            if st["try"] <= 0:
                st = {"cur": st.get("prev"), "v": st.get("pv"),
                      "out": {"id": st.get("id"), "v": st.get("v"), "st": "failed",
                              "why": "rolled_back"}}
            else:
                st["try"] -= 1
            write_state(root, st)
    except Exception as e:  # flash full: run what the state says rather than nothing
        print("# ota boot:", e)
    if path is not None and st.get("cur"):
        slot = root + "/" + st["cur"]
        if slot not in path:
            path.insert(0, slot)
        # boot.py imported this module from the factory package: forget it, so that the
        # next `import firmware...` finds the slot's package, not the cached factory one
        import sys
        for name in list(sys.modules):
            if name == "firmware" or name.startswith("firmware."):
                del sys.modules[name]
    return st


def check_manifest(doc, v):
    """The manifest's files [(name, size, sha256)] when `doc` is a well-formed manifest of
    version `v`; ValueError otherwise."""
    if type(doc) is not dict or doc.get("product") != PRODUCT or doc.get("format") != 1:
        raise ValueError("not a %s manifest" % PRODUCT)
    if doc.get("v") != v:
        raise ValueError("manifest version differs from the offer")
    files = doc.get("files")
    if type(files) is not list or not 1 <= len(files) <= MAX_FILES:
        raise ValueError("1 to %d files" % MAX_FILES)
    out = []
    total = 0
    for e in files:
        name, size, sha = e.get("name"), e.get("size"), e.get("sha256")
        if (type(name) is not str or not 1 <= len(name) <= 64 or name[0] == "/"
                or ".." in name or name.endswith("/") or "//" in name
                or any(c not in _NAME_CHARS for c in name)):
            raise ValueError("bad file name")
        if name in ("state.json", "state.json.tmp", ".manifest"):
            raise ValueError("reserved file name")
        if type(size) is not int or size < 0 or type(sha) is not str or len(sha) != 64:
            raise ValueError("bad size or sha256")
        total += size
        out.append((name, size, sha))
    if total > MAX_TOTAL:
        raise ValueError("bundle over %d bytes" % MAX_TOTAL)
    return out


def check_channel(ch):
    """`ch` when it is a channel name (1 to 16 of a-z 0-9 -); ValueError otherwise."""
    if type(ch) is not str or not 1 <= len(ch) <= 16 or any(c not in CHANNEL_CHARS for c in ch):
        raise ValueError("bad channel")
    return ch


def offer_message(oid, exp, ch, v, mh):
    """What the release key signs for an offer: OFFER_PREFIX + the canonical JSON of the
    offer's id, expiry (Unix s), channel, version and manifest sha256 (keys sorted, no
    spaces), e.g. {"ch":"stable","exp":1798003600,"mh":"9f0e…","oid":7,"v":"0.2.0"}."""
    return OFFER_PREFIX + ('{"ch":"%s","exp":%d,"mh":"%s","oid":%d,"v":"%s"}'
                           % (ch, exp, mh, oid, v)).encode()


def read_min(root):
    """The minimum version this box accepts, or None before its first confirmed update."""
    try:
        with open(root + "/min.json") as f:
            v = json.load(f).get("v")
        version_tuple(v)
        return v
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def raise_min(root, v):
    """Raise the minimum version to `v` (atomic: min.json.tmp renamed over min.json); never
    lowers it. Returns the minimum now in force."""
    cur = read_min(root)
    if cur is not None and version_tuple(cur) >= version_tuple(v):
        return cur
    _mkdir(root)
    tmp = root + "/min.json.tmp"
    f = _open_w(tmp)
    try:
        f.write(('{"v":"%s"}' % v).encode())
        _sync(f)
    finally:
        f.close()
    _rename(tmp, root + "/min.json")
    return v


def verify_offer(keys, mh, sig):
    """True when one of `keys` (hex public keys) signed the manifest digest `mh` (hex): the
    bundle's own signature, which firmware older than the signed offers checks."""
    return verify_signed(keys, SIGNED_PREFIX + binascii.unhexlify(mh.encode()), sig)


def verify_signed(keys, msg, sig):
    """True when one of `keys` (hex public keys) signed `msg`."""
    from firmware.ota.ed25519 import verify
    for k in keys:
        if verify(binascii.unhexlify(k.encode()), msg, sig):
            return True
    return False
