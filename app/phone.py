"""Reaching Lunettes from a phone: the addresses it can open, a QR code of one, what to do.

`lunettes serve` prints the QR code in the terminal; the page shows it under "Open on your
phone". QR codes are made by `segno`; this machine's addresses come from `psutil`.
"""

import io
import ipaddress
from dataclasses import dataclass

from app.certificates import TlsFiles, machine_name

ANY_ADDRESS = ("0.0.0.0", "::", "")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CA_PATH = "/lunettes-ca.crt"  # where the page offers the local CA to phones


@dataclass(frozen=True)
class PhoneAccess:
    """How a phone reaches this server, for the terminal and the page."""

    url: str | None  # what another device opens; None when serving this machine only
    https: bool
    fingerprint: str | None = None  # SHA-256 of the local CA a phone trusts, "AB:CD:..."
    offers_ca: bool = False  # the page offers the local CA at CA_PATH


def phone_access(host: str, port: int, tls: TlsFiles | None) -> PhoneAccess:
    scheme = "https" if tls else "http"
    address = phone_address(host, tls.names if tls else None)
    if address is None and tls is not None and tls.ca_file is None and not is_loopback(host):
        named = [n for n in tls.names if n not in LOOPBACK_NAMES and "*" not in n]
        address = named[0] if named else None  # a certificate given for a name: that name
    url = None if address is None else f"{scheme}://{_in_url(address)}:{port}/"
    local_ca = tls is not None and tls.ca_file is not None
    return PhoneAccess(url, tls is not None, tls.fingerprint if tls else None, local_ca)


def served_names(host: str) -> tuple[list[str], list[str]]:
    """The names and addresses this server answers on, for its certificate: (required,
    optional). Loopback and the address served on are required; with --host 0.0.0.0 this
    machine's host name (also .local) and addresses are optional (a certificate authority made
    earlier may not vouch for a new address)."""
    required = list(LOOPBACK_NAMES)
    if host not in ANY_ADDRESS and host not in LOOPBACK_NAMES:
        required.append(host)
    if host not in ANY_ADDRESS:
        return required, []
    return required, [machine_name(), f"{machine_name()}.local", *machine_addresses()]


def phone_address(host: str, certified: tuple[str, ...] | None = None) -> str | None:
    """The address another device on the network opens (one the certificate names, when
    there is one); None on a loopback address or when there is none."""
    if is_loopback(host):
        return None
    if host not in ANY_ADDRESS:
        return host
    addresses = [a for a in machine_addresses() if certified is None or a in certified]
    private = [a for a in addresses if ipaddress.ip_address(a).is_private]
    return (private or addresses or [None])[0]


def machine_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, interface by interface."""
    import psutil

    found = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family.name == "AF_INET" and not entry.address.startswith("127."):
                found.append(entry.address)
    return found


def qr_text(url: str) -> str:
    """The QR code of `url` drawn with block characters, for a terminal."""
    import segno

    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def qr_image_uri(url: str) -> str:
    """The QR code of `url` as a PNG data: URI, for an <img> on the page."""
    import segno

    return segno.make(url, error="m").png_data_uri(scale=6, border=2)


def terminal_lines(access: PhoneAccess, tls: TlsFiles | None) -> list[str]:
    """What `lunettes serve` prints about phones and certificates, after its address."""
    lines = []
    if tls is not None and tls.ca_file is not None:
        lines += [
            f"HTTPS with this machine's own certificate authority, kept in {tls.ca_file.parent}",
            f"  certificate for: {', '.join(tls.names)}",
            f"  CA fingerprint (SHA-256): {tls.fingerprint}",
            (
                "  a phone trusts it once: open the page, 'Open on your phone', download the "
                "certificate and install it as a CA certificate (the page says how, for "
                "Android and iPhone); check that the phone shows this fingerprint"
            ),
        ]
    if tls is not None and tls.left_out:
        lines.append(
            f"  left out: {', '.join(tls.left_out)} (the authority was made before this "
            "address; remove its folder to make a new one, and trust that one again)"
        )
    if access.url is None:
        lines.append(
            "no phone can reach this address; for a phone on your network: lunettes serve "
            "--host 0.0.0.0 --https (with --auth and --api-key)"
        )
        return lines
    if not access.https:
        lines.append(
            "phones give the camera and microphone only to secure pages: add --https for them"
        )
    lines += [f"on your phone, open {access.url} or scan:", qr_text(access.url)]
    return lines


def page_html(access: PhoneAccess) -> str:
    """The page's "Open on your phone" section."""
    if access.url is None:
        return (
            "<p>Lunettes is serving this machine only. To use it from a phone on the same "
            "network, start it with <code>lunettes serve --host 0.0.0.0 --https --auth "
            "USER:PASSWORD</code> and open this section again.</p>"
        )
    parts = [
        (
            f'<p><img class="lunettes-qr" src="{qr_image_uri(access.url)}" '
            f'alt="QR code of {access.url}" width="180" height="180"></p>'
        ),
        f'<p>Scan it, or open <a href="{access.url}">{access.url}</a> on your phone.</p>',
    ]
    if not access.https:
        parts.append(
            "<p>⚠️ Over plain http a phone refuses the camera and the microphone: restart "
            "with <code>--https</code>.</p>"
        )
    if access.offers_ca:
        parts.append(
            "<p><b>The first time</b>, trust this computer's certificate authority: "
            f'<a href="{CA_PATH}" download>download it</a> on the phone, then</p><ul>'
            "<li>Android: Settings › Security › More security settings › Encryption &amp; "
            "credentials › Install a certificate › CA certificate, and pick the file;</li>"
            "<li>iPhone: open the link in Safari and allow the download, then Settings › "
            "Profile Downloaded › Install, then Settings › General › About › Certificate "
            "Trust Settings › turn on “Lunettes local CA”.</li></ul>"
            f"<p>Its SHA-256 fingerprint, to compare: <code>{access.fingerprint}</code>. It "
            "can vouch only for local names and private addresses.</p>"
        )
    parts.append(
        "<p>To open Lunettes full screen like an app: the browser's menu › "
        "<i>Add to Home screen</i> (Install app).</p>"
    )
    return "\n".join(parts)


def _in_url(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (localhost, 127.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
