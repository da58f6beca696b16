"""fleet.tagtokens: signed client tokens."""
from __future__ import annotations

import re

from fleet import tagtokens

SECRET = "ab" * 32


def test_minted_token_verifies_and_fits_a_qr_alphanumeric_code():
    token = tagtokens.mint(SECRET, 12, 3456)
    assert tagtokens.verify(SECRET, 12, token) is None
    assert re.fullmatch(r"[0-9A-Z .$%*+/:-]+", token) and len(token) <= 64
    t = tagtokens.parse(token)
    assert (t.organisation_id, t.client_id) == (12, 3456) and str(t) == token
    assert len(tagtokens.mint(SECRET, 9_999_999_999, 9_999_999_999)) <= 64


def test_each_mint_draws_a_new_serial():
    assert tagtokens.mint(SECRET, 1, 2) != tagtokens.mint(SECRET, 1, 2)
    assert tagtokens.mint(SECRET, 1, 2, "AAAAAAAA") == tagtokens.mint(SECRET, 1, 2, "AAAAAAAA")


def test_what_is_refused_and_why():
    token = tagtokens.mint(SECRET, 1, 2)
    org, client, serial, mac = token.split(".")[1:]
    assert "another" not in (tagtokens.verify(SECRET, 1, token) or "")
    assert "signature does not match" in tagtokens.verify("cd" * 32, 1, token)
    assert "not this one" in tagtokens.verify(SECRET, 7, token)
    moved = f"TG1.{org}.3.{serial}.{mac}"  # the same signature on another client
    assert "signature does not match" in tagtokens.verify(SECRET, 1, moved)
    for bad in ("C01-DEMO", "TG1.1.2", "tg1." + token[4:], token + "A", "TG1.01.2.AAAAAAAA."
                + mac):
        assert "not a TG1 token" in tagtokens.verify(SECRET, 1, bad)
    assert tagtokens.looks_signed(token) and not tagtokens.looks_signed("C01-DEMO")
