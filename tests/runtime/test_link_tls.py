"""The link speaks TLS when the box holds the broker's CA (docs/security.md "Boxes speak TLS"):
the client gets the firmware's verifying context, a CA it cannot load is a failed attempt
said in `last_error`, never a fall back to a clear connection."""
import ssl

import pytest

from firmware.runtime.settings import Settings, check, digest
from firmware.runtime.tls import client_context
from tests.runtime.test_link import Box
from tools import pki

BAD_CA = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory):
    return pki.init_ca(tmp_path_factory.mktemp("pki")).ca_cert.read_text()


def test_a_link_with_a_ca_connects_with_a_verifying_context(tmp_path, ca_pem):
    b = Box(tmp_path, ca=ca_pem)
    b.run(300)
    assert b.link.up() and b.link.tls()
    ctx = b.net.contexts[0]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in ctx.get_ca_certs()] == [
        ((("organizationName", "telegest"),), (("commonName", "telegest broker CA"),))]
    b.close()


def test_a_ca_that_does_not_load_never_falls_back_to_clear(tmp_path):
    b = Box(tmp_path, ca=BAD_CA)
    b.run(3000)
    assert b.net.opened == [] and b.net.contexts == []
    assert b.link.status() == "down" and b.link.failures == 1
    assert b.link.last_error.startswith("ValueError: cannot load the CA certificate")
    b.close()


def test_configure_a_new_ca_or_none(tmp_path, ca_pem):
    b = Box(tmp_path, ca=BAD_CA)
    b.run(300)
    b.link.configure("broker.local", 8883, "r1", "secret", ca_pem)
    b.run(300)
    assert b.link.up() and b.net.contexts[-1] is not None
    b.link.configure("broker.local", 1883, "r1", "secret", "")
    b.run(300)
    assert b.link.up() and not b.link.tls() and b.net.contexts[-1] is None
    b.close()


def test_the_ca_setting_is_a_pem_certificate(ca_pem, tmp_path):
    assert check("ca", ca_pem) == ca_pem and check("ca", "") == ""
    with pytest.raises(ValueError, match="ca must be a PEM certificate"):
        check("ca", "MIIB...")
    with pytest.raises(ValueError, match="ca over 1536 characters"):
        check("ca", ca_pem + "x" * 1536)
    s = Settings(str(tmp_path / "settings.json"))
    assert s.get("ca") == ""
    doc = {"host": "mqtt.example", "port": 8883, "ca": ca_pem}
    assert digest(s.stage(doc), sorted(doc)) == digest(doc)


def test_client_context_says_why():
    with pytest.raises(ValueError, match="no CA certificate"):
        client_context("")
    with pytest.raises(ValueError, match="cannot load the CA certificate"):
        client_context(BAD_CA)
