"""HTTPS with a certificate authority of this machine's own, for phones on the local network.

Browsers give the camera and the microphone only to secure pages, so a phone that opens
http://192.168.1.20:7860 gets neither. `lunettes serve --https` makes, once:

- a local certificate authority (CA): ca.pem, and its key ca-key.pem, never sent anywhere;
- a server certificate signed by it for this machine's names and addresses: server.pem (the
  certificate, then the CA's) and server-key.pem.

A phone trusts the CA once (the page offers it at /lunettes-ca.crt, and the terminal prints its
fingerprint to compare); every later server certificate then verifies. The CA may only vouch
for local names and private addresses (X.509 name constraints: localhost, *.local, *.lan,
*.home.arpa, *.internal, this machine's host name, 10/8, 172.16/12, 192.168/16, 100.64/10, ...)
and the names and addresses it was first made for: a phone that trusts it trusts nothing else
with it, even if its key were stolen.

The server certificate is reused across restarts while it names every address asked for and
has more than RENEW_DAYS left; otherwise a new one is signed by the same CA (a new address
from DHCP needs no new trust on the phone). Keys are ECDSA P-256; the files are readable only
by their owner. Everything uses `cryptography`.
"""

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from encoders.errors import InputError

CA_DAYS = 3650  # the CA a phone trusts: ten years
SERVER_DAYS = 397  # Apple and Chrome refuse server certificates valid for longer than 398 days
RENEW_DAYS = 30  # a server certificate with less left than this is replaced at start
LOCAL_SUFFIXES = ("localhost", "local", "lan", "home.arpa", "internal")  # names for a home
PRIVATE_NETWORKS = (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
)  # fmt: skip
CA_NAME = "Lunettes local CA"


@dataclass(frozen=True)
class TlsFiles:
    certfile: Path  # PEM: the server certificate, then the CA's
    keyfile: Path  # PEM: the server's private key
    ca_file: Path | None  # PEM: the local CA that signed it; None for a certificate given
    fingerprint: str  # SHA-256 of the CA's DER certificate, "AB:CD:..." (what a phone shows)
    names: tuple[str, ...]  # the names and addresses the server certificate is for
    left_out: tuple[str, ...] = ()  # this machine's addresses the local CA may not vouch for


def local_certificate(
    folder: Path,
    names: Sequence[str],
    optional: Sequence[str] = (),
    now: datetime.datetime | None = None,
) -> TlsFiles:
    """The CA and a server certificate in `folder`, made when missing, reused when still good.

    `names` (host names and IP addresses) must be in the certificate; `optional` ones (this
    machine's other addresses) join it when the CA may vouch for them, else are left out and
    listed. A new CA may vouch for local names, private addresses and the names it is made
    for. Raises InputError when a required name is outside what the CA may vouch for, or a
    file is damaged."""
    now = now or datetime.datetime.now(datetime.UTC)
    required = tuple(dict.fromkeys(_canonical(name) for name in names))
    extra = tuple(n for n in dict.fromkeys(map(_canonical, optional)) if n not in required)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key, ca_cert = _certificate_authority(folder, (*required, *extra), now)
    permitted = _permitted(ca_cert)
    refused = [name for name in required if not _permits(permitted, name)]
    if refused:
        raise InputError(
            f"the local certificate authority in {folder} may vouch only for local names, "
            f"private addresses and the names it was made for, not {', '.join(refused)}: "
            "remove that folder to make a new one (each phone then trusts the new one), or "
            "give a certificate with --ssl-certfile/--ssl-keyfile"
        )
    left_out = tuple(name for name in extra if not _permits(permitted, name))
    wanted = (*required, *(name for name in extra if name not in left_out))
    server_file, key_file = folder / "server.pem", folder / "server-key.pem"
    kept = _server_names(server_file, key_file, ca_cert, now)
    if kept is None or not set(wanted) <= set(kept):
        kept = tuple(dict.fromkeys((*(kept or ()), *wanted)))  # a name once served stays
        _write_server(server_file, key_file, kept, ca_key, ca_cert, now)
    return TlsFiles(server_file, key_file, folder / "ca.pem", fingerprint(ca_cert), kept, left_out)


def given_certificate(certfile: Path, keyfile: Path) -> TlsFiles:
    """A certificate and key the person gave (--ssl-certfile/--ssl-keyfile), checked to load."""
    for path in (certfile, keyfile):
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    try:
        certificate = x509.load_pem_x509_certificates(certfile.read_bytes())[0]
        serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise InputError(f"{certfile} / {keyfile}: not a PEM certificate and key ({error})")
    return TlsFiles(certfile, keyfile, None, fingerprint(certificate), _names_in(certificate))


def fingerprint(certificate: x509.Certificate) -> str:
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def machine_name() -> str:
    return os.uname().nodename.lower()


def _permitted(ca_cert: x509.Certificate) -> list[x509.GeneralName] | None:
    """The names a CA may vouch for (its name constraints); None: any name."""
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    return list(constraints.permitted_subtrees or [])


def _permits(permitted: list[x509.GeneralName] | None, name: str) -> bool:
    """Whether a name is within the permitted subtrees, as a verifier reads them: an address
    within a network, a host name equal to a name or under it ("local" covers "box.local")."""
    if permitted is None:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return any(
            isinstance(tree, x509.DNSName)
            and (name == tree.value or name.endswith(f".{tree.value}"))
            for tree in permitted
        )
    return any(
        isinstance(tree, x509.IPAddress)
        and address.version == tree.value.version
        and address in tree.value
        for tree in permitted
    )


def _canonical(name: str) -> str:
    """'[::1]' -> '::1', 'MyHost' -> 'myhost': one spelling per name."""
    name = name.strip().strip("[]").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _certificate_authority(folder: Path, names: Sequence[str], now: datetime.datetime):
    """The CA's key and certificate, made on the first call (allowed to vouch for local
    names, private addresses and `names`) and read on every later one."""
    key_file, cert_file = folder / "ca-key.pem", folder / "ca.pem"
    if key_file.exists() and cert_file.exists():
        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except ValueError as error:
            raise InputError(
                f"{folder}: the local CA's files are damaged ({error}); remove the folder to "
                "make a new CA (phones that trusted the old one must trust the new one)"
            ) from None
        return key, certificate
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_NAME} ({machine_name()})"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lunettes"),
        ]
    )
    networks = [ipaddress.ip_network(net) for net in PRIVATE_NETWORKS]
    hosts = [*LOCAL_SUFFIXES, machine_name()]
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            hosts.append(name)
        else:
            networks.append(ipaddress.ip_network(address))  # this one address: a /32 or /128
    permitted = [x509.DNSName(h) for h in dict.fromkeys(hosts)]
    permitted += [  # an address within a private network adds nothing
        x509.IPAddress(n)
        for n in dict.fromkeys(networks)
        if not any(n != o and n.version == o.version and n.subnet_of(o) for o in networks)
    ]
    constraints = x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(constraints, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_file, key)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate


def _server_names(cert_file, key_file, ca_cert, now) -> tuple[str, ...] | None:
    """The names of the server certificate on disk when it can be kept (signed by this CA,
    its key present, more than RENEW_DAYS left); None when a new one is needed."""
    if not (cert_file.exists() and key_file.exists()):
        return None
    try:
        certificate = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        certificate.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return None  # damaged, or from another CA: signed again
    if certificate.not_valid_after_utc - now < datetime.timedelta(days=RENEW_DAYS):
        return None
    return _names_in(certificate)


def _write_server(cert_file, key_file, names, ca_key, ca_cert, now) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    alternative = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_file, key)
    chain = certificate.public_bytes(serialization.Encoding.PEM)
    cert_file.write_bytes(chain + ca_cert.public_bytes(serialization.Encoding.PEM))


def _names_in(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        str(n.value).lower() for n in names if isinstance(n, x509.DNSName | x509.IPAddress)
    )


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, key) -> None:
    """A private key, created readable by its owner only (never world-readable, even briefly)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
