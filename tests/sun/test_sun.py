"""fleet.sun: AN12196's published example, and every bad input answered with a reason."""
from __future__ import annotations

import json

import pytest

from fleet import sun
from fleet.aes128 import cbc_encrypt, ecb, pad, unpad

ZERO = "00" * 16
# AN12196 (Rev 1.8), "SUN message with picc_data and cmac", keys all zero: UID 04DE5F1EACC040,
# SDMReadCtr 61
VECTOR = ("https://sdm.nfcdeveloper.com/tag?picc_data=EF963FF7828658A599F3041510671E88"
          "&cmac=94EED9EE65337086")


def test_an12196_vector():
    r = sun.verify_url(VECTOR, ZERO, ZERO)
    assert r == sun.SunResult("04DE5F1EACC040", 61, True)
    assert r.as_json() == {"uid": "04DE5F1EACC040", "counter": 61, "valid": True}


def test_an12196_vector_other_file_key_is_a_bad_mac():
    r = sun.verify_url(VECTOR, ZERO, "11" * 16)
    assert (r.uid, r.counter, r.valid) == ("04DE5F1EACC040", 61, False)
    assert "cmac does not match" in r.reason


def test_wrong_meta_key_says_the_data_is_not_a_tag_read():
    r = sun.verify_url(VECTOR, "22" * 16, ZERO)
    assert not r.valid and r.uid is None and "does not decrypt" in r.reason


def _url(picc: str, mac: str, extra: str = "") -> str:
    return f"https://t.example/s?{extra}picc_data={picc}&cmac={mac}"


@pytest.mark.parametrize("url,words", [
    (_url("EF963FF7828658A599F3041510671E", "94EED9EE65337086"), "30 hex digits, not 32"),
    (_url("EF963FF7828658A599F3041510671E88" * 2, "94EED9EE65337086")[:-16] + "94EED9EE65337086",
     "64 hex digits"),
    (_url("EF963FF7828658A599F3041510671E88AABBCCDDEEFF0011", "94EED9EE65337086"), "LRP"),
    (_url("ZZ963FF7828658A599F3041510671E88", "94EED9EE65337086"), "not hexadecimal"),
    (_url("EF963FF7828658A599F3041510671E88", "94EED9EE653370"), "cmac has 14"),
    (_url("EF963FF7828658A599F3041510671E88", "94EED9EE65337086", "c=x1&"), "not a number"),
    ("https://t.example/s?picc_data=EF963FF7828658A599F3041510671E88", "once each"),
    ("", "once each"),
    ("\x00\uffff not a url [", "once each"),
])
def test_bad_urls_get_a_reason(url, words):
    r = sun.verify_url(url, ZERO, ZERO)
    assert not r.valid and words in r.reason


@pytest.mark.parametrize("meta,file", [("00", ZERO), (ZERO, "G" * 32), ("", "")])
def test_bad_keys_get_a_reason(meta, file):
    r = sun.verify_url(VECTOR, meta, file)
    assert not r.valid and "32 hex digits" in r.reason


def test_reference_is_parsed():
    read = sun.parse_url(_url("EF963FF7828658A599F3041510671E88", "94EED9EE65337086", "c=12&"))
    assert (read.kind, read.ref) == ("client", 12)
    read = sun.parse_url(_url("EF963FF7828658A599F3041510671E88", "94EED9EE65337086", "g=7&"))
    assert (read.kind, read.ref) == ("caregiver", 7)


def test_keys_are_per_tag_and_per_purpose():
    master = "ab" * 32
    a = sun.tag_keys(master, bytes.fromhex("04DE5F1EACC040"))
    b = sun.tag_keys(master, bytes.fromhex("04DE5F1EACC041"))
    assert len({a.app, a.file, a.meta, b.app, b.file, b.meta}) == 6
    assert a == sun.tag_keys(master, bytes.fromhex("04DE5F1EACC040"))
    assert all(len(k) == 16 for k in (a.app, a.file, a.meta))


def test_a_read_made_with_diversified_keys_verifies_only_with_them():
    uid = bytes.fromhex("04AABBCCDDEEFF")
    keys = sun.tag_keys("cd" * 32, uid)
    picc = ecb(keys.meta, bytes([sun.PICC_TAG]) + uid + (5).to_bytes(3, "little") + bytes(5))
    url = sun.template("https://t.example/s", "client", 3).replace("0" * 32, picc.hex().upper())
    url = url.replace("cmac=" + "0" * 16, "cmac=" + sun.sdm_mac(keys.file, uid, 5).hex())
    assert sun.verify_url(url, keys.meta.hex(), keys.file.hex()) == \
        sun.SunResult("04AABBCCDDEEFF", 5, True)
    other = sun.tag_keys("cd" * 32, bytes.fromhex("04AABBCCDDEE00"))
    assert not sun.verify_url(url, keys.meta.hex(), other.file.hex()).valid


def test_padding_round_trip():
    for n in (0, 1, 15, 16, 17):
        data = bytes(range(n))
        assert len(pad(data)) % 16 == 0 and unpad(pad(data)) == data
    assert unpad(bytes(16)) is None
    assert cbc_encrypt(bytes(16), bytes(16), bytes(16)) == ecb(bytes(16), bytes(16))


def test_cli_prints_one_json_object(capsys):
    from tools.cli import main

    assert main(["badge", "sun", "--meta-key", ZERO, "--file-key", ZERO, VECTOR]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"uid": "04DE5F1EACC040", "counter": 61, "valid": True}
    assert main(["badge", "sun", "--meta-key", ZERO, "--file-key", "11" * 16, VECTOR]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["valid"] is False and got["counter"] == 61 and "cmac" in got["reason"]
    assert main(["badge", "sun", "--meta-key", ZERO, "--file-key", ZERO,
                 VECTOR.replace("cmac=94", "cmac=9")]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got == {"uid": None, "counter": None, "valid": False,
                   "reason": "cmac has 15 hex digits, not 16"}


def test_cli_bad_key_is_one_telegest_line(capsys):
    from tools.cli import main

    assert main(["badge", "sun", "--meta-key", "00", "--file-key", ZERO, VECTOR]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("telegest: --meta-key")
