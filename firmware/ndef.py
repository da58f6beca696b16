"""NDEF on NTAG memory: TLVs, records, well-known Text and URI records. No reader here.

Memory is the tag's user area from page 4: TLVs `type len value`, len one byte or FF + two
bytes; 03 holds the NDEF message, FE ends. A record is flags|TNF, type length, payload length
(1 byte with SR, else 4), id length (with IL), type, id, payload. Anything malformed raises
NdefError with the reason, never another exception. Runs on CPython and MicroPython.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_MB = const(0x80)
_ME = const(0x40)
_CF = const(0x20)
_SR = const(0x10)
_IL = const(0x08)

TNF_EMPTY = const(0)
TNF_WELL_KNOWN = const(1)
TNF_MEDIA = const(2)
TNF_ABSOLUTE_URI = const(3)
TNF_EXTERNAL = const(4)
TNF_UNKNOWN = const(5)

_TLV_NULL = const(0x00)
_TLV_NDEF = const(0x03)
_TLV_TERMINATOR = const(0xFE)

# URI identifier codes (NFC Forum URI RTD, table 3), index = code
URI_PREFIXES = (
    "", "http://www.", "https://www.", "http://", "https://", "tel:", "mailto:",
    "ftp://anonymous:anonymous@", "ftp://ftp.", "ftps://", "sftp://", "smb://", "nfs://",
    "ftp://", "dav://", "news:", "telnet://", "imap:", "rtsp://", "urn:", "pop:", "sip:",
    "sips:", "tftp:", "btspp://", "btl2cap://", "btgoep://", "tcpobex://", "irdaobex://",
    "file://", "urn:epc:id:", "urn:epc:tag:", "urn:epc:pat:", "urn:epc:raw:", "urn:epc:",
    "urn:nfc:",
)


class NdefError(Exception):
    """The NDEF data is malformed or not what was asked for; the message says why."""


class NdefTruncated(NdefError):
    """The data ends before the TLV or message does: read more memory and try again."""


class Record:
    def __init__(self, tnf, type, payload, id=b""):
        self.tnf = tnf
        self.type = bytes(type)
        self.payload = bytes(payload)
        self.id = bytes(id)

    def __eq__(self, other):
        return (isinstance(other, Record) and self.tnf == other.tnf and self.type == other.type
                and self.payload == other.payload and self.id == other.id)

    def __repr__(self):
        return "Record(%d, %r, %r)" % (self.tnf, self.type, self.payload)


# -- TLVs ----------------------------------------------------------------------------------
def find_message(mem):
    """The NDEF message bytes of the first 03 TLV in `mem` (user memory from page 4)."""
    i = 0
    n = len(mem)
    while i < n:
        t = mem[i]
        if t == _TLV_NULL:
            i += 1
            continue
        if t == _TLV_TERMINATOR:
            break
        if i + 1 >= n:
            raise NdefTruncated("TLV 0x%02x at offset %d has no length" % (t, i))
        ln = mem[i + 1]
        start = i + 2
        if ln == 0xFF:
            if i + 3 >= n:
                raise NdefTruncated("TLV 0x%02x at offset %d: 3-byte length cut" % (t, i))
            ln = (mem[i + 2] << 8) | mem[i + 3]
            start = i + 4
            if ln < 0xFF:
                raise NdefError("TLV 0x%02x at offset %d: 3-byte length %d below 255"
                                % (t, i, ln))
        if start + ln > n:
            raise NdefTruncated("TLV 0x%02x at offset %d: length %d runs past the end (%d)"
                                % (t, i, ln, n))
        if t == _TLV_NDEF:
            return bytes(mem[start:start + ln])
        i = start + ln  # lock/memory control, proprietary, reserved: skipped
    raise NdefError("no NDEF message TLV (03) in the memory")


def message_tlv(message):
    """`message` wrapped in an NDEF TLV, terminator included."""
    n = len(message)
    if n > 0xFFFE:
        raise NdefError("NDEF message too long for a TLV: %d bytes" % n)
    if n < 0xFF:
        head = bytes((_TLV_NDEF, n))
    else:
        head = bytes((_TLV_NDEF, 0xFF, n >> 8, n & 0xFF))
    return head + bytes(message) + bytes((_TLV_TERMINATOR,))


# -- records -------------------------------------------------------------------------------
def decode_message(msg):
    """The list of records in an NDEF message (an empty message gives [])."""
    records = []
    i = 0
    n = len(msg)
    ended = False
    if n == 0:
        return records
    while i < n:
        if ended:
            raise NdefError("record at offset %d after the ME record" % i)
        if n - i < 3:
            raise NdefError("record header at offset %d truncated" % i)
        flags = msg[i]
        tnf = flags & 0x07
        if not records and not flags & _MB:
            raise NdefError("first record lacks the MB flag")
        if records and flags & _MB:
            raise NdefError("MB flag on record %d" % len(records))
        if flags & _CF:
            raise NdefError("chunked records are not supported")
        if tnf > TNF_UNKNOWN:
            raise NdefError("TNF %d is not allowed here" % tnf)
        type_len = msg[i + 1]
        j = i + 2
        if flags & _SR:
            pay_len = msg[j]
            j += 1
        else:
            if n - j < 4:
                raise NdefError("payload length at offset %d truncated" % j)
            pay_len = int.from_bytes(bytes(msg[j:j + 4]), "big")
            j += 4
        id_len = 0
        if flags & _IL:
            if j >= n:
                raise NdefError("id length at offset %d truncated" % j)
            id_len = msg[j]
            j += 1
        if tnf == TNF_EMPTY and (type_len or pay_len or id_len):
            raise NdefError("empty record (TNF 0) with type, id or payload")
        end = j + type_len + id_len + pay_len
        if end > n:
            raise NdefError("record %d runs past the message end (%d > %d)"
                            % (len(records), end, n))
        rtype = msg[j:j + type_len]
        rid = msg[j + type_len:j + type_len + id_len]
        records.append(Record(tnf, rtype, msg[j + type_len + id_len:end], rid))
        ended = bool(flags & _ME)
        i = end
    if not ended:
        raise NdefError("last record lacks the ME flag")
    return records


def encode_message(records):
    """The NDEF message bytes for a list of records (MB, ME and SR set as needed)."""
    if not records:
        raise NdefError("an NDEF message needs at least one record")
    out = bytearray()
    last = len(records) - 1
    for k, r in enumerate(records):
        if len(r.type) > 255 or len(r.id) > 255:
            raise NdefError("record type or id longer than 255 bytes")
        flags = r.tnf & 0x07
        if k == 0:
            flags |= _MB
        if k == last:
            flags |= _ME
        short = len(r.payload) < 256
        if short:
            flags |= _SR
        if r.id:
            flags |= _IL
        out.append(flags)
        out.append(len(r.type))
        if short:
            out.append(len(r.payload))
        else:
            out += len(r.payload).to_bytes(4, "big")
        if r.id:
            out.append(len(r.id))
        out += r.type + r.id + r.payload
    return bytes(out)


# -- well-known records ------------------------------------------------------------------------
def text_record(text, lang="en"):
    """A well-known Text record, UTF-8."""
    lb = lang.encode()
    if not lb or len(lb) > 63:
        raise NdefError("language code must be 1 to 63 bytes")
    return Record(TNF_WELL_KNOWN, b"T", bytes((len(lb),)) + lb + text.encode())


def decode_text(record):
    """(lang, text) of a well-known Text record."""
    _expect(record, b"T")
    p = record.payload
    if not p:
        raise NdefError("Text record with an empty payload")
    if p[0] & 0x80:
        raise NdefError("UTF-16 Text records are not supported")
    ln = p[0] & 0x3F
    if 1 + ln > len(p):
        raise NdefError("Text record: language length %d past the payload" % ln)
    return _utf8(p[1:1 + ln], "language"), _utf8(p[1 + ln:], "text")


def uri_record(uri):
    """A well-known URI record, with the longest matching prefix code."""
    code = 0
    for k in range(1, len(URI_PREFIXES)):
        if uri.startswith(URI_PREFIXES[k]) and len(URI_PREFIXES[k]) > len(URI_PREFIXES[code]):
            code = k
    return Record(TNF_WELL_KNOWN, b"U",
                  bytes((code,)) + uri[len(URI_PREFIXES[code]):].encode())


def decode_uri(record):
    """The full URI of a well-known URI record."""
    _expect(record, b"U")
    p = record.payload
    if not p:
        raise NdefError("URI record with an empty payload")
    if p[0] >= len(URI_PREFIXES):
        raise NdefError("URI prefix code 0x%02x is reserved" % p[0])
    return URI_PREFIXES[p[0]] + _utf8(p[1:], "URI")


def _expect(record, rtype):
    if record.tnf != TNF_WELL_KNOWN or record.type != rtype:
        raise NdefError("not a well-known %r record: TNF %d type %r"
                        % (rtype, record.tnf, record.type))


def _utf8(b, what):
    try:
        return bytes(b).decode("utf-8")
    except Exception:  # UnicodeError on CPython, UnicodeError/ValueError on MicroPython
        raise NdefError("%s is not valid UTF-8" % what)
