"""DS3231 battery-backed RTC over I2C: the time registers (BCD) and the oscillator-stop flag.

`i2c` is anything with readfrom_mem_into(addr, reg, buf) and writeto_mem(addr, reg, buf)
(machine.I2C or SoftI2C on the box, a fake register file in the tests). Times are Unix
seconds, UTC; the chip keeps 24-hour time, years 2000-2099.
"""
try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

ADDR = const(0x68)
_TIME = const(0x00)  # seconds, minutes, hours, weekday, date, month, year
_STATUS = const(0x0F)
_OSF = const(0x80)  # oscillator stopped: the time is not to be trusted


def bcd2dec(b):
    return (b >> 4) * 10 + (b & 0x0F)


def dec2bcd(n):
    return ((n // 10) << 4) | (n % 10)


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """(year, month, day) of a day count since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def to_unix(y, mo, d, h, mi, s):
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def from_unix(t):
    """(year, month, day, hour, minute, second, weekday 1-7 with Monday 1)."""
    days, rem = divmod(int(t), 86400)
    y, mo, d = civil_from_days(days)
    return y, mo, d, rem // 3600, rem // 60 % 60, rem % 60, (days + 3) % 7 + 1


class DS3231:
    def __init__(self, i2c, addr=ADDR):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(7)
        self._one = bytearray(1)

    def read_regs(self):
        """The 7 time registers decoded: (year, month, day, hour, minute, second)."""
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, _TIME, b)
        h = b[2]
        if h & 0x40:  # 12-hour mode (not ours, but a chip set elsewhere may use it)
            hour = bcd2dec(h & 0x1F) % 12 + (12 if h & 0x20 else 0)
        else:
            hour = bcd2dec(h & 0x3F)
        return (2000 + bcd2dec(b[6]), bcd2dec(b[5] & 0x1F), bcd2dec(b[4] & 0x3F), hour,
                bcd2dec(b[1] & 0x7F), bcd2dec(b[0] & 0x7F))

    def lost_power(self):
        self.i2c.readfrom_mem_into(self.addr, _STATUS, self._one)
        return bool(self._one[0] & _OSF)

    def time(self):
        """Unix seconds, or None when the oscillator stopped (battery flat or first power)."""
        if self.lost_power():
            return None
        y, mo, d, h, mi, s = self.read_regs()
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
            return None
        return to_unix(y, mo, d, h, mi, s)

    def set_time(self, t):
        """Write Unix seconds (2000-2099) and clear the oscillator-stop flag."""
        y, mo, d, h, mi, s, wd = from_unix(t)
        if not 2000 <= y <= 2099:
            raise ValueError("the DS3231 keeps years 2000 to 2099")
        b = self._buf
        b[0], b[1], b[2], b[3] = dec2bcd(s), dec2bcd(mi), dec2bcd(h), wd
        b[4], b[5], b[6] = dec2bcd(d), dec2bcd(mo), dec2bcd(y - 2000)
        self.i2c.writeto_mem(self.addr, _TIME, b)
        self.i2c.readfrom_mem_into(self.addr, _STATUS, self._one)
        self._one[0] &= ~_OSF & 0xFF
        self.i2c.writeto_mem(self.addr, _STATUS, self._one)
