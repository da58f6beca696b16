# network for the virtual box (tools/vboard/vboard.mjs --box): one WLAN station and the one
# virtual access point the bridge was given (--ap SSID, --ap-password PW). connect() checks the
# SSID and the password exactly, then associates after a short delay as a radio does; sockets
# (the socket stand-in) reach the host's network only while the station is connected.
import json
import time

import _vbox
import _vnet

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_JOIN_MS = 300  # association and DHCP, about what an ESP32 takes on a quiet network
_IP = ("192.168.4.17", "255.255.255.0", "192.168.4.1", "192.168.4.1")


def _ap():
    text = _vbox.ap()
    return json.loads(text) if text else None


class _Station:
    active = False
    status = STAT_IDLE
    ssid = None
    joined_at = None  # ticks when association completes


_sta = _Station()


def connected():
    """True while the station holds an IP (the socket stand-in asks)."""
    s = _sta
    if not s.active or s.status not in (STAT_CONNECTING, STAT_GOT_IP):
        return False
    if s.status == STAT_CONNECTING and time.ticks_diff(time.ticks_ms(), s.joined_at) >= 0:
        s.status = STAT_GOT_IP
    return s.status == STAT_GOT_IP


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface

    def active(self, on=None):
        if on is None:
            return _sta.active
        _sta.active = bool(on)
        if not on:
            _sta.status = STAT_IDLE
            _vnet.close_all()  # the asyncio streams (_vboxnet) die with the station

    def connect(self, ssid=None, key=None, bssid=None):
        if not _sta.active:
            raise OSError("Wifi Not Started")
        ap = _ap()
        if isinstance(ssid, bytes):
            ssid = ssid.decode()
        if isinstance(key, bytes):
            key = key.decode()
        _sta.ssid = ssid
        if ap is None or ap["ssid"] != ssid:
            _sta.status = STAT_NO_AP_FOUND
        elif (ap.get("password") or "") != (key or ""):
            _sta.status = STAT_WRONG_PASSWORD
        else:
            _sta.status = STAT_CONNECTING
            _sta.joined_at = time.ticks_add(time.ticks_ms(), _JOIN_MS)

    def disconnect(self):
        _sta.status = STAT_IDLE
        _vnet.close_all()

    def isconnected(self):
        return connected()

    def status(self, param=None):
        if param is None:
            connected()
            return _sta.status
        if param == "rssi":
            if not connected():
                raise OSError("not connected")
            return -52
        raise ValueError("unknown status param")

    def ifconfig(self, conf=None):
        if conf is not None:
            return None
        return _IP if connected() else ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def ipconfig(self, key):
        return {"addr4": (_IP[0], _IP[1])}.get(key) if connected() else None

    def config(self, *args, **kw):
        if args == ("mac",):
            return b"\x24\x0a\xc4" + _vbox_uid()[-3:]
        if args == ("ssid",):
            return _sta.ssid or ""
        if args == ("hostname",):
            return "telegest"
        return None

    def scan(self):
        if not _sta.active:
            raise OSError("Wifi Not Started")
        ap = _ap()
        if ap is None:
            return []
        auth = AUTH_WPA2_PSK if ap.get("password") else AUTH_OPEN
        return [(ap["ssid"].encode(), b"\x02\x00\x00\x00\x00\x01", 6, -52, auth, False)]


def _vbox_uid():
    import binascii
    return binascii.unhexlify(_vbox.unique_id())


def hostname(name=None):
    return "telegest"
