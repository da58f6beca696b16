"""The broker's small PKI: one CA, and the broker's server certificate signed by it.

`telegest up` makes them on first start in <data>/pki/ and reuses them afterwards;
`telegest fleet pki init` and `telegest fleet pki server-cert` make them for a production
broker (docs/operations.md, "Boxes speak TLS"). The boxes are provisioned with the CA
certificate (`telegest device provision --ca`) and verify the broker against it.

EC P-256 keys (a CA certificate of about 600 bytes: it travels in the box's settings), SHA-256
signatures; the CA for 10 years, the server certificate for 825 days. Private keys are written
0600 and never printed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from pathlib import Path

from fleet.private_files import write_private
from tools.errors import TelegestError

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CA_DAYS, SERVER_DAYS = 3650, 825
DEFAULT_NAMES = ("localhost", "127.0.0.1")


class Pki:
    """The files of one PKI folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.ca_cert, self.ca_key = self.folder / CA_CERT, self.folder / CA_KEY
        self.server_cert, self.server_key = self.folder / SERVER_CERT, self.folder / SERVER_KEY


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str):
    from cryptography.x509.oid import NameOID
    from cryptography import x509

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "telegest"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(names) -> list:
    from cryptography import x509

    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def init_ca(folder: str | Path, name: str = "telegest broker CA", force: bool = False) -> Pki:
    """A new CA in `folder` (ca.pem, ca.key 0600). Refuses to replace one unless `force`:
    every box provisioned with the old CA would be cut off."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    pki = Pki(folder)
    if not 1 <= len(name) <= 64:
        raise TelegestError("the CA's name must have 1 to 64 characters")
    if pki.ca_cert.exists() and not force:
        raise TelegestError(f"{pki.ca_cert} exists: a new CA cuts off every box provisioned "
                            f"with it (--force to replace it anyway)")
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _save(pki, pki.ca_key, _key_pem(key), pki.ca_cert, _pem(cert))
    return pki


def _save(pki: Pki, key_path: Path, key: bytes, cert_path: Path, cert: bytes) -> None:
    try:
        pki.folder.mkdir(parents=True, exist_ok=True)
        write_private(key_path, key)
        cert_path.write_bytes(cert)
    except OSError as e:
        raise TelegestError(f"cannot write {cert_path.name} and {key_path.name} in "
                            f"{pki.folder}: {e.strerror or e}") from None


def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _load_ca(pki: Pki):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise TelegestError(f"cannot read the CA in {pki.folder}: {e} (`telegest fleet pki "
                            f"init` makes one)") from None
    return cert, key


def server_cert(folder: str | Path, names: list[str] | tuple[str, ...] = DEFAULT_NAMES) -> Pki:
    """The broker's certificate (server.pem, server.key 0600), signed by the CA of `folder`,
    for `names` (host names and addresses the boxes use; the first is the common name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise TelegestError("the broker's certificate needs at least one host name or address")
    pki = Pki(folder)
    ca, ca_key = _load_ca(pki)
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name(names[0][:64])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _save(pki, pki.server_key, _key_pem(key), pki.server_cert, _pem(cert))
    return pki


def cert_names(path: str | Path) -> list[str]:
    """The host names and addresses a certificate is valid for."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def ensure(folder: str | Path, names: list[str] | tuple[str, ...] = DEFAULT_NAMES) -> Pki:
    """`telegest up`: the CA and server certificate of `folder`, made on first use and kept;
    a server certificate missing one of `names` is made again (same CA: provisioned boxes
    still trust it)."""
    pki = Pki(folder)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        init_ca(folder, force=True)
    if not (pki.server_cert.exists() and pki.server_key.exists()) \
            or not set(names) <= set(cert_names(pki.server_cert)):
        server_cert(folder, names)
    return pki


def read_ca(path: str | Path) -> str:
    """A CA certificate's PEM text, checked: what `telegest device provision --ca` installs."""
    from cryptography import x509

    try:
        text = Path(path).read_text()
        cert = x509.load_pem_x509_certificate(text.encode())
    except (OSError, ValueError, UnicodeError) as e:
        raise TelegestError(f"cannot read the CA certificate {path}: {e}") from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise TelegestError(f"{path} is not a CA certificate (give the CA's ca.pem, not the "
                            f"broker's own certificate)")
    return _pem(cert).decode()


def mosquitto_lines(pki: Pki, port: int = 8883) -> str:
    """The broker's TLS listener, as docs/operations.md shows it."""
    from tools.broker import TLS_CONF

    return TLS_CONF.format(port=port, ca=pki.ca_cert, cert=pki.server_cert, key=pki.server_key)


def cmd_pki_init(args) -> int:
    p = init_ca(args.dir, args.name, args.force)
    print(f"CA certificate {p.ca_cert} (give it to `telegest device provision --ca`), its key "
          f"{p.ca_key} (0600: keep it off the broker once the certificate is made)")
    return 0


def cmd_pki_server_cert(args) -> int:
    p = server_cert(args.dir, args.name)
    print(f"broker certificate {p.server_cert} for {', '.join(cert_names(p.server_cert))}, "
          f"key {p.server_key} (0600: readable by the mosquitto user only)\n"
          f"mosquitto.conf:\n{mosquitto_lines(p)}", end="")
    return 0


def _ca_name(text: str) -> str:
    if not 1 <= len(text.strip()) <= 64:
        raise argparse.ArgumentTypeError("a CA name has 1 to 64 characters")
    return text.strip()


def add_commands(fleet, command) -> None:
    """`telegest fleet pki init | server-cert`."""
    from tools import argtypes as at

    pk = fleet.add_parser("pki", help="the broker's CA and TLS certificate").add_subparsers(
        dest="pki_cmd", required=True)
    i = command(pk, "init", cmd_pki_init, "create the CA the boxes verify the broker against "
                "(EC P-256, 10 years)")
    i.add_argument("--dir", required=True, type=at.folder, help="folder for ca.pem and ca.key")
    i.add_argument("--name", default="telegest broker CA", type=_ca_name,
                   help="the CA's common name")
    i.add_argument("--force", action="store_true",
                   help="replace an existing CA (every provisioned box must be provisioned again)")
    s = command(pk, "server-cert", cmd_pki_server_cert, "create the broker's TLS certificate, "
                "signed by the CA, for the names and addresses the boxes dial")
    s.add_argument("--dir", required=True, type=at.folder,
                   help="the CA's folder; server.pem, server.key go there")
    s.add_argument("--name", action="append", required=True, type=at.host,
                   help="a host name or IP address of the broker (repeat; the first is its CN)")
