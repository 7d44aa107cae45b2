"""The local certificate authority of `lunettes serve --https`: each address it names verifies
with Python's ssl against the CA (a real TLS handshake on loopback), a restart reuses it, a
new address reuses the CA, and the CA cannot vouch for a name outside the local network."""

import datetime
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app import certificates
from app.certificates import TlsFiles, local_certificate
from app.phone import served_names
from encoders.errors import InputError

NAMES = ["localhost", "127.0.0.1", "::1", "lunettes-box.local", "192.168.1.20", "10.0.0.7"]


def handshake(files, name: str, ca_file=None) -> dict:
    """A TLS handshake on loopback: a server with `files`, a client checking `name`."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(files.certfile, files.keyfile)
    client_side = ssl.create_default_context(cafile=ca_file or files.ca_file)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept():
            connection, _ = listener.accept()
            try:
                with server_side.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refused us: its side raises

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_side.wrap_socket(raw, server_hostname=name) as tls,
        ):
            peer = tls.getpeercert()
        thread.join(timeout=5)
    return peer


def test_every_name_verifies_against_the_ca_it_made(tmp_path):
    files = local_certificate(tmp_path / "https", NAMES)
    assert files.names == tuple(NAMES)
    for name in NAMES:
        peer = handshake(files, name)
        assert ("DNS" if name[0].isalpha() else "IP Address", _as_peer(name)) in peer[
            "subjectAltName"
        ]
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(files, "192.168.1.21")  # an address it was not made for
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(files, "localhost", ca_file=local_certificate(tmp_path / "other", NAMES).ca_file)
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tmp_path / "https" / key).stat().st_mode) == 0o600


def test_a_restart_reuses_the_certificate_and_a_new_address_keeps_the_ca(tmp_path):
    folder = tmp_path / "https"
    first = local_certificate(folder, NAMES[:3])
    served = (folder / "server.pem").read_bytes()
    again = local_certificate(folder, ["127.0.0.1", "localhost"])
    assert again == first and (folder / "server.pem").read_bytes() == served

    moved = local_certificate(folder, [*NAMES[:3], "192.168.7.40"])  # a new DHCP address
    assert moved.fingerprint == first.fingerprint  # the phone's trust still holds
    assert (folder / "server.pem").read_bytes() != served
    assert set(NAMES[:3]) | {"192.168.7.40"} == set(moved.names)
    handshake(moved, "192.168.7.40")
    handshake(moved, "localhost")


def test_a_certificate_near_its_end_is_renewed_by_the_same_ca(tmp_path):
    folder = tmp_path / "https"
    made = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=380)
    old = local_certificate(folder, NAMES[:2], now=made)
    end = _server_certificate(folder).not_valid_after_utc
    assert end - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=20)
    renewed = local_certificate(folder, NAMES[:2])
    assert renewed.fingerprint == old.fingerprint
    assert _server_certificate(folder).not_valid_after_utc > end + datetime.timedelta(days=300)
    handshake(renewed, "localhost")


def test_the_ca_can_vouch_only_for_local_names_and_its_own(tmp_path):
    folder = tmp_path / "https"
    first = local_certificate(folder, ["localhost"], optional=["203.0.113.5"])
    assert first.left_out == () and "203.0.113.5" in first.names  # made for it: allowed
    with pytest.raises(InputError, match="may vouch only for local names.*example.com, 8.8.8.8"):
        local_certificate(folder, ["localhost", "example.com", "8.8.8.8"])
    later = local_certificate(folder, ["localhost"], optional=["198.51.100.7", "10.1.2.3"])
    assert later.left_out == ("198.51.100.7",) and "10.1.2.3" in later.names
    handshake(later, "10.1.2.3")

    ca = x509.load_pem_x509_certificate(first.ca_file.read_bytes())
    constraint = ca.extensions.get_extension_for_class(x509.NameConstraints)
    names = {str(n.value) for n in constraint.value.permitted_subtrees}
    assert {"local", "localhost", "192.168.0.0/16", "10.0.0.0/8", "203.0.113.5/32"} <= names
    assert constraint.critical

    # A certificate the CA's key signs for any other name fails verification all the same.
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), None)
    forged = tmp_path / "forged"
    forged.mkdir()
    now = datetime.datetime.now(datetime.UTC)
    certificates._write_server(
        forged / "server.pem", forged / "server-key.pem", ("example.com",), ca_key, ca, now
    )
    files = TlsFiles(forged / "server.pem", forged / "server-key.pem", first.ca_file, "", ())
    with pytest.raises(ssl.SSLCertVerificationError, match="name constraint|permitted"):
        handshake(files, "example.com")


def test_damaged_ca_files_are_a_clear_error(tmp_path):
    folder = tmp_path / "https"
    local_certificate(folder, ["localhost"])
    (folder / "ca-key.pem").write_text("not a key")
    with pytest.raises(InputError, match="damaged.*remove the folder"):
        local_certificate(folder, ["localhost"])


def test_a_damaged_server_certificate_is_made_again(tmp_path):
    folder = tmp_path / "https"
    first = local_certificate(folder, ["localhost"])
    (folder / "server.pem").write_text("garbage")
    again = local_certificate(folder, ["localhost"])
    assert again.fingerprint == first.fingerprint
    handshake(again, "localhost")


def test_names_served_for_each_host(monkeypatch):
    monkeypatch.setattr(certificates, "machine_name", lambda: "box")
    monkeypatch.setattr("app.phone.machine_name", lambda: "box")
    monkeypatch.setattr("app.phone.machine_addresses", lambda: ["192.168.1.20", "10.8.0.2"])
    assert served_names("127.0.0.1") == (["localhost", "127.0.0.1", "::1"], [])
    assert served_names("192.168.1.20") == (["localhost", "127.0.0.1", "::1", "192.168.1.20"], [])
    assert served_names("0.0.0.0") == (
        ["localhost", "127.0.0.1", "::1"],
        ["box", "box.local", "192.168.1.20", "10.8.0.2"],
    )


def test_the_given_certificate_is_checked(tmp_path):
    made = local_certificate(tmp_path / "https", ["localhost"])
    given = certificates.given_certificate(made.certfile, made.keyfile)
    assert given.ca_file is None and given.names == ("localhost",)
    with pytest.raises(InputError, match="no such file"):
        certificates.given_certificate(tmp_path / "missing.pem", made.keyfile)
    (tmp_path / "bad.pem").write_text("nope")
    with pytest.raises(InputError, match="not a PEM"):
        certificates.given_certificate(tmp_path / "bad.pem", made.keyfile)


def _server_certificate(folder) -> x509.Certificate:
    return x509.load_pem_x509_certificates((folder / "server.pem").read_bytes())[0]


def _as_peer(name: str) -> str:
    return "0:0:0:0:0:0:0:1" if name == "::1" else name
