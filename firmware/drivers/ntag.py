"""NTAG21x memory through any reader with ntag_read(page) and ntag_write(page, data).

The tag model between the reader (pn532) and the NDEF format (firmware.ndef): the capability
container in page 3 gives the data area size; user memory starts at page 4.
"""
from firmware.ndef import NdefError, NdefTruncated, find_message, message_tlv

USER_PAGE = 4


def data_size(reader):
    """Bytes of user memory, from the capability container (E1 10 size/8 access)."""
    cc = reader.ntag_read(3)
    if cc[0] != 0xE1:
        raise NdefError("page 3 holds no NDEF capability container (magic %02x)" % cc[0])
    return cc[2] * 8


def read_message(reader):
    """The NDEF message bytes of the tag, reading only as many pages as the TLVs need."""
    size = data_size(reader)
    mem = bytearray()
    page = USER_PAGE
    while True:
        mem += reader.ntag_read(page)  # 4 pages at a time
        page += 4
        if len(mem) > size:
            del mem[size:]
        try:
            return find_message(mem)
        except NdefTruncated:
            if len(mem) >= size:
                raise


def write_message(reader, message):
    """Write `message` as an NDEF TLV from page 4; returns the number of pages written."""
    data = message_tlv(message)
    size = data_size(reader)
    if len(data) > size:
        raise NdefError("NDEF message of %d bytes does not fit in %d" % (len(data), size))
    data += bytes(-len(data) % 4)
    for k in range(0, len(data), 4):
        reader.ntag_write(USER_PAGE + k // 4, data[k:k + 4])
    return len(data) // 4
