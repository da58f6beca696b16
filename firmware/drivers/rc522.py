"""MFRC522 / WS1850S protocol core: registers, the command engine, ISO 14443A and NTAG commands.

The core never touches a bus. It talks to a transport with four methods, like ESPHome's rc522
component (pcd_read_register / pcd_write_register, one byte or many):

    read_reg(reg) -> int          one register
    read_regs(reg, n) -> bytes    n reads of the same register (the FIFO)
    write_reg(reg, value)         one register
    write_regs(reg, data)         every byte of data to the same register (the FIFO)

Register numbers are the datasheet's (NXP MFRC522 rev 3.9, section 9); the transport turns
them into its bus's address bytes. A bus that fails raises OSError; the core turns that into
RC522Timeout. Every wait is bounded by `timeout_ms`. Runs unchanged on CPython and MicroPython.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from firmware.ticks import sleep_ms, ticks_diff, ticks_ms

# registers (datasheet table 20)
_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_DIV_IRQ = const(0x05)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_COLL = const(0x0E)
_MODE = const(0x11)
_TX_MODE = const(0x12)
_RX_MODE = const(0x13)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_CRC_RESULT_H = const(0x21)
_CRC_RESULT_L = const(0x22)
_MOD_WIDTH = const(0x24)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)

# commands (datasheet table 149)
_IDLE = const(0x00)
_CALC_CRC = const(0x03)
_TRANSCEIVE = const(0x0C)
_SOFT_RESET = const(0x0F)
_POWER_DOWN = const(0x10)  # CommandReg bit 4

# ComIrqReg bits
_TIMER_IRQ = const(0x01)
_RX_IRQ = const(0x20)
_IDLE_IRQ = const(0x10)
# ErrorReg bits
_BUFFER_OVFL = const(0x10)
_COLL_ERR = const(0x08)
_PARITY_ERR = const(0x02)
_PROTOCOL_ERR = const(0x01)
_FIFO_SIZE = const(64)

# ISO 14443A / NTAG21x
REQA = const(0x26)
WUPA = const(0x52)
HLTA = const(0x50)
CASCADE_TAG = const(0x88)
SEL = (0x93, 0x95, 0x97)  # cascade levels 1, 2, 3
NTAG_READ = const(0x30)
NTAG_WRITE = const(0xA2)
ACK = const(0x0A)

CHIPS = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0", 0x88: "FM17522", 0x15: "WS1850S"}


class RC522Error(Exception):
    """The chip or the tag failed; `reason` is one word: collision, timeout, crc, nak,
    overflow, parity, protocol, uid, chip."""

    def __init__(self, reason, message):
        super().__init__("%s: %s" % (reason, message))
        self.reason = reason


class RC522Timeout(RC522Error):
    """The chip itself does not answer: a bus error, or a command that never completes."""

    def __init__(self, message):
        super().__init__("chip", message)


def chip_name(version):
    return CHIPS.get(version, "unknown 0x%02x" % version)


class RC522:
    """The MFRC522 (or a compatible WS1850S, FM17522) over any transport."""

    def __init__(self, transport, timeout_ms=100):
        self._t = transport
        self.timeout_ms = timeout_ms
        self._active = False  # a tag was selected by the last list_target()
        self.stats = {"timeouts": 0, "collisions": 0, "crc_errors": 0, "naks": 0,
                      "chip_timeouts": 0}

    # -- the chip --------------------------------------------------------------------------
    def reset(self):
        """SoftReset, then the settings every reader uses: 106 kbit/s, 100 % ASK, CRC preset
        6363, a 25 ms tag timer (TAuto, prescaler 0xA9 = 40 kHz, reload 1000); antenna on."""
        self._bus(self._reset)

    def _reset(self):
        t = self._t
        t.write_reg(_COMMAND, _SOFT_RESET)
        self._wait(_COMMAND, _POWER_DOWN, 0, "SoftReset")
        v = t.read_reg(_VERSION)
        if v in (0x00, 0xFF):
            raise RC522Timeout("no chip on the bus (VersionReg reads 0x%02x)" % v)
        for reg, value in ((_TX_MODE, 0x00), (_RX_MODE, 0x00), (_MOD_WIDTH, 0x26),
                           (_T_MODE, 0x80), (_T_PRESCALER, 0xA9), (_T_RELOAD_H, 0x03),
                           (_T_RELOAD_L, 0xE8), (_TX_ASK, 0x40), (_MODE, 0x3D),
                           (_COLL, 0x00)):  # ValuesAfterColl = 0: bits after a collision read 0
            t.write_reg(reg, value)
        self._antenna_on()
        self._active = False

    def version(self):
        """VersionReg: 0x91/0x92 for an MFRC522 v1/v2, 0x15 for a WS1850S (chip_name())."""
        return self._bus(self._t.read_reg, _VERSION)

    def antenna_on(self):
        self._bus(self._antenna_on)

    def _antenna_on(self):
        v = self._t.read_reg(_TX_CONTROL)
        if v & 0x03 != 0x03:
            self._t.write_reg(_TX_CONTROL, v | 0x03)  # Tx1RFEn, Tx2RFEn

    def antenna_off(self):
        v = self._bus(self._t.read_reg, _TX_CONTROL)
        self._bus(self._t.write_reg, _TX_CONTROL, v & 0xFC)
        self._active = False

    def calc_crc(self, data):
        """CRC_A of data by the chip's coprocessor, low byte first (as sent on air)."""
        return self._bus(self._calc_crc, data)

    def _calc_crc(self, data):
        t = self._t
        t.write_reg(_COMMAND, _IDLE)
        t.write_reg(_DIV_IRQ, 0x04)  # clear CRCIRq
        t.write_reg(_FIFO_LEVEL, 0x80)  # flush
        t.write_regs(_FIFO_DATA, data)
        t.write_reg(_COMMAND, _CALC_CRC)
        self._wait(_DIV_IRQ, 0x04, 0x04, "CalcCRC")
        t.write_reg(_COMMAND, _IDLE)  # CalcCRC runs until stopped
        return bytes((t.read_reg(_CRC_RESULT_L), t.read_reg(_CRC_RESULT_H)))

    # -- ISO 14443A ------------------------------------------------------------------------
    def request(self, wakeup=False):
        """REQA (or WUPA, which also wakes halted tags), 7 bits: the ATQA (2 bytes), or None
        when no tag answers. Differing ATQAs of several tags collide; that still means tags."""
        return self._bus(self._request, wakeup)

    def _request(self, wakeup):
        r = self._transceive(bytes((WUPA if wakeup else REQA,)), 7, collisions=True)
        if r is None:
            return None
        data, bits = r
        if len(data) != 2 or bits:
            raise RC522Error("protocol", "ATQA of %d bytes (%d bits in the last)"
                             % (len(data), bits))
        return data

    def anticollision(self, level=1):
        """ANTICOLLISION at cascade level 1-3 (SEL 20): the 4 UID bytes and BCC, checked."""
        return self._bus(self._anticollision, level)

    def _anticollision(self, level):
        r = self._transceive(bytes((SEL[level - 1], 0x20)), 0)
        if r is None:
            raise RC522Error("timeout", "no answer to ANTICOLLISION level %d" % level)
        data = r[0]
        if len(data) != 5:
            raise RC522Error("protocol", "ANTICOLLISION answer of %d bytes" % len(data))
        if data[0] ^ data[1] ^ data[2] ^ data[3] != data[4]:
            self.stats["crc_errors"] += 1
            raise RC522Error("crc", "bad BCC %02x in %s" % (data[4], _hex(data)))
        return data

    def select(self, level, uid5):
        """SELECT at a cascade level with the 4 UID bytes + BCC: the SAK (CRC checked)."""
        return self._bus(self._select, level, uid5)

    def _select(self, level, uid5):
        frame = bytes((SEL[level - 1], 0x70)) + bytes(uid5)
        data = self._exchange(frame + self._calc_crc(frame), "SELECT")
        if len(data) != 1:
            raise RC522Error("protocol", "SAK of %d bytes" % len(data))
        return data[0]

    def halt(self):
        """HLTA: the selected tag goes to HALT (only WUPA wakes it). True when it kept quiet,
        as it should; an answer is a NAK."""
        return self._bus(self._halt)

    def _halt(self):
        self._active = False
        frame = bytes((HLTA, 0x00))
        return self._transceive(frame + self._calc_crc(frame), 0, idle_ok=True) is None

    def list_target(self):
        """The UID (4, 7 or 10 bytes) of the tag in the field, selected (ACTIVE), or None.

        The tag selected last time is halted first and woken with WUPA: a tag left ACTIVE
        takes a REQA as a wrong command and keeps quiet, so the card would blink in and out."""
        return self._bus(self._list_target)

    def _list_target(self):
        if self._active:
            self._halt()
        if self._request(True) is None:
            return None
        uid = bytearray()
        for level in (1, 2, 3):
            part = self._anticollision(level)
            sak = self._select(level, part)
            if sak & 0x04:  # cascade bit: the UID goes on at the next level
                if part[0] != CASCADE_TAG:
                    raise RC522Error("uid", "cascade SAK %02x without the cascade tag" % sak)
                uid += part[1:4]
            else:
                uid += part[0:4]
                self._active = True
                return bytes(uid)
        raise RC522Error("uid", "UID not complete after 3 cascade levels")

    # -- NTAG21x / Ultralight ---------------------------------------------------------------
    def ntag_read(self, page):
        """16 bytes: pages page..page+3 of the selected tag (the tag wraps past its end)."""
        return self._bus(self._ntag_read, page)

    def _ntag_read(self, page):
        frame = bytes((NTAG_READ, page & 0xFF))
        data = self._exchange(frame + self._calc_crc(frame), "READ page %d" % page)
        if len(data) != 16:
            raise RC522Error("protocol", "READ page %d: %d bytes, expected 16"
                             % (page, len(data)))
        return data

    def ntag_write(self, page, data):
        """Write 4 bytes to one page: WRITE A2 page d0-d3 CRC_A, then the tag's 4-bit ACK
        (it answers once the EEPROM is written, ~4 ms: within the 25 ms timer)."""
        if len(data) != 4:
            raise RC522Error("protocol", "NTAG WRITE takes 4 bytes, got %d" % len(data))
        self._bus(self._ntag_write, page, data)

    def _ntag_write(self, page, data):
        frame = bytes((NTAG_WRITE, page & 0xFF)) + bytes(data)
        r = self._transceive(frame + self._calc_crc(frame), 0)
        if r is None:
            self.stats["timeouts"] += 1
            raise RC522Error("timeout", "no ACK to WRITE page %d" % page)
        self._ack(r, "WRITE page %d" % page)

    # -- the exchange ----------------------------------------------------------------------
    def _exchange(self, frame, what):
        """Send a frame with CRC_A, return the answer without its CRC_A (checked by the
        coprocessor). A 4-bit answer is a NAK."""
        r = self._transceive(frame, 0)
        if r is None:
            self.stats["timeouts"] += 1
            raise RC522Error("timeout", "no answer from the tag to %s" % what)
        data, bits = r
        if bits == 4 and len(data) == 1:
            self._ack(r, what)  # an ACK where data was expected is a protocol error too
            raise RC522Error("protocol", "ACK instead of data to %s" % what)
        if bits or len(data) < 3:
            raise RC522Error("protocol", "answer to %s: %d bytes, %d bits in the last"
                             % (what, len(data), bits))
        body = data[:-2]
        if self._calc_crc(body) != data[-2:]:
            self.stats["crc_errors"] += 1
            raise RC522Error("crc", "bad CRC_A %s in the answer to %s" % (_hex(data[-2:]), what))
        return body

    def _ack(self, r, what):
        data, bits = r
        if bits != 4 or len(data) != 1:
            raise RC522Error("protocol", "answer to %s: %d bytes, %d bits in the last, "
                             "expected a 4-bit ACK" % (what, len(data), bits))
        if data[0] & 0x0F != ACK:
            self.stats["naks"] += 1
            raise RC522Error("nak", "tag answered NAK 0x%x to %s" % (data[0] & 0x0F, what))

    def _transceive(self, data, tx_bits, collisions=False, idle_ok=False):
        """(answer bytes, valid bits in the last byte or 0) or None when the tag timer ran out.

        The datasheet sequence (10.3.1.8): Idle, clear the IRQ bits, flush the FIFO, fill it,
        Transceive, StartSend with TxLastBits; then wait for RxIRq or TimerIRq."""
        t = self._t
        if len(data) > _FIFO_SIZE:
            raise RC522Error("overflow", "%d bytes do not fit the 64-byte FIFO" % len(data))
        t.write_reg(_COMMAND, _IDLE)
        t.write_reg(_COM_IRQ, 0x7F)  # Set1 = 0: clear every bit written as 1
        t.write_reg(_FIFO_LEVEL, 0x80)
        t.write_regs(_FIFO_DATA, data)
        t.write_reg(_COMMAND, _TRANSCEIVE)
        t.write_reg(_BIT_FRAMING, 0x80 | tx_bits)  # StartSend, TxLastBits, RxAlign 0
        irq = self._wait(_COM_IRQ, _RX_IRQ | _IDLE_IRQ | _TIMER_IRQ, None, "Transceive")
        if not irq & (_RX_IRQ | _IDLE_IRQ):
            return None  # TimerIRq: the 25 ms tag timer ran out, nobody answered
        err = t.read_reg(_ERROR)
        if err & _BUFFER_OVFL:
            raise RC522Error("overflow", "FIFO buffer overflow (ErrorReg %02x)" % err)
        if err & _COLL_ERR and not collisions:
            self.stats["collisions"] += 1
            pos = t.read_reg(_COLL)
            raise RC522Error("collision", "several tags answered (first collision at bit %d)"
                             % ((pos & 0x1F) or 32))
        if err & _PARITY_ERR:
            raise RC522Error("parity", "parity error in the answer (ErrorReg %02x)" % err)
        if err & _PROTOCOL_ERR:
            raise RC522Error("protocol", "protocol error (ErrorReg %02x)" % err)
        n = t.read_reg(_FIFO_LEVEL) & 0x7F
        out = t.read_regs(_FIFO_DATA, n) if n else b""
        bits = t.read_reg(_CONTROL) & 0x07
        if idle_ok and not out:
            return None
        return bytes(out), bits

    def _wait(self, reg, mask, value, what):
        """Poll reg until (reg & mask) == value, or (value None) any bit of mask is set;
        the register value. RC522Timeout after timeout_ms."""
        start = ticks_ms()
        read = self._t.read_reg
        while True:
            v = read(reg)
            if (v & mask) if value is None else (v & mask) == value:
                return v
            if ticks_diff(ticks_ms(), start) >= self.timeout_ms:
                self.stats["chip_timeouts"] += 1
                raise RC522Timeout("%s did not complete within %d ms (reg %02x = %02x)"
                                   % (what, self.timeout_ms, reg, v))
            sleep_ms(1)

    def _bus(self, fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            self.stats["chip_timeouts"] += 1
            raise RC522Timeout("bus error, the chip does not answer: %r" % (e,))


def _hex(b):
    return " ".join("%02x" % x for x in b)
