# ntptime for the virtual box: the firmware's clock sync, answered with the host's clock
# while the virtual Wi-Fi is up (there is no NTP server to reach from CI). Same API as the
# port's module: time() counts from the port's epoch, settime() sets the RTC.
import time as _time

import network

host = "pool.ntp.org"
timeout = 1
_EPOCH = 946684800 if _time.gmtime(0)[0] == 2000 else 0


def time():
    if not network.connected():
        raise OSError(-202)
    import machine
    return int(machine._t0() - _EPOCH)


def settime():
    import machine
    tm = _time.gmtime(time() + _EPOCH)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
