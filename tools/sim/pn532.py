"""A PN532 simulator speaking real HSU frames over a TCP socket or a pseudo-terminal.

The firmware's driver reaches it through pyserial (`socket://127.0.0.1:PORT`, or the pty
path), byte for byte as it would reach the chip: wake-up preamble, ACK then answer frame,
checksums, the error frame 0x7F for a frame it cannot parse. The field holds zero or one
NTAG (a page image and a UID). Tests can make it misbehave: garble answers, NACK commands,
stop answering, fall asleep.
"""
from __future__ import annotations

import threading

from firmware.drivers.pn532 import ACK, ERROR_FRAME, NACK, build_frame
from tools.sim.ntag424 import ATS as ISO_ATS
from tools.sim.ntag424 import Ntag424
from tools.sim.wire import WireSim

FIRMWARE = bytes((0x32, 0x01, 0x06, 0x07))  # PN532 v1.6, ISO 14443A/B + FeliCa


def ntag_image(uid: bytes, kind: str = "NTAG213") -> bytearray:
    """A blank NTAG21x page image: UID and check bytes, capability container, empty NDEF."""
    pages = {"NTAG213": 45, "NTAG215": 135, "NTAG216": 231}[kind]
    size = {"NTAG213": 0x12, "NTAG215": 0x3E, "NTAG216": 0x6D}[kind]
    img = bytearray(pages * 4)
    u = bytes(uid) + bytes(7 - len(uid))
    img[0:3] = u[0:3]
    img[3] = 0x88 ^ u[0] ^ u[1] ^ u[2]
    img[4:8] = u[3:7]
    img[8] = u[3] ^ u[4] ^ u[5] ^ u[6]
    img[12:16] = bytes((0xE1, 0x10, size, 0x00))
    img[16:19] = b"\x03\x00\xfe"  # an empty NDEF message TLV, then the terminator
    return img


class PN532Sim(WireSim):
    """One simulated chip; serve it with serve_tcp() or serve_pty(), then close()."""

    name = "pn532-sim"
    label = "PN532"
    chunk = 512

    def __init__(self, tag: tuple[bytes, bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self.uid: bytes | None = None
        self.pages = bytearray()
        self.iso_tag: Ntag424 | None = None  # an ISO 14443-4 tag instead of an NTAG21x
        if tag is not None:
            self.place_tag(*tag)
        self.awake = True
        self.answering = True
        self._garble = 0
        self._nack = 0
        self._listed = False
        self._last_answer = b""
        self._buf = bytearray()
        self.commands: list[int] = []  # command codes received, in order
        self.bad_frames = 0
        self._init_wire()

    # -- the field and the knobs -----------------------------------------------------------
    def place_tag(self, uid: bytes, pages: bytes | None = None) -> None:
        with self._lock:
            self.uid = bytes(uid)
            self.pages = bytearray(pages) if pages is not None else ntag_image(uid)
            self.iso_tag = None
            self._listed = False

    def place_ntag424(self, tag: Ntag424) -> None:
        """An NTAG 424 DNA in the field: ISO-DEP, APDUs through InDataExchange."""
        with self._lock:
            self.uid, self.iso_tag, self._listed = tag.uid, tag, False

    def remove_tag(self) -> None:
        with self._lock:
            self.uid = None  # the chip still holds the target: exchanges now time out

    def garble_next(self, n: int = 1) -> None:
        """The next n answer frames go out with a wrong data checksum."""
        self._garble = n

    def nack_next(self, n: int = 1) -> None:
        """The next n commands get a NACK instead of ACK and answer."""
        self._nack = n

    def stop_answering(self) -> None:
        self.answering = False

    def resume(self) -> None:
        self.answering = True

    def power_down(self) -> None:
        """Asleep, the chip ignores frames until a 0x55 wake-up byte."""
        self.awake = False

    # -- byte stream in, byte stream out ---------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        """Bytes from the host in; bytes the chip sends back out."""
        out = bytearray()
        with self._lock:
            for b in data:
                if not self.awake:
                    if b == 0x55:
                        self.awake = True
                    continue
                self._buf.append(b)
            while True:
                reply = self._next_frame()
                if reply is None:
                    break
                if self.answering:
                    out += reply
        return bytes(out)

    def _next_frame(self) -> bytes | None:
        buf = self._buf
        i = buf.find(b"\x00\xff")
        if i < 0:
            del buf[: max(0, len(buf) - 1)]  # keep a trailing 00 that may start a code
            return None
        del buf[:i]
        if len(buf) < 4:
            return None
        ln, lcs = buf[2], buf[3]
        if (ln, lcs) == (0x00, 0xFF):  # host ACK: aborts the current command
            del buf[:4]
            return b""
        if (ln, lcs) == (0xFF, 0x00):  # host NACK: send the last answer again
            del buf[:4]
            return self._maybe_garbled(self._last_answer)
        if (ln + lcs) & 0xFF or ln == 0:
            del buf[:2]
            self.bad_frames += 1
            return ERROR_FRAME
        if len(buf) < 4 + ln + 1:
            return None
        body = bytes(buf[4 : 4 + ln])
        dcs = buf[4 + ln]
        del buf[: 4 + ln + 1]
        if (sum(body) + dcs) & 0xFF or body[0] != 0xD4 or ln < 2:
            self.bad_frames += 1
            return ERROR_FRAME
        return self._command(body[1:])

    def _command(self, data: bytes) -> bytes:
        self.commands.append(data[0])
        if self._nack:
            self._nack -= 1
            return NACK
        answer = self._answer(data)
        if answer is None:
            return ACK + ERROR_FRAME
        frame = build_frame(bytes((data[0] + 1,)) + answer, tfi=0xD5)
        self._last_answer = frame
        return ACK + self._maybe_garbled(frame)

    def _maybe_garbled(self, frame: bytes) -> bytes:
        if not self._garble or not frame:
            return frame
        self._garble -= 1
        bad = bytearray(frame)
        bad[-2] ^= 0x5A  # the DCS no longer matches
        return bytes(bad)

    def _answer(self, data: bytes) -> bytes | None:
        code, args = data[0], data[1:]
        if code == 0x02:
            return FIRMWARE
        if code in (0x14, 0x32):
            return b""
        if code == 0x4A:
            if self.uid is None or args[:2] != b"\x01\x00":
                self._listed = False
                return b"\x00"
            self._listed = True
            u = self.uid
            if self.iso_tag is not None:  # SEL_RES 0x20: the chip sent RATS, the ATS follows
                self.iso_tag.activate()
                return bytes((1, 1, 0x03, 0x44, 0x20, len(u))) + u + ISO_ATS
            return bytes((1, 1, 0x00, 0x44, 0x00, len(u))) + u
        if code == 0x40 and len(args) >= 2:
            return self._exchange(args[1:])
        return None  # unknown command: the chip's syntax error frame

    def _exchange(self, cmd: bytes) -> bytes:
        if not self._listed:
            return b"\x27"
        if self.uid is None:
            return b"\x01"  # the tag left the field
        if self.iso_tag is not None:
            return b"\x00" + self.iso_tag.apdu(cmd)
        n = len(self.pages) // 4
        if cmd[0] == 0x30 and len(cmd) == 2 and cmd[1] < n:
            p = cmd[1]
            return b"\x00" + bytes(self.pages[((p + i) % n) * 4 + j]
                                   for i in range(4) for j in range(4))
        if cmd[0] == 0xA2 and len(cmd) == 6 and 2 <= cmd[1] < n:
            self.pages[cmd[1] * 4 : cmd[1] * 4 + 4] = cmd[2:6]
            return b"\x00"
        return b"\x01"  # the tag NAKs: the PN532 reports a timeout


def main(argv: list[str] | None = None) -> None:
    """`python -m tools.sim.pn532 [--pty] [--uid HEX]`: serve until Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description="A PN532 simulator speaking HSU frames")
    ap.add_argument("--pty", action="store_true", help="a pseudo-terminal instead of TCP")
    ap.add_argument("--rfc2217", action="store_true",
                    help="an RFC 2217 server (carries the baud rate)")
    ap.add_argument("--uid", help="place an NTAG213 with this UID (hex, 4 or 7 bytes)")
    args = ap.parse_args(argv)
    sim = PN532Sim()
    if args.uid:
        sim.place_tag(bytes.fromhex(args.uid))
    sim.serve_forever(args.pty, args.rfc2217)


if __name__ == "__main__":
    main()
