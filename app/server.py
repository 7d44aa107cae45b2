"""The HTTP(S) server: the OpenAI-compatible API (/v1) and the web app (Gradio, at /), one port.

The API's gate and the web app's queue share the model through one worker, whose decode
scheduler batches the answers of both (fusion/scheduler.py). With TLS files (certificates.py) both are
served over HTTPS on the same port; the page is installable as an app (Gradio's web app
manifest, with the Lunettes icon) and offers the local CA to phones at phone.CA_PATH.
"""

import asyncio
import contextlib
import sys
from http.cookies import SimpleCookie
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.datastructures import MutableHeaders

from app.certificates import TlsFiles
from app.event_stream import KeptEventStream
from app.listening import Listeners, install_listening
from app.openai_api.config import ApiConfig
from app.openai_api.install import install_api
from app.phone import CA_PATH, PhoneAccess, is_loopback, phone_access, terminal_lines
from app.store.database import Store
from app.warm_up import start_warm_up
from app.web import build_app
from app.web_history import BROWSER_COOKIE, BROWSER_COOKIE_DAYS, new_browser_id
from app.web_partial import PartialTranscripts
from fusion.model import LunettesModel

DEFAULT_API = ApiConfig()  # frozen: safe to share
ICON = Path(__file__).resolve().parent / "static" / "icon.png"  # 512 x 512, the home-screen icon
NO_PHONE = PhoneAccess(url=None, https=False)
WEB_CONCURRENCY = 8  # web events (answers, camera frames, ...) handled at once
WEB_QUEUE = 64  # web events waiting beyond those
STOP_GRACE_S = 3  # after Ctrl+C, for requests in flight (open pages' streams end at once)
APP_HEAD = """
<meta name="theme-color" content="#1e3a8a">
<meta name="apple-mobile-web-app-capable" content="yes">
<meta name="mobile-web-app-capable" content="yes">
<meta name="apple-mobile-web-app-title" content="Lunettes">
<link rel="apple-touch-icon" href="/pwa_icon/180">
"""  # the phone's home-screen name, icon and bar colour (iPhone reads only these tags)


def build_server(
    model: LunettesModel,
    api: ApiConfig = DEFAULT_API,
    ui_login: list[tuple[str, str]] | tuple[str, str] | None = None,
    phone: PhoneAccess = NO_PHONE,
    tls: TlsFiles | None = None,
    store: Store | None = None,
    replica: dict | None = None,
) -> FastAPI:
    """store: where the web app keeps conversations and memory (None: nothing is kept).
    replica: {"id", "pid"} of the Ray Serve replica this server is (app/replicas), named in
    each API answer; None when it is the only one."""
    server = FastAPI(
        title="Lunettes", docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json"
    )
    if store is not None:
        server.add_middleware(BrowserCookie, secure=tls is not None)
    server.state.stopping = asyncio.Event()  # set by end_page_streams
    server.add_middleware(KeptEventStream, stopping=server.state.stopping)
    worker = install_api(server, model, api, store, replica)
    if tls is not None and tls.ca_file is not None:
        ca_file = tls.ca_file  # public: what a phone installs to trust this server

        @server.get(CA_PATH, include_in_schema=False)
        def local_ca() -> FileResponse:
            return FileResponse(
                ca_file, media_type="application/x-x509-ca-cert", filename="lunettes-ca.crt"
            )

    # answers run together in the scheduler's batch; past WEB_QUEUE waiting events the page
    # says the queue is full (back-pressure) instead of growing without bound
    shared = worker.shared_model()
    listeners = Listeners(PartialTranscripts(shared))
    install_listening(server, listeners)  # before the web app takes every other path
    blocks = build_app(shared, listeners, phone, store).queue(
        default_concurrency_limit=WEB_CONCURRENCY, max_size=WEB_QUEUE
    )
    return gr.mount_gradio_app(
        server,
        blocks,
        path="/",
        auth=ui_login,
        max_file_size=api.max_body_bytes,
        run_history=False,  # nothing a person sent is kept or offered for upload
        footer_links=[],
        pwa=True,  # "Add to Home screen" opens it full screen, like an app
        favicon_path=ICON,
        head=APP_HEAD,
    )


class BrowserCookie:
    """Gives each browser a long-lived random id (a cookie) with its first page: whose
    conversations and memory are whose when there is no login (app/web_history.py). Only
    the page sets it: a set on each of its first requests (icons, config) could race and
    hand the page's events a different id than the one it ends up with.

    Plain ASGI (not BaseHTTPMiddleware, which buffers and breaks the web app's streams)."""

    def __init__(self, app, secure: bool):
        self.app, self.secure = app, secure

    async def __call__(self, scope, receive, send) -> None:
        page = scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/"
        if not page or _has_cookie(scope):  # only the page: its other requests carry it
            await self.app(scope, receive, send)
            return
        cookie = SimpleCookie()
        cookie[BROWSER_COOKIE] = new_browser_id()
        morsel = cookie[BROWSER_COOKIE]
        morsel.update({"max-age": BROWSER_COOKIE_DAYS * 86400, "path": "/", "httponly": True})
        morsel["samesite"] = "Lax"
        morsel["secure"] = self.secure
        header = morsel.OutputString()

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", header)
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _has_cookie(scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"cookie" and f"{BROWSER_COOKIE}=".encode() in value:
            return True
    return False


def serve(
    model: LunettesModel,
    host: str,
    port: int,
    api: ApiConfig = DEFAULT_API,
    ui_login: list[tuple[str, str]] | tuple[str, str] | None = None,
    tls: TlsFiles | None = None,
    store: Store | None = None,
) -> None:
    access = phone_access(host, port, tls)
    for warning in exposure_warnings(host, api, ui_login, access):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    scheme = "https" if tls else "http"
    listening = [
        f"Lunettes is serving on {scheme}://{host}:{port} (API: {scheme}://{host}:{port}/v1)",
        *terminal_lines(access, tls),
    ]
    server = build_server(model, api, ui_login, access, tls, store)
    warming = start_warm_up(model)
    config = uvicorn.Config(
        server,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=tls.certfile if tls else None,
        ssl_keyfile=tls.keyfile if tls else None,
        timeout_graceful_shutdown=STOP_GRACE_S,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises Ctrl+C again once stopped
        Serving(config, listening).run()
    warming.join()  # a daemon thread inside torch as the process ends aborts it ("terminate")


class Serving(uvicorn.Server):
    """uvicorn's server, which says where it serves once it listens (not before: a page
    opened then would not load), and whose stop (Ctrl+C, SIGTERM) first ends the open
    pages' streams: uvicorn waits for every response in flight, a page's until it closes."""

    def __init__(self, config: uvicorn.Config, listening: list[str]):
        super().__init__(config)
        self.listening = listening

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            print("\n".join(self.listening), flush=True)

    async def shutdown(self, sockets=None) -> None:
        end_page_streams(self.config.app)
        await super().shutdown(sockets)


def end_page_streams(server: FastAPI) -> None:
    """End each open page's event stream (event_stream.py) and Gradio's heartbeat, as
    Gradio's own launch does when it stops (Blocks._end_streaming_responses); run in the
    server's event loop. The pages say they lost the connection."""
    server.state.stopping.set()
    for route in server.routes:  # the web app, mounted at /
        heartbeats_end = getattr(getattr(route, "app", None), "stop_event", None)
        if heartbeats_end is not None:
            heartbeats_end.set()


def exposure_warnings(
    host: str,
    api: ApiConfig,
    ui_login: list[tuple[str, str]] | tuple[str, str] | None,
    access: PhoneAccess = NO_PHONE,
) -> list[str]:
    """What is open to the network when serving on a non-loopback address, plainly."""
    if is_loopback(host):
        return []
    where = access.url or f"{host}"
    warnings = []
    if api.api_key is None:
        warnings.append(
            f"serving on {host} without an API key: anyone who can reach {where} can use "
            "the API: ask questions, send photos and recordings (set --api-key or "
            "LUNETTES_API_KEY)"
        )
    if ui_login is None:
        warnings.append(
            f"serving on {host} without a login for the web app: anyone who can reach "
            f"{where} can use it, its camera and microphone questions included (set --auth "
            "USER:PASSWORD or LUNETTES_AUTH)"
        )
    if access.https and warnings:
        warnings.append("--https encrypts the connection; it does not choose who may connect")
    if api.allow_remote_media:
        warnings.append(
            "--allow-remote-media: clients can make this machine fetch any http(s) URL, "
            "including addresses on your local network"
        )
    return warnings
