"""Serving over HTTPS for phones (tiny model, real server on loopback): the official `openai`
client over TLS with the CA `--https` made, the CA offered to phones, the installable app's
manifest and icon, QR codes that decode to the address, what `serve` prints and warns."""

import io
import ssl

import cv2
import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from app import cli
from app.certificates import TlsFiles, local_certificate
from app.openai_api.config import ApiConfig
from app.phone import CA_PATH, PhoneAccess, page_html, phone_access, qr_text, terminal_lines
from app.server import exposure_warnings
from encoders.errors import InputError
from tests.web_support import LiveServer

PHONE_URL = "https://192.168.1.20:7860/"


@pytest.fixture(scope="module")
def server(model, tls):
    phone = PhoneAccess(PHONE_URL, https=True, fingerprint=tls.fingerprint, offers_ca=True)
    with LiveServer(model, tls, phone) as live:
        yield live


@pytest.fixture
def trusting(tls):
    """An HTTP client that trusts the local CA, and only it."""
    with httpx.Client(verify=ssl.create_default_context(cafile=tls.ca_file)) as client:
        yield client


def test_the_openai_client_talks_to_the_api_over_https(server, trusting):
    assert server.url.startswith("https://127.0.0.1:")
    with openai.OpenAI(
        base_url=f"{server.url}v1", api_key="none", http_client=trusting, max_retries=0
    ) as client:
        assert [m.id for m in client.models.list().data]
        answer = client.chat.completions.create(
            model="lunettes", messages=[{"role": "user", "content": "Hello?"}], max_tokens=4
        )
        assert answer.choices[0].message.content
        streamed = client.chat.completions.create(
            model="lunettes",
            messages=[{"role": "user", "content": "Hello?"}],
            max_tokens=4,
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)


def test_a_client_that_does_not_trust_the_ca_is_refused(server):
    with httpx.Client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
        client.get(f"{server.url}v1/models")
    with httpx.Client() as client, pytest.raises(httpx.HTTPError):
        client.get(server.url.replace("https", "http") + "v1/models")  # no plain http


def test_the_page_offers_the_ca_and_installs_as_an_app(server, trusting, tls):
    ca = trusting.get(f"{server.url}{CA_PATH.lstrip('/')}")
    assert ca.status_code == 200 and ca.content == tls.ca_file.read_bytes()
    assert ca.headers["content-type"] == "application/x-x509-ca-cert"
    assert "lunettes-ca.crt" in ca.headers["content-disposition"]
    assert not trusting.get(f"{server.url}ca-key.pem").content.startswith(b"-----BEGIN")

    manifest = trusting.get(f"{server.url}manifest.json").json()
    assert manifest["name"] == "Lunettes" and manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for size in (192, 512, 180):
        icon = Image.open(io.BytesIO(trusting.get(f"{server.url}pwa_icon/{size}").content))
        assert icon.size == (size, size)
    assert 'rel="manifest"' in trusting.get(server.url).text  # the page's own tags: in Chromium


def test_the_qr_codes_decode_to_the_address():
    access = PhoneAccess(PHONE_URL, https=True, fingerprint="AB:CD", offers_ca=True)
    html = page_html(access)
    start = html.index("data:image/png;base64,")
    uri = html[start : html.index('"', start)]
    import base64

    png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("L")
    assert decode_qr(np.array(png)) == PHONE_URL
    assert f'href="{CA_PATH}"' in html and "AB:CD" in html and "Add to Home screen" in html
    assert decode_qr(terminal_image(qr_text(PHONE_URL))) == PHONE_URL
    plain = page_html(PhoneAccess("http://192.168.1.20:7860/", https=False))
    assert "refuses the camera" in plain and CA_PATH not in plain
    assert "--host 0.0.0.0 --https" in page_html(PhoneAccess(None, https=False))


def test_what_serve_prints_and_warns(tmp_path, monkeypatch):
    addresses = ["203.0.113.9", "172.17.0.3", "192.168.1.20"]
    monkeypatch.setattr("app.phone.machine_addresses", lambda: addresses)
    local_certificate(tmp_path, ["localhost"])  # the CA, made before the public address
    tls = local_certificate(tmp_path, ["localhost"], optional=addresses)
    assert tls.left_out == ("203.0.113.9",)
    access = phone_access("0.0.0.0", 7860, tls)
    assert access.url == "https://172.17.0.3:7860/" and access.offers_ca
    printed = "\n".join(terminal_lines(access, tls))
    assert tls.fingerprint in printed and "https://172.17.0.3:7860/" in printed
    assert "left out: 203.0.113.9" in printed
    assert decode_qr(terminal_image(printed.split("scan:\n", 1)[1])) == access.url
    assert "no phone can reach" in "\n".join(terminal_lines(phone_access("127.0.0.1", 1, tls), tls))

    warnings = exposure_warnings("0.0.0.0", ApiConfig(), None, access)
    assert "anyone who can reach https://172.17.0.3:7860/ can use the API" in warnings[0]
    assert "camera and microphone" in warnings[1]
    assert "does not choose who may connect" in warnings[2]
    assert exposure_warnings("0.0.0.0", ApiConfig(api_key="k"), ("a", "b"), access) == []
    given = TlsFiles(tls.certfile, tls.keyfile, None, "", ("localhost", "lunettes.example.org"))
    assert phone_access("0.0.0.0", 443, given).url == "https://lunettes.example.org:443/"
    assert (
        exposure_warnings("127.0.0.1", ApiConfig(), None, phone_access("127.0.0.1", 1, tls)) == []
    )


def test_serve_makes_or_takes_a_certificate(tmp_path, tls):
    parse = cli.build_parser().parse_args
    made = cli.tls_files(parse(["serve", "--https", "--data-dir", str(tmp_path)]))
    assert made.ca_file == tmp_path / "https" / "ca.pem" and "127.0.0.1" in made.names
    again = cli.tls_files(parse(["serve", "--https", "--data-dir", str(tmp_path)]))
    assert again == made  # a restart: the same certificate
    given = cli.tls_files(
        parse(["serve", "--ssl-certfile", str(tls.certfile), "--ssl-keyfile", str(tls.keyfile)])
    )
    assert given.certfile == tls.certfile and given.ca_file is None
    with pytest.raises(InputError, match="go together"):
        cli.tls_files(parse(["serve", "--ssl-certfile", str(tls.certfile)]))
    assert cli.tls_files(parse(["serve"])) is None
    with pytest.raises(InputError, match="may vouch only for local names.*not 8.8.8.8"):
        cli.tls_files(parse(["serve", "--https", "--host", "8.8.8.8", "--data-dir", str(tmp_path)]))


def decode_qr(image: np.ndarray) -> str:
    """The text of the QR code in a grey image (OpenCV's detector, at 8 pixels a module)."""
    big = cv2.resize(image, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    big = cv2.copyMakeBorder(big, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(big)
    return text


def terminal_image(text: str) -> np.ndarray:
    """A terminal QR code (light modules drawn as blocks, two rows a line) as a grey image."""
    halves = {"█": (255, 255), "▀": (255, 0), "▄": (0, 255), " ": (0, 0)}
    lines = [line for line in text.splitlines() if line and set(line) <= set(halves)]
    rows = []
    for line in lines:
        rows.append([halves[c][0] for c in line])
        rows.append([halves[c][1] for c in line])
    return np.array(rows, dtype=np.uint8)
