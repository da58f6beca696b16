"""An ESP32 ROM bootloader simulator speaking esptool's SLIP protocol on a TCP socket, an RFC 2217
server or a pty.

esptool (its Python API or its command line) reaches it as `socket://127.0.0.1:PORT`,
`rfc2217://127.0.0.1:PORT` or the pty path and sees an ESP32-D0WD-V3 with 4 MB of flash, held
here in memory (`sim.flash`). It answers what esptool 5 sends to an ESP32: SYNC, READ_REG /
WRITE_REG (chip magic, eFuses, the SPI peripheral's user commands for the flash id and SFDP),
SPI_ATTACH, SPI_SET_PARAMS,
FLASH_BEGIN / FLASH_DATA / FLASH_END (data checksum checked), FLASH_DEFL_*, SPI_FLASH_MD5,
CHANGE_BAUDRATE, and MEM_BEGIN / MEM_DATA / MEM_END: after esptool uploads its flasher stub
the simulator answers as the stub does (OHAI, ERASE_FLASH, ERASE_REGION, raw MD5, 2 status
bytes). Unknown commands get the ROM's "invalid message" status.

Like the chip: the ROM answers every SYNC with eight replies (the stub, once uploaded, with
eight replies whose value is 0, which esptool reads as "the stub is still running"); it measures
the speed of the first bytes after a reset (autobaud) and keeps it until CHANGE_BAUDRATE, so a
client at another speed reads garbage (tools/sim/wire.py models the UART); DTR and RTS drive EN
and GPIO0 through the DevKitC auto-reset transistors (RFC 2217 carries them; `reset()` is the
EN button for a raw socket or a pty): EN rising with GPIO0 low starts the ROM in download mode,
with GPIO0 high the firmware (`app`, an object with `feed(bytes) -> bytes`, e.g. the reader
firmware's console; without one, the boot log and the MicroPython banner). A reset drops the
stub, any transfer in progress and the measured speed.

Failure modes for tests: `boot_mode="app"` (the chip runs its firmware: boot log and
MicroPython banner, no bootloader), `chip="esp8266"` (another chip's magic), `die_after(n)`
(stops answering after n flash data blocks, as a board losing power mid-write).
"""
from __future__ import annotations

import hashlib
import struct
import threading
import zlib

from tools.sim.wire import WireSim

FLASH_SIZE = 4 * 1024 * 1024
SECTOR = 0x1000
MAGIC = {"esp32": 0x00F01D83, "esp8266": 0xFFF0C101}
CHECKSUM_SEED = 0xEF
SPI_BASE = 0x3FF42000
SPI_CMD, SPI_USR2, SPI_W0 = SPI_BASE, SPI_BASE + 0x24, SPI_BASE + 0x80
SPI_CMD_USR = 1 << 18
FLASH_ID = 0x1640EF  # Winbond, 4 MB
SFDP = 0x50444653
EFUSE = 0x3FF5A000
BOOT_LOG = (b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 "
            b"(SPI_FAST_FLASH_BOOT)\r\nconfigsip: 0, SPIWP:0xee\r\nclk_drv:0x00,q_drv:0x00\r\n"
            b"mode:DIO, clock div:2\r\nentry 0x400805e4\r\n"
            b"MicroPython v1.27.0 on 2025-12-09; Generic ESP32 module with ESP32\r\n>>> ")
# ROM status codes (esptool's FatalError.WithResult names them)
ERR_INVALID, ERR_FAILED, ERR_CRC, ERR_FLASH_WRITE = 0x05, 0x06, 0x07, 0x08

(FLASH_BEGIN, FLASH_DATA, FLASH_END, MEM_BEGIN, MEM_END, MEM_DATA, SYNC, WRITE_REG, READ_REG,
 SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE, FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END,
 SPI_FLASH_MD5) = (0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x0F,
                   0x10, 0x11, 0x12, 0x13)
ERASE_FLASH, ERASE_REGION = 0xD0, 0xD1


def slip(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def checksum(data: bytes, state: int = CHECKSUM_SEED) -> int:
    for b in data:
        state ^= b
    return state


class EspRomSim(WireSim):
    """One simulated ESP32 in download mode; serve it with serve_tcp() or serve_pty()."""

    name = "esp-rom-sim"
    label = "ESP32 ROM"
    refuse_second_client = True

    def __init__(self, chip: str = "esp32", boot_mode: str = "download",
                 flash_size: int = FLASH_SIZE, app=None) -> None:
        self.chip = chip
        self.boot_mode = boot_mode
        self.app = app  # the firmware that runs when the chip boots from flash
        self.flash = bytearray(b"\xff" * flash_size)
        self.regs: dict[int, int] = {
            0x40001000: MAGIC[chip],
            0x3FF40014: 347,  # UART_CLKDIV: 40 MHz crystal at 115200 baud
            0x3FF6607C: 1 << 31,  # APB_CTL_DATE: chip revision 3
            EFUSE + 4: 0xC4123456, EFUSE + 8: 0x0000240A,  # MAC 24:0a:c4:12:34:56
            EFUSE + 12: (1 << 15) | (1 << 9),  # revision bit 0, package D0WD
            EFUSE + 20: 1 << 20,  # revision bit 1
        }
        self.stub = False
        self.commands: list[int] = []  # opcodes received, in order
        self.blocks_written = 0
        self.erases = 0
        self.baud_changes: list[int] = []
        self._die_after: int | None = None
        self._refuse_code = 0
        self.dead = False
        self._write: dict | None = None
        self._mem: dict | None = None
        self._rx = bytearray()
        self._in_packet = False
        self._lock = threading.Lock()
        self._init_wire()
        self._greeted = False
        self._measured: int | None = None  # the speed autobaud locked on, until a reset
        self._lines = (False, False)  # DTR, RTS
        self._en_rose = False  # EN went high: the chip samples GPIO0 while it starts
        self._io0_low = False
        self.resets: list[str] = []  # the boot mode of each reset, in order

    def on_connect(self) -> None:
        self._greeted = False  # a new client sees the ROM's greeting again

    def on_disconnect(self) -> None:
        with self._lock:
            self._settle()  # a reset just before the client left has started the chip

    # -- reset: EN and GPIO0 ---------------------------------------------------------------------
    def reset(self, download: bool = True) -> None:
        """Tap EN (RST), holding BOOT (GPIO0 low) or not."""
        with self._lock:
            self._boot("download" if download else "app")

    def _boot(self, mode: str) -> None:
        self.boot_mode = mode
        self.stub = False
        self._write = self._mem = None
        self._rx.clear()
        self._in_packet = False
        self._greeted = False
        self._measured = None
        self.baud = 115200
        self.resets.append(mode)

    def set_lines(self, dtr: bool, rts: bool) -> None:
        """The auto-reset circuit: EN low while RTS is asserted and DTR is not; GPIO0 low
        while DTR is asserted and RTS is not. The chip starts when EN rises and reads GPIO0
        a moment later (EN's RC delay), so GPIO0 going low just after EN rose still counts."""
        with self._lock:
            en = not (rts and not dtr)
            io0 = not (dtr and not rts)
            was_en = not (self._lines[1] and not self._lines[0])
            self._lines = (dtr, rts)
            if not en:
                self._settle()  # it had started: this is a new reset
                return
            if not was_en:  # EN rises: the chip starts
                self._en_rose, self._io0_low = True, not io0
            elif self._en_rose:
                if not io0:
                    self._io0_low = True
                elif self._io0_low:  # GPIO0 back high: its strapping was read
                    self._settle()

    def _settle(self) -> None:
        if self._en_rose:
            self._en_rose = False
            self._boot("download" if self._io0_low else "app")

    def line_speed(self, client: int | None) -> int:
        if self.boot_mode != "download":
            return self.baud  # the firmware's UART: 115200
        if self._measured is None and client is not None:
            self._measured = self.baud = client  # autobaud on the first SYNC
        return self.baud

    # -- knobs ---------------------------------------------------------------------------------
    def die_after(self, blocks: int) -> None:
        """Stop answering anything after `blocks` more flash data blocks (power lost)."""
        self._die_after = self.blocks_written + blocks

    def refuse_writes(self, code: int = ERR_FLASH_WRITE) -> None:
        """Answer every flash data block with this error status (a write-protected or worn
        flash chip says 0x08)."""
        self._refuse_code = code

    def revive(self) -> None:
        """Power back, in download mode: the ROM starts afresh (the stub is gone)."""
        self._die_after, self.dead, self.stub = None, False, False
        self._write = self._mem = None

    # -- bytes in, bytes out ---------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        with self._lock:
            self._settle()  # bytes arrive: the chip has started
            if self.boot_mode != "download" and self.app is not None:
                return b"" if self.dead else self.app.feed(data)
            if self.boot_mode != "download":
                if self._greeted:
                    return b""
                self._greeted = True
                return BOOT_LOG
            out = bytearray()
            for b in data:
                if b == 0xC0:
                    if self._in_packet and self._rx:
                        out += self._packet(self._unslip(bytes(self._rx)))
                        self._rx.clear()
                    self._in_packet = True  # a C0 both ends and starts a packet
                elif self._in_packet:
                    self._rx.append(b)
            return bytes(out) if not self.dead else b""

    @staticmethod
    def _unslip(raw: bytes) -> bytes:
        return raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")

    def _packet(self, pkt: bytes) -> bytes:
        if self.dead or len(pkt) < 8 or pkt[0] != 0:
            return b""
        _, op, size, chk = struct.unpack("<BBHI", pkt[:8])
        data = pkt[8:8 + size]
        self.commands.append(op)
        try:
            answer = self._command(op, data, chk)
        except _Refused as e:
            return self._reply(op, 0, b"", status=1, error=e.code)
        if answer is None:  # no reply (a dead chip, or a command that answers otherwise)
            return b""
        if isinstance(answer, bytes):  # several packets already framed
            return answer
        val, payload = answer
        return self._reply(op, val, payload)

    def _reply(self, op: int, val: int, payload: bytes, status: int = 0, error: int = 0) -> bytes:
        tail = bytes((status, error)) + (b"" if self.stub else b"\x00\x00")
        body = payload + tail
        return slip(struct.pack("<BBHI", 1, op, len(body), val) + body)

    # -- the commands ----------------------------------------------------------------------------
    def _command(self, op: int, data: bytes, chk: int):
        if op == SYNC:
            if data != b"\x07\x07\x12\x20" + b"\x55" * 32:
                raise _Refused(ERR_INVALID)
            val = 0 if self.stub else 0x20120707  # esptool tells the stub by its 0
            return b"".join(self._reply(op, val, b"") for _ in range(8))
        if op == READ_REG:
            (addr,) = struct.unpack("<I", data[:4])
            return self.regs.get(addr, 0), b""
        if op == WRITE_REG:
            for i in range(0, len(data) - 15, 16):
                addr, value, mask, _ = struct.unpack("<IIII", data[i:i + 16])
                self._write_reg(addr, value, mask)
            return 0, b""
        if op in (SPI_ATTACH, SPI_SET_PARAMS):
            return 0, b""
        if op == CHANGE_BAUDRATE:
            new = struct.unpack("<I", data[:4])[0]
            self.baud_changes.append(new)
            self.change_baud(new)  # after this answer, which leaves at the old speed
            return 0, b""
        if op in (FLASH_BEGIN, FLASH_DEFL_BEGIN):
            return self._flash_begin(op, data)
        if op in (FLASH_DATA, FLASH_DEFL_DATA):
            return self._flash_data(op, data, chk)
        if op in (FLASH_END, FLASH_DEFL_END):
            self._write = None
            return 0, b""
        if op == SPI_FLASH_MD5:
            addr, size = struct.unpack("<II", data[:8])
            if addr + size > len(self.flash):
                raise _Refused(ERR_FAILED)
            digest = hashlib.md5(self.flash[addr:addr + size]).digest()
            return 0, digest if self.stub else digest.hex().encode()
        if op in (MEM_BEGIN, MEM_DATA, MEM_END):
            return self._mem_command(op, data, chk)
        if self.stub and op == ERASE_FLASH:
            self.flash[:] = b"\xff" * len(self.flash)
            self.erases += 1
            return 0, b""
        if self.stub and op == ERASE_REGION:
            offset, size = struct.unpack("<II", data[:8])
            if offset % SECTOR or size % SECTOR:
                raise _Refused(ERR_FAILED)
            self._erase(offset, size)
            return 0, b""
        raise _Refused(ERR_INVALID)

    def _write_reg(self, addr: int, value: int, mask: int) -> None:
        self.regs[addr] = (self.regs.get(addr, 0) & ~mask) | (value & mask)
        if addr == SPI_CMD and value & SPI_CMD_USR:  # run the SPI flash user command
            cmd = self.regs.get(SPI_USR2, 0) & 0xFF
            addr_reg = self.regs.get(SPI_BASE + 4, 0) >> 8
            self.regs[SPI_W0] = {0x9F: FLASH_ID,
                                 0x5A: SFDP if addr_reg == 0 else 0}.get(cmd, 0)
            self.regs[SPI_CMD] = 0  # done at once

    def _erase(self, offset: int, size: int) -> None:
        end = min(len(self.flash), offset + -(-size // SECTOR) * SECTOR)
        self.flash[offset:end] = b"\xff" * (end - offset)

    def _flash_begin(self, op: int, data: bytes):
        size, blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        if offset % SECTOR or offset + size > len(self.flash):
            raise _Refused(ERR_FAILED)
        self._erase(offset, size)
        self._write = {"offset": offset, "block": block_size, "next": 0, "blocks": blocks,
                       "deflate": zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None,
                       "pos": offset}
        return 0, b""

    def _flash_data(self, op: int, data: bytes, chk: int):
        w = self._write
        if w is None or (op == FLASH_DEFL_DATA) != (w["deflate"] is not None):
            raise _Refused(ERR_FAILED)
        if self._refuse_code:
            raise _Refused(self._refuse_code)
        size, seq = struct.unpack("<II", data[:8])
        payload = data[16:16 + size]
        if len(payload) != size or checksum(payload) != chk & 0xFF:
            raise _Refused(ERR_CRC)
        if seq != w["next"]:
            raise _Refused(ERR_FAILED)
        if w["deflate"] is not None:
            payload = w["deflate"].decompress(payload)
        pos = w["pos"]
        if pos + len(payload) > len(self.flash):
            raise _Refused(ERR_FLASH_WRITE)
        self.flash[pos:pos + len(payload)] = payload
        w["pos"] += len(payload)
        w["next"] += 1
        self.blocks_written += 1
        if self._die_after is not None and self.blocks_written >= self._die_after:
            self.dead = True  # this block's data reached the flash, its answer never left
            return None
        return 0, b""

    def _mem_command(self, op: int, data: bytes, chk: int):
        if op == MEM_BEGIN:
            self._mem = {"size": struct.unpack("<I", data[:4])[0], "got": 0}
            return 0, b""
        if self._mem is None:
            raise _Refused(ERR_FAILED)
        if op == MEM_DATA:
            size = struct.unpack("<I", data[:4])[0]
            if checksum(data[16:16 + size]) != chk & 0xFF:
                raise _Refused(ERR_CRC)
            self._mem["got"] += size
            return 0, b""
        flag, entry = struct.unpack("<II", data[:8])
        answer = self._reply(op, 0, b"")
        if not flag and entry:  # jump to the uploaded flasher stub: it says hello
            self.stub = True
            return answer + slip(b"OHAI")
        return answer


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def main(argv: list[str] | None = None) -> None:
    """`python -m tools.sim.esp_rom [--pty | --rfc2217] [--chip esp8266] [--app]`: serve until
    Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description="An ESP32 ROM bootloader speaking esptool's SLIP")
    ap.add_argument("--pty", action="store_true", help="a pseudo-terminal instead of TCP")
    ap.add_argument("--rfc2217", action="store_true",
                    help="an RFC 2217 server (baud rate, DTR/RTS reset) instead of a raw socket")
    ap.add_argument("--chip", choices=sorted(MAGIC), default="esp32")
    ap.add_argument("--app", action="store_true", help="not in download mode: print a boot log")
    args = ap.parse_args(argv)
    sim = EspRomSim(args.chip, "app" if args.app else "download")
    sim.serve_forever(args.pty, args.rfc2217)


if __name__ == "__main__":
    main()
