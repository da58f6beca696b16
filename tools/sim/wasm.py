"""`telegest device sim --board wasm`: virtual reader boxes running the real firmware on the
real MicroPython (tools/vboard --box), one PN532 simulator each, against a real broker.

Each box is laid out as a deployed, provisioned reader: the firmware bundle `telegest device
deploy` would copy (mpy-cross output, /main.py, /boot.py, the deploy manifest) and a
/settings.json with the virtual Wi-Fi, the broker and the device's login. It boots straight
into the firmware's main loop; its serial console is a socket:// URL for `telegest device
console`, `deploy` and `provision`. A tap sent with `telegest device tap DEVICE BADGE` is heard
here (as `sim-control` on a broker that enforces logins) and put on that box's PN532
simulator for half a second: the firmware reads it over its UART like a card held to the box.
"""
from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from fleet.private_files import write_private
from tools.errors import TelegestError
from tools.sim.pn532 import PN532Sim
from tools.sim.reader import SIM_TAP_TOPIC
from tools.vboard import VirtualBoard, VirtualBoardError

log = logging.getLogger("telegest.sim.wasm")

AP = ("telegest-sim", "telegest-sim-wifi")  # the virtual access point every box joins
TAP_HOLD_S = 0.5  # how long a tapped card stays on the reader


def stage_firmware(root: Path) -> Path:
    """The firmware files as deploy writes them on a board, under `root`."""
    from tools.field.bundle import build_bundle, firmware_version
    from tools.field.deploy import MANIFEST, manifest_bytes

    bundle = build_bundle()
    for f in bundle:
        dest = root / f.dest.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.data)
    (root / MANIFEST.lstrip("/")).write_bytes(manifest_bytes(bundle, firmware_version()))
    return root


def unique_id(device: str) -> str:
    """A stable 6-byte machine.unique_id() per device name (an ESP32's MAC-like id)."""
    return "240ac4" + f"{zlib.crc32(device.encode()) & 0xFFFFFF:06x}"


@dataclass
class WasmBox:
    device: str
    pn532: PN532Sim
    pn532_port: int
    board: VirtualBoard
    taps: int = 0
    _timers: list[threading.Timer] = field(default_factory=list)

    def tap(self, uid_hex: str) -> None:
        self.pn532.place_tag(bytes.fromhex(uid_hex))
        t = threading.Timer(TAP_HOLD_S, self.pn532.remove_tag)
        t.daemon = True
        t.start()
        self._timers.append(t)
        self.taps += 1

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self.board.stop()
        self.pn532.close()


def start_boxes(devices: list[str], host: str, port: int, logins: dict[str, dict] | None,
                workdir: Path) -> list[WasmBox]:
    firmware = stage_firmware(workdir / "firmware")
    boxes: list[WasmBox] = []
    try:
        for d in devices:
            login = (logins or {}).get(d, {})
            root = workdir / d
            root.mkdir(parents=True, exist_ok=True)
            _copy_tree(firmware, root)
            settings = {"id": d, "ssid": AP[0], "password": AP[1], "host": host, "port": port,
                        "user": login.get("username", ""), "pass": login.get("password", "")}
            write_private(root / "settings.json", json.dumps(settings))  # its broker password
            sim = PN532Sim()
            sim_port = sim.serve_tcp()
            board = VirtualBoard(box=True, ap=AP, uarts={2: ("127.0.0.1", sim_port)},
                                 unique_id=unique_id(d), install=root)
            try:
                board.start()
            except VirtualBoardError:
                sim.close()
                raise
            boxes.append(WasmBox(d, sim, sim_port, board))
    except BaseException:
        for b in boxes:
            b.stop()
        raise
    return boxes


def _copy_tree(src: Path, dst: Path) -> None:
    for p in src.rglob("*"):
        if p.is_file():
            q = dst / p.relative_to(src)
            q.parent.mkdir(parents=True, exist_ok=True)
            q.write_bytes(p.read_bytes())


def listen_for_taps(boxes: list[WasmBox], host: str, port: int, login: dict | None,
                    say=print) -> mqtt.Client:
    by_device = {b.device: b for b in boxes}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"wasm-sim-{id(boxes):x}",
                    protocol=mqtt.MQTTv311)
    if login:
        c.username_pw_set(login["username"], login["password"])

    def on_connect(client, _u, _f, rc, _p=None):
        if rc.is_failure:
            log.warning("taps: the broker refused the tap listener: %s", rc)
            return
        for d in by_device:
            client.subscribe(SIM_TAP_TOPIC.format(device=d), qos=1)

    def on_message(_c, _u, msg):
        device = msg.topic.split("/")[2]
        box = by_device.get(device)
        uid = msg.payload.decode(errors="replace").strip()
        try:
            bytes.fromhex(uid)
        except ValueError:
            log.warning("%s: tap ignored, %r is not a card UID in hex", device, uid)
            return
        if box is not None:
            say(f"{device}: card {uid} on the PN532 simulator")
            box.tap(uid)

    c.on_connect = on_connect
    c.on_message = on_message
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        raise TelegestError(f"cannot reach the broker at {host}:{port}: {e}")
    c.loop_start()
    return c


def run_wasm(devices: list[str], host: str, port: int, logins: dict[str, dict] | None,
             control_login: dict | None, stop: threading.Event, say=print) -> int:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="telegest-wasm-") as tmp:
        boxes = start_boxes(devices, host, port, logins, Path(tmp))
        listener = None
        try:
            listener = listen_for_taps(boxes, host, port, control_login, say)
            say(f"{len(boxes)} virtual box(es) running the firmware on MicroPython "
                f"(WebAssembly), broker {host}:{port}, started in "
                f"{time.monotonic() - t0:.1f} s:")
            for b in boxes:
                say(f"  {b.device}: console {b.board.url}  PN532 simulator "
                    f"socket://127.0.0.1:{b.pn532_port}")
            say("tap with `telegest device tap DEVICE BADGE`; Ctrl-C stops")
            while not stop.wait(0.5):
                for b in boxes:
                    if b.board.proc is not None and b.board.proc.poll() is not None:
                        raise TelegestError(f"the virtual box of {b.device} stopped "
                                            f"(exit {b.board.proc.returncode})")
            return 0
        finally:
            if listener is not None:
                listener.disconnect()
                listener.loop_stop()
            for b in boxes:
                b.stop()
