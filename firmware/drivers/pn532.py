"""PN532 protocol core: frames, ACK/NACK, retries and the few commands a badge reader needs.

The core never touches a bus. It talks to a transport with four methods, like ESPHome's
pn532 component:

    wakeup()               wake the chip (HSU preamble, CS pulse, ...)
    write(frame)           send one complete frame
    ready() -> bool        a frame from the chip is waiting (never blocks)
    read(n, timeout_ms)    the next n bytes of that frame; fewer on timeout

Frames (PN532 user manual, 6.2): 00 00 FF LEN LCS TFI DATA DCS 00, with LEN counting TFI and
DATA, LCS = -LEN and DCS = -(TFI + DATA) (mod 256); TFI is D4 host->PN532, D5 PN532->host.
Runs unchanged on CPython and MicroPython.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from firmware.ticks import sleep_ms, ticks_diff, ticks_ms

_HOST_TFI = const(0xD4)
_CHIP_TFI = const(0xD5)
_ERROR_TFI = const(0x7F)

CMD_GET_FIRMWARE_VERSION = const(0x02)
CMD_SAM_CONFIGURATION = const(0x14)
CMD_RF_CONFIGURATION = const(0x32)
CMD_IN_DATA_EXCHANGE = const(0x40)
CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)
NTAG_READ = const(0x30)
NTAG_WRITE = const(0xA2)

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"

# frame kinds returned by read_frame()
KIND_ACK = const(1)
KIND_NACK = const(2)
KIND_DATA = const(3)
KIND_ERROR = const(4)

_MAX_DATA = const(254)  # normal frames only: LEN <= 255 including TFI
_MAX_SKIP = const(32)  # bytes tolerated before a start code

# InDataExchange status codes (user manual, table 6.1) worth naming
_STATUS = {
    0x01: "target timeout",
    0x02: "CRC error",
    0x03: "parity error",
    0x13: "data format error",
    0x14: "authentication error",
    0x27: "command not acceptable in this context",
    0x29: "target released",
}


class PN532Error(Exception):
    """The PN532 or its link failed; the message says why."""


class PN532Timeout(PN532Error):
    """The PN532 did not answer within the bounded time."""


class FrameError(PN532Error):
    """A frame from the chip is malformed: bad start code, checksum or postamble."""


def checksum(data, start=0):
    """The two's complement byte that makes start + sum(data) zero modulo 256."""
    s = start
    for b in data:
        s += b
    return (-s) & 0xFF


def build_frame(data, tfi=_HOST_TFI):
    """The complete frame carrying `data` (command code first) with the given TFI."""
    n = len(data)
    if n > _MAX_DATA:
        raise PN532Error("frame data too long: %d bytes (max %d)" % (n, _MAX_DATA))
    ln = n + 1
    frame = bytearray(n + 8)
    frame[2] = 0xFF
    frame[3] = ln
    frame[4] = (-ln) & 0xFF
    frame[5] = tfi
    frame[6:6 + n] = data
    frame[6 + n] = checksum(data, tfi)
    return bytes(frame)


def parse_frame(frame, tfi=_CHIP_TFI):
    """(kind, payload) of a whole frame; payload is the data after TFI for KIND_DATA.

    Leading zero bytes (preamble) are skipped; anything malformed raises FrameError.
    """
    i = 0
    n = len(frame)
    while i < n and frame[i] == 0x00:
        i += 1
    if i == 0 or i >= n or frame[i] != 0xFF:
        raise FrameError("no start code 00 FF")
    i += 1
    if n - i < 2:
        raise FrameError("frame truncated after the start code")
    ln, lcs = frame[i], frame[i + 1]
    if ln == 0x00 and lcs == 0xFF:
        return KIND_ACK, b""
    if ln == 0xFF and lcs == 0x00:
        return KIND_NACK, b""
    if ln == 0xFF and lcs == 0xFF:
        raise FrameError("extended frames are not supported")
    if (ln + lcs) & 0xFF:
        raise FrameError("bad length checksum: LEN %02x LCS %02x" % (ln, lcs))
    return _parse_body(frame[i + 2:], ln, tfi)


def _parse_body(body, ln, tfi):
    # body = TFI DATA DCS postamble, with LEN = len(TFI DATA)
    if ln == 0:
        raise FrameError("empty frame: LEN 0")
    if len(body) < ln + 1:
        raise FrameError("frame truncated: LEN %d, got %d bytes" % (ln, len(body)))
    if checksum(body[:ln]) != body[ln]:
        raise FrameError("bad data checksum: DCS %02x, expected %02x"
                         % (body[ln], checksum(body[:ln])))
    if len(body) > ln + 1 and body[ln + 1] != 0x00:
        raise FrameError("bad postamble %02x" % body[ln + 1])
    if body[0] == _ERROR_TFI and ln == 1:
        return KIND_ERROR, b""
    if body[0] != tfi:
        raise FrameError("unexpected TFI %02x, expected %02x" % (body[0], tfi))
    return KIND_DATA, bytes(body[1:ln])


class PN532:
    """The PN532 over any transport. Public calls retry a bounded number of times, then raise."""

    def __init__(self, transport, timeout_ms=1000, ack_timeout_ms=100, retries=2,
                 reset_pin=None):
        self._t = transport
        self._rst = reset_pin  # RSTPD_N, active low: the only cure for a chip stuck on I2C
        self.timeout_ms = timeout_ms
        self.ack_timeout_ms = ack_timeout_ms
        self.retries = retries
        self._target = 1
        self.sel_res = 0  # of the last listed target
        # error counters, for the health message
        self.stats = {"timeouts": 0, "frame_errors": 0, "nacks": 0, "error_frames": 0,
                      "retries": 0, "wakeups": 0}

    # -- commands ------------------------------------------------------------------------
    def begin(self):
        """Wake the chip, put the SAM in normal mode and bound the passive activation retries."""
        self.reset()
        # RFConfiguration item 5: MxRtyATR, MxRtyPSL, MxRtyPassiveActivation; a finite
        # value makes InListPassiveTarget answer "no target" instead of waiting forever
        self.command(b"\x32\x05\xff\x01\x02")

    def reset(self):
        """Re-wake the chip and configure the SAM again (after a power-down or a hang).

        With a reset pin, pulse RSTPD_N low first: a hard reset of the chip.
        """
        if self._rst is not None:
            self._rst.value(0)
            sleep_ms(100)
            self._rst.value(1)
            sleep_ms(10)
        self._wakeup()
        self.sam_configuration()

    def get_firmware_version(self):
        """(ic, version, revision, support): 0x32, 1, 6, 7 for a common PN532."""
        r = self.command(b"\x02")
        if len(r) != 4:
            raise PN532Error("GetFirmwareVersion: %d bytes, expected 4" % len(r))
        return r[0], r[1], r[2], r[3]

    def sam_configuration(self):
        """Normal mode, virtual card timeout 1 s (0x14 x 50 ms), IRQ used."""
        self.command(b"\x14\x01\x14\x01")

    def list_target(self, timeout_ms=None):
        """The UID of one ISO 14443A target in the field, or None."""
        try:
            r = self.command(b"\x4a\x01\x00", timeout_ms)
        except PN532Timeout:
            self._t.write(ACK)  # an ACK from the host aborts the pending command
            raise
        if not r or r[0] == 0:
            return None
        # Tg SENS_RES(2) SEL_RES NFCIDLength NFCID...
        if len(r) < 6 or len(r) < 6 + r[5]:
            raise PN532Error("InListPassiveTarget: truncated target data")
        self._target = r[1]
        self.sel_res = r[4]  # bit 0x20: ISO 14443-4 (an NTAG 424 DNA answers APDUs)
        return bytes(r[6:6 + r[5]])

    def ntag_read(self, page):
        """16 bytes: pages page..page+3 of the listed NTAG."""
        data = self._exchange(bytes((NTAG_READ, page & 0xFF)))
        if len(data) != 16:
            raise PN532Error("NTAG READ page %d: %d bytes, expected 16" % (page, len(data)))
        return data

    def ntag_write(self, page, data):
        """Write 4 bytes to one page of the listed NTAG."""
        if len(data) != 4:
            raise PN532Error("NTAG WRITE takes 4 bytes, got %d" % len(data))
        self._exchange(bytes((NTAG_WRITE, page & 0xFF)) + bytes(data))

    def apdu(self, capdu):
        """One ISO 7816-4 APDU to the listed ISO 14443-4 tag (an NTAG 424 DNA): the chip
        wraps it in ISO-DEP blocks; the R-APDU comes back, status word included."""
        return self._exchange(capdu)

    def _exchange(self, tag_cmd):
        r = self.command(bytes((CMD_IN_DATA_EXCHANGE, self._target)) + tag_cmd)
        if not r:
            raise PN532Error("InDataExchange: empty answer")
        status = r[0] & 0x3F
        if status:
            raise PN532Error("InDataExchange status 0x%02x: %s"
                             % (status, _STATUS.get(status, "tag error")))
        return r[1:]

    # -- the exchange ------------------------------------------------------------------
    def command(self, data, timeout_ms=None):
        """Send command `data`, wait for ACK then the answer; the answer's data after its code.

        A NACK, an error frame or a garbled ACK resends the command; a garbled answer is asked
        again with a NACK; both bounded by `retries`. Silence wakes the chip and resends.
        """
        code = data[0]
        frame = build_frame(data)
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        reason = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                self._drain()
            self._t.write(frame)
            try:
                kind, _ = self.read_frame(self.ack_timeout_ms)
            except PN532Timeout:
                reason = "no ACK within %d ms" % self.ack_timeout_ms
                self._wakeup()
                continue
            except FrameError as e:
                reason = "garbled ACK (%s)" % e
                continue
            if kind != KIND_ACK:
                reason = self._count_kind(kind)
                continue
            answer = self._read_answer(timeout_ms)
            if answer is None:
                reason = "garbled answer, resend refused"
                continue
            kind, payload = answer
            if kind == KIND_ERROR:
                reason = self._count_kind(kind)
                continue
            if not payload or payload[0] != code + 1:
                raise PN532Error("answer to command 0x%02x has code 0x%02x"
                                 % (code, payload[0] if payload else 0))
            return payload[1:]
        if reason.startswith("no ACK"):
            raise PN532Timeout("PN532 not answering command 0x%02x: %s, %d attempts"
                               % (code, reason, self.retries + 1))
        raise PN532Error("PN532 command 0x%02x failed after %d attempts: %s"
                         % (code, self.retries + 1, reason))

    def _read_answer(self, timeout_ms):
        # a garbled answer is asked again with a NACK (the chip resends its last frame)
        for _ in range(self.retries + 1):
            try:
                return self.read_frame(timeout_ms)
            except PN532Timeout:
                raise PN532Timeout("PN532 acknowledged but sent no answer within %d ms"
                                   % timeout_ms)
            except FrameError:
                self._drain()
                self.stats["nacks"] += 1
                self._t.write(NACK)
        return None

    def _count_kind(self, kind):
        if kind == KIND_NACK:
            self.stats["nacks"] += 1
            return "PN532 sent NACK"
        if kind == KIND_ERROR:
            self.stats["error_frames"] += 1
            return "PN532 sent an error frame (syntax error)"
        self.stats["frame_errors"] += 1
        return "an answer came instead of the ACK"

    def _wakeup(self):
        self.stats["wakeups"] += 1
        self._t.wakeup()

    def _drain(self):
        for _ in range(8):
            if not self._t.ready():
                return
            self._t.read(64, 0)

    # -- reading one frame ---------------------------------------------------------------
    def read_frame(self, timeout_ms):
        """(kind, payload) of the next frame from the chip; PN532Timeout, FrameError."""
        try:
            return self._read_frame(timeout_ms)
        except PN532Timeout:
            self.stats["timeouts"] += 1
            raise
        except FrameError:
            self.stats["frame_errors"] += 1
            raise

    def _read_frame(self, timeout_ms):
        start = ticks_ms()
        t = self._t
        while not t.ready():
            if ticks_diff(ticks_ms(), start) >= timeout_ms:
                raise PN532Timeout("no frame from the PN532 within %d ms" % timeout_ms)
            sleep_ms(1)

        def left():
            return max(0, timeout_ms - ticks_diff(ticks_ms(), start))

        # find the start code 00 FF, skipping preamble and noise
        prev = -1
        for _ in range(_MAX_SKIP):
            b = t.read(1, left())
            if not b:
                raise PN532Timeout("PN532 frame cut short before its start code")
            if prev == 0x00 and b[0] == 0xFF:
                break
            prev = b[0]
        else:
            raise FrameError("no start code 00 FF in %d bytes" % _MAX_SKIP)
        head = self._read_exact(2, left())
        ln, lcs = head[0], head[1]
        if (ln, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):
            self._read_exact(1, left())  # postamble
            return (KIND_ACK if ln == 0 else KIND_NACK), b""
        if (ln + lcs) & 0xFF or ln == 0:
            raise FrameError("bad length checksum: LEN %02x LCS %02x" % (ln, lcs))
        return _parse_body(self._read_exact(ln + 2, left()), ln, _CHIP_TFI)

    def _read_exact(self, n, timeout_ms):
        b = self._t.read(n, timeout_ms)
        if b is None or len(b) < n:
            raise PN532Timeout("PN532 frame cut short: %d of %d bytes"
                               % (0 if b is None else len(b), n))
        return b
