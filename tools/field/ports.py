"""Serial ports: open one by URL with one clear error, and list what is plugged in.

Every field command takes a pyserial URL: a device path (/dev/ttyUSB0, COM3), socket://host:port,
rfc2217://host:port or loop://, so the same commands work at the client's home, through a
remote serial server, and in the tests against the simulators.
"""
from __future__ import annotations

import errno
import re
import select
import socket
from dataclasses import dataclass

import serial
from serial.tools import list_ports

from tools.errors import TelegestError

# USB VID:PID of the bridges found on ESP32 boards
KNOWN_BRIDGES = {
    (0x10C4, 0xEA60): "CP210x USB-UART (ESP32 DevKitC and many boards)",
    (0x1A86, 0x7523): "CH340 USB-UART (cheap ESP32 boards)",
    (0x1A86, 0x55D4): "CH9102 USB-UART (ESP32 DevKit v1.1, M5Stack)",
    (0x0403, 0x6001): "FTDI FT232R USB-UART",
    (0x303A, 0x1001): "ESP32-S3 / C3 native USB (USB-Serial/JTAG)",
}


class PortError(TelegestError):
    pass


@dataclass
class PortInfo:
    device: str
    vid: int | None
    pid: int | None
    description: str
    hint: str

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04X}:{self.pid:04X}" if self.vid is not None else "-"


def list_serial_ports() -> list[PortInfo]:
    """The serial ports of this machine, each with a hint of what is attached."""
    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        vid, pid = p.vid, p.pid
        if vid is not None and (vid, pid) in KNOWN_BRIDGES:
            hint = "ESP32? " + KNOWN_BRIDGES[(vid, pid)]
        elif vid is not None:
            hint = "USB serial device, not a known ESP32 bridge"
        else:
            hint = "no USB identity (built-in or virtual port)"
        desc = p.description if p.description and p.description != "n/a" else ""
        out.append(PortInfo(p.device, vid, pid, desc, hint))
    return out


def explain_open_error(url: str, err: BaseException) -> str:
    """What an exception from opening `url` means for a technician, and what to do."""
    text = str(err)
    code = getattr(err, "errno", None)
    m = re.search(r"\[Errno (\d+)\]", text)
    if code is None and m:
        code = int(m.group(1))
    if url.startswith(("socket://", "rfc2217://")):
        if code == errno.ECONNREFUSED or "refused" in text.lower():
            return (f"nothing answers at {url}: start the serial server (or the simulator) "
                    "there, or check the host and port")
        if "disconnected" in text:
            return (f"{url} hung up at once: the serial server already has a client. Close the "
                    "other program using it and run again")
        return f"cannot reach {url}: {text}"
    if code == errno.ENOENT or "No such file" in text or "could not open port" in text and (
            "FileNotFound" in text):
        return (f"no serial port {url}: plug the board in with a data USB cable, then run "
                "`telegest device ports` to see its name")
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return (f"permission denied on {url}: add yourself to the serial group "
                "(`sudo usermod -aG dialout $USER`, then log out and in) and run again")
    if code in (errno.EBUSY, errno.EAGAIN) or "lock" in text.lower() or "busy" in text.lower():
        return (f"{url} is busy: another program has it open (a serial monitor, an IDE, another "
                "telegest). Close it and run again")
    return f"cannot open {url}: {text}"


def open_port(url: str, baudrate: int = 115200, timeout: float = 1.0,
              exclusive: bool = True) -> serial.SerialBase:
    """serial.serial_for_url(url, ...) opened, or PortError saying why not."""
    kwargs = {"baudrate": baudrate, "timeout": timeout, "do_not_open": True}
    try:
        port = serial.serial_for_url(url, **kwargs)
    except (ValueError, serial.SerialException) as e:
        raise PortError(f"bad port {url!r}: {e}") from e
    if exclusive and hasattr(port, "exclusive") and not url.startswith(("socket:", "rfc2217:",
                                                                          "loop:")):
        port.exclusive = True
    try:
        port.open()
    except (serial.SerialException, OSError) as e:
        raise PortError(explain_open_error(url, e)) from e
    if url.startswith("socket://") and _hung_up(port):
        port.close()
        raise PortError(explain_open_error(url, serial.SerialException("socket disconnected")))
    return port


def _hung_up(port: serial.SerialBase, wait: float = 0.1) -> bool:
    """A serial server that already has a client accepts the next one and closes it at once."""
    sock = getattr(port, "_socket", None)
    if sock is None or not select.select([sock], [], [], wait)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
