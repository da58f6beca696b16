"""A register-level MFRC522 / WS1850S simulator with ISO 14443A tags in its field (CPython).

It models what a driver sees through the registers: reset values, the 64-byte FIFO and its
level and flush, ComIrqReg/DivIrqReg with their Set1/Set2 write rule, ErrorReg, CollReg,
ControlReg's RxLastBits, the CRC coprocessor (preset from ModeReg), and the command engine:
Idle, CalcCRC, Transceive (sent on BitFramingReg StartSend, TxLastBits honoured; the tag timer
fires TimerIRq only when TModeReg TAuto is set and the antenna is on) and SoftReset.

Tags follow the ISO 14443-3 state machine (IDLE, READY at a cascade level, ACTIVE, HALT):
REQA/WUPA, ANTICOLLISION and SELECT with cascade levels, HLTA, and NTAG21x READ (16 bytes,
wrapping) and WRITE (4-bit ACK/NAK). A 4-byte UID card (MIFARE Classic) NAKs READ, as it does
without authentication. Two tags in the field collide bit by bit in ANTICOLLISION.

Plug it in as a bus: `sim.i2c()` (readfrom_mem, writeto_mem, readfrom_mem_into, scan) or
`sim.spi()` -> (spi, cs) (write, read, readinto, write_readinto; address bytes decoded as
the chip does), so the real transports run against it. Failure modes: no tag, two tags,
`stop_answering()` (the I2C address is NAKed, SPI reads 00), `hang()` (registers answer but
no command ever completes), `corrupt_crc(n)`, `babble_next()` (an answer longer than the
FIFO), `mute_tag(n)` (the tag ignores the next n frames).
"""
from __future__ import annotations

from tools.sim.pn532 import ntag_image

# reset values of the registers that matter (datasheet section 9.2)
RESET = {0x01: 0x20, 0x02: 0x80, 0x04: 0x14, 0x07: 0x21, 0x0B: 0x08, 0x0C: 0x10, 0x0E: 0xA0,
         0x11: 0x3F, 0x14: 0x80, 0x16: 0x10, 0x17: 0x84, 0x18: 0x84, 0x19: 0x4D, 0x24: 0x26,
         0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20, 0x21: 0xFF, 0x22: 0xFF}
NAMES = {0x01: "Command", 0x02: "ComIEn", 0x04: "ComIrq", 0x05: "DivIrq", 0x06: "Error",
         0x08: "Status2", 0x09: "FIFOData", 0x0A: "FIFOLevel", 0x0C: "Control",
         0x0D: "BitFraming", 0x0E: "Coll", 0x11: "Mode", 0x12: "TxMode", 0x13: "RxMode",
         0x14: "TxControl", 0x15: "TxASK", 0x21: "CRCResultH", 0x22: "CRCResultL",
         0x24: "ModWidth", 0x2A: "TMode", 0x2B: "TPrescaler", 0x2C: "TReloadH",
         0x2D: "TReloadL", 0x37: "Version"}
VERSIONS = {"MFRC522": 0x92, "WS1850S": 0x15, "MFRC522v1": 0x91}
_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)


def crc_a(data: bytes, preset: int = 0x6363) -> bytes:
    """ISO 14443-3 CRC_A (CRC-16/CCITT reflected, preset 6363), low byte first."""
    crc = preset
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return bytes((crc & 0xFF, crc >> 8))


def _bcc(b: bytes) -> int:
    return b[0] ^ b[1] ^ b[2] ^ b[3]


class Tag:
    """One ISO 14443A tag: a 4-byte UID card (SAK 08), or an NTAG21x with a 7-byte UID."""

    def __init__(self, uid: bytes, pages: bytes | None = None):
        self.uid = bytes(uid)
        if len(self.uid) not in (4, 7):
            raise ValueError("UID of 4 or 7 bytes")
        self.ntag = len(self.uid) == 7
        self.pages = bytearray(pages) if pages is not None else (
            ntag_image(self.uid) if self.ntag else bytearray())
        self.atqa = b"\x44\x00" if self.ntag else b"\x04\x00"
        self.sak = 0x00 if self.ntag else 0x08
        self.state = "IDLE"
        self.halted = False  # woke from HALT: a wrong command sends it back there
        self.level = 1

    def power_off(self) -> None:
        """The field went off: the tag loses power and starts again in IDLE."""
        self.state, self.halted, self.level = "IDLE", False, 1

    def parts(self) -> list[bytes]:
        """The 5 bytes answered at each cascade level (CT, UID bytes, BCC)."""
        u = self.uid
        cls = [b"\x88" + u[0:3], u[3:7]] if self.ntag else [u]
        return [p + bytes((_bcc(p),)) for p in cls]

    def _fail(self):
        self.state = "HALT" if self.halted else "IDLE"

    def receive(self, frame: bytes, bits: int) -> tuple[bytes, int, bool] | None:
        """The tag's answer (bytes, valid bits in the last byte or 0, carries a CRC_A)."""
        if bits == 7 and len(frame) == 1:
            cmd = frame[0] & 0x7F
            if (cmd == 0x26 and self.state == "IDLE") or (
                    cmd == 0x52 and self.state in ("IDLE", "HALT")):
                self.halted = self.state == "HALT"
                self.state, self.level = "READY", 1
                return self.atqa, 0, False
            self._fail()
            return None
        if bits:
            self._fail()
            return None
        if self.state == "READY" and len(frame) == 2 and frame[0] == (0x93, 0x95)[
                min(self.level, 2) - 1] and frame[1] == 0x20:
            return self.parts()[self.level - 1], 0, False
        if self.state == "READY" and len(frame) == 9 and frame[1] == 0x70:
            part = self.parts()[self.level - 1]
            if frame[0] != (0x93, 0x95, 0x97)[self.level - 1] or crc_a(frame[:7]) != frame[7:]:
                self._fail()
                return None
            if frame[2:7] != part:
                return None  # another tag's UID: this one stays quiet, still READY
            if self.level < len(self.parts()):
                self.level += 1
                return self._crc(bytes((0x04,)))
            self.state = "ACTIVE"
            return self._crc(bytes((self.sak,)))
        if self.state == "ACTIVE" and len(frame) >= 2 and crc_a(frame[:-2]) == frame[-2:]:
            return self._active(frame[:-2])
        if self.state == "ACTIVE" and len(frame) >= 2:
            self._fail()
            return b"\x01", 0x04, False  # NAK: CRC error
        self._fail()
        return None

    def _active(self, cmd: bytes):
        if cmd == b"\x50\x00":
            self.state, self.halted = "HALT", True
            return None
        n = len(self.pages) // 4
        if cmd[0] == 0x30 and len(cmd) == 2 and self.ntag and cmd[1] < n:
            p = cmd[1]
            data = b"".join(bytes(self.pages[(p + i) % n * 4:(p + i) % n * 4 + 4])
                            for i in range(4))
            return self._crc(data)
        if cmd[0] == 0xA2 and len(cmd) == 6 and self.ntag and 2 <= cmd[1] < n:
            p = cmd[1]
            if p in (2, 3):  # lock bytes and the OTP capability container: bits only set
                for i in range(4):
                    self.pages[p * 4 + i] |= cmd[2 + i]
            else:
                self.pages[p * 4:p * 4 + 4] = cmd[2:6]
            return b"\x0a", 4, False
        self._fail()
        return (b"\x00" if self.ntag else b"\x04"), 4, False  # NAK: invalid argument / not allowed

    @staticmethod
    def _crc(data: bytes):
        return data + crc_a(data), 0, True


class RC522Sim:
    """One chip. `log` holds every register access: ("w"|"r", reg, value)."""

    def __init__(self, chip: str = "MFRC522", tag: Tag | None = None):
        self.version = VERSIONS[chip]
        self.tags: list[Tag] = [tag] if tag else []
        self.log: list[tuple[str, int, int]] = []
        self.frames: list[tuple[bytes, int]] = []  # what went on air: (bytes, TxLastBits)
        self.answering = True
        self.hung = False
        self._corrupt = 0
        self._babble = 0
        self._mute = 0
        self.regs = bytearray(64)
        self.fifo = bytearray()
        self._soft_reset()

    # -- the field and the knobs -----------------------------------------------------------
    def place_tag(self, uid: bytes | Tag, pages: bytes | None = None) -> Tag:
        """Add a tag to the field (a second one makes a collision)."""
        tag = uid if isinstance(uid, Tag) else Tag(uid, pages)
        self.tags.append(tag)
        return tag

    def remove_tag(self) -> None:
        self.tags.clear()

    @property
    def tag(self) -> Tag | None:
        return self.tags[0] if self.tags else None

    def stop_answering(self) -> None:
        self.answering = False

    def hang(self) -> None:
        self.hung = True

    def resume(self) -> None:
        self.answering, self.hung = True, False

    def corrupt_crc(self, n: int = 1) -> None:
        """The next n tag answers carrying a CRC_A arrive with a wrong one."""
        self._corrupt = n

    def babble_next(self) -> None:
        """The next answer is 80 bytes of noise: more than the FIFO holds."""
        self._babble = 1

    def mute_tag(self, n: int = 1) -> None:
        """The tags ignore the next n frames (a tag leaving the field, a weak coupling)."""
        self._mute = n

    def writes(self) -> list[tuple[int, int]]:
        return [(reg, v) for op, reg, v in self.log if op == "w"]

    # -- registers -------------------------------------------------------------------------
    def read(self, reg: int) -> int:
        reg &= 0x3F
        if reg == 0x09:
            v = self.fifo.pop(0) if self.fifo else 0
        elif reg == 0x0A:
            v = len(self.fifo)
        elif reg == 0x37:
            v = self.version
        else:
            v = self.regs[reg]
        self.log.append(("r", reg, v))
        return v

    def write(self, reg: int, v: int) -> None:
        reg &= 0x3F
        self.log.append(("w", reg, v))
        if reg == 0x01:
            self._command(v)
        elif reg in (0x04, 0x05):  # Set1/Set2: bit 7 says whether the marked bits set or clear
            if v & 0x80:
                self.regs[reg] |= v & 0x7F
            else:
                self.regs[reg] &= ~v & 0xFF
        elif reg == 0x09:
            if len(self.fifo) < 64:
                self.fifo.append(v)
            else:
                self._error(0x10)
        elif reg == 0x0A:
            if v & 0x80:
                self.fifo.clear()
                self.regs[0x06] &= ~0x10 & 0xFF
        elif reg == 0x0D:
            self.regs[reg] = v & 0x7F  # StartSend reads back 0 once the data went out
            if v & 0x80 and self.regs[0x01] & 0x0F == 0x0C:
                self._transceive(v & 0x07)
        elif reg in (0x06, 0x37):
            pass  # read-only
        elif reg == 0x14:
            self.regs[reg] = v
            if not v & 0x03:
                self._field_off()
        else:
            self.regs[reg] = v

    def _error(self, bits: int) -> None:
        self.regs[0x06] |= bits
        self.regs[0x04] |= 0x02  # ErrIRq

    # -- the command engine ----------------------------------------------------------------
    def _command(self, v: int) -> None:
        cmd = v & 0x0F
        if self.hung and cmd != 0x00:
            self.regs[0x01] = (self.regs[0x01] & 0xF0) | cmd
            return  # accepted, never completes
        if cmd == 0x0F:
            self._soft_reset()
            return
        self.regs[0x01] = v & 0x3F
        if cmd == 0x03:  # CalcCRC over the FIFO; runs until Idle
            crc = crc_a(bytes(self.fifo), _PRESETS[self.regs[0x11] & 0x03])
            self.fifo.clear()
            self.regs[0x22], self.regs[0x21] = crc[0], crc[1]
            self.regs[0x05] |= 0x04  # CRCIRq
        elif cmd == 0x00:
            pass

    def _soft_reset(self) -> None:
        self.regs[:] = bytes(64)
        for reg, v in RESET.items():
            self.regs[reg] = v
        # the FIFO keeps its content through a SoftReset (datasheet 10.3.1.10)
        self._field_off()  # TxControlReg resets to 80: antenna off

    def _field_off(self) -> None:
        for tag in getattr(self, "tags", ()):
            tag.power_off()

    def _transceive(self, tx_bits: int) -> None:
        frame = bytes(self.fifo)
        self.fifo.clear()
        self.regs[0x06] = 0
        self.regs[0x04] |= 0x40  # TxIRq
        self.frames.append((frame, tx_bits))
        answers = []
        if self.regs[0x14] & 0x03 and not self._mute:
            for tag in self.tags:
                a = tag.receive(frame, tx_bits)
                if a is not None:
                    answers.append(a)
        elif self._mute:
            self._mute -= 1
        if self._babble:
            self._babble = 0
            answers = [(bytes(range(80)), 0, False)]
        if not answers:
            if self.regs[0x2A] & 0x80:  # TAuto: the timer started at the end of sending
                self.regs[0x04] |= 0x01  # TimerIRq
            return
        data, bits, has_crc = answers[0]
        if self._corrupt and has_crc:
            self._corrupt -= 1
            data = data[:-1] + bytes((data[-1] ^ 0xFF,))
        if len(answers) > 1:
            data, bits = self._collide([a[0] for a in answers])
        for b in data:
            if len(self.fifo) < 64:
                self.fifo.append(b)
            else:
                self._error(0x10)  # BufferOvfl
        self.regs[0x0C] = (self.regs[0x0C] & 0xF8) | bits
        self.regs[0x04] |= 0x20  # RxIRq (Transceive goes on receiving: no IdleIRq)

    def _collide(self, datas: list[bytes]) -> tuple[bytes, int]:
        """Bits that differ between answers collide: CollErr, CollPos (1-32, 0 for bit 32),
        and with ValuesAfterColl = 0 every bit from the first collision on reads 0."""
        n = min(len(d) for d in datas)
        out = bytearray(datas[0][:n])
        for pos in range(n * 8):
            if len({(d[pos // 8] >> (pos % 8)) & 1 for d in datas}) > 1:
                if not self.regs[0x0E] & 0x80:
                    out[pos // 8] &= (1 << (pos % 8)) - 1
                    out[pos // 8 + 1:] = bytes(n - pos // 8 - 1)
                self._error(0x08)  # CollErr
                self.regs[0x0E] = (self.regs[0x0E] & 0x80) | ((pos + 1) & 0x1F)
                break
        return bytes(out), 0

    # -- buses -----------------------------------------------------------------------------
    def i2c(self, addr: int = 0x28) -> SimI2C:
        return SimI2C(self, addr)

    def spi(self) -> tuple[SimSPI, SimCS]:
        bus = SimSPI(self)
        return bus, bus.cs


class SimI2C:
    """machine.I2C shape, with the chip at `addr`: a missing or silent chip NAKs (OSError 19)."""

    def __init__(self, sim: RC522Sim, addr: int):
        self.sim = sim
        self.addr = addr

    def _check(self, addr: int) -> None:
        if addr != self.addr or not self.sim.answering:
            raise OSError(19, "ENODEV")  # MicroPython's error for an address NAK

    def scan(self) -> list[int]:
        return [self.addr] if self.sim.answering else []

    def readfrom_mem(self, addr: int, reg: int, n: int) -> bytes:
        self._check(addr)
        return bytes(self.sim.read(reg) for _ in range(n))

    def readfrom_mem_into(self, addr: int, reg: int, buf) -> None:
        buf[:] = self.readfrom_mem(addr, reg, len(buf))

    def writeto_mem(self, addr: int, reg: int, buf) -> None:
        self._check(addr)
        for b in bytes(buf):
            self.sim.write(reg, b)


class SimCS:
    def __init__(self, bus: SimSPI):
        self.bus = bus
        self.level = 1

    def value(self, v=None):
        if v is not None:
            if v == 0 and self.level == 1:
                self.bus.begin()
            self.level = v
        return self.level


class SimSPI:
    """machine.SPI shape: decodes address bytes as the chip does (8.1.2) while CS is low."""

    def __init__(self, sim: RC522Sim):
        self.sim = sim
        self.cs = SimCS(self)
        self.bad_addresses = 0  # address bytes with bit 0 set (the chip requires 0)
        self._reg: int | None = None
        self._mode: str | None = None
        self._pending = 0

    def begin(self) -> None:
        self._mode, self._reg, self._pending = None, None, 0

    def _byte(self, b: int) -> int:
        if self.cs.level:
            return 0xFF  # not selected: MISO floats
        if not self.sim.answering:
            return 0x00
        if b & 0x01 and self._mode != "w":
            self.bad_addresses += 1
        out, self._pending = self._pending, 0
        if self._mode is None:  # the first byte is an address
            self._mode, self._reg = ("r" if b & 0x80 else "w"), (b >> 1) & 0x3F
            if self._mode == "r":
                self._pending = self.sim.read(self._reg)
        elif self._mode == "w":
            self.sim.write(self._reg, b)
        elif b:  # the next address to read; 00 ends the read
            self._pending = self.sim.read((b >> 1) & 0x3F)
        return out

    def write(self, buf) -> None:
        for b in bytes(buf):
            self._byte(b)

    def read(self, n: int, write: int = 0x00) -> bytes:
        return bytes(self._byte(write) for _ in range(n))

    def readinto(self, buf, write: int = 0x00) -> None:
        buf[:] = self.read(len(buf), write)

    def write_readinto(self, out, inp) -> None:
        inp[:] = bytes(self._byte(b) for b in bytes(out))
