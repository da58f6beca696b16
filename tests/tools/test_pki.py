"""tools.pki: the broker's CA and server certificate (docs/operations.md "Boxes speak TLS")."""
import datetime as dt
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tools import pki
from tools.errors import TelegestError


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_makes_a_ten_year_p256_ca_with_a_private_key_0600(tmp_path):
    p = pki.init_ca(tmp_path / "pki")
    ca = _cert(p.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    days = (ca.not_valid_after_utc - ca.not_valid_before_utc).days
    assert days == pki.CA_DAYS
    assert stat.S_IMODE(p.ca_key.stat().st_mode) == 0o600
    assert len(p.ca_cert.read_text()) < 1536, "fits the box's `ca` setting"


def test_init_refuses_to_replace_a_ca(tmp_path):
    pki.init_ca(tmp_path)
    with pytest.raises(TelegestError, match="cuts off every box provisioned"):
        pki.init_ca(tmp_path)


def test_server_cert_is_signed_by_the_ca_for_its_names(tmp_path):
    pki.init_ca(tmp_path)
    p = pki.server_cert(tmp_path, ["mqtt.agency.example", "192.0.2.7", "localhost"])
    assert stat.S_IMODE(p.server_key.stat().st_mode) == 0o600
    assert sorted(pki.cert_names(p.server_cert)) == sorted(
        ["mqtt.agency.example", "192.0.2.7", "localhost"])
    cert, ca = _cert(p.server_cert), _cert(p.ca_cert)
    cert.verify_directly_issued_by(ca)
    assert cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=800)
    # what a client verifying against the CA accepts (the firmware's context on CPython)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=p.ca_cert.read_text())
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(p.server_cert, p.server_key)


def test_server_cert_without_a_ca_says_how_to_make_one(tmp_path):
    with pytest.raises(TelegestError, match="telegest fleet pki init"):
        pki.server_cert(tmp_path, ["localhost"])


def test_ensure_keeps_the_ca_and_adds_missing_names(tmp_path):
    first = pki.ensure(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    server_before = first.server_cert.read_bytes()
    pki.ensure(tmp_path)
    assert first.server_cert.read_bytes() == server_before, "reused"
    pki.ensure(tmp_path, ["localhost", "127.0.0.1", "box-host.lan"])
    assert first.ca_cert.read_bytes() == ca_before, "provisioned boxes keep trusting it"
    assert "box-host.lan" in pki.cert_names(first.server_cert)


def test_read_ca_refuses_a_server_certificate(tmp_path):
    p = pki.ensure(tmp_path)
    assert pki.read_ca(p.ca_cert).startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(TelegestError, match="not a CA certificate"):
        pki.read_ca(p.server_cert)
    with pytest.raises(TelegestError, match="cannot read the CA certificate"):
        pki.read_ca(tmp_path / "missing.pem")


def _cli(*argv):
    from tests.helpers import telegest

    return telegest(*argv, timeout=60)


def test_fleet_pki_commands_print_the_mosquitto_lines(tmp_path):
    d = tmp_path / "pki"
    out = _cli("fleet", "pki", "init", "--dir", str(d))
    assert out.returncode == 0 and f"CA certificate {d / 'ca.pem'}" in out.stdout
    out = _cli("fleet", "pki", "server-cert", "--dir", str(d), "--name", "mqtt.agency.example",
               "--name", "203.0.113.5")
    assert out.returncode == 0, out.stderr
    assert f"listener 8883\ncafile {d / 'ca.pem'}\ncertfile {d / 'server.pem'}\n" \
           f"keyfile {d / 'server.key'}\ntls_version tlsv1.2\n" in out.stdout
    assert "private" not in out.stdout and "BEGIN" not in out.stdout, "no key printed"
    again = _cli("fleet", "pki", "init", "--dir", str(d))
    assert again.returncode == 2 and "cuts off every box provisioned" in again.stderr


def test_wasm_boxes_refuse_a_ca(tmp_path):
    p = pki.ensure(tmp_path)
    out = _cli("device", "sim", "--board", "wasm", "--devices", "r-1", "--ca", str(p.ca_cert))
    assert out.returncode == 2 and "the WebAssembly MicroPython has no ssl module" in out.stderr
