"""The HTTP server: the OpenAI-compatible API (/v1) and the web app (Gradio, at /), one port.

The API's gate and the web app's queue share the model through one worker: a web chat and
an API request never compute at the same time.
"""

import ipaddress
import sys

import gradio as gr
from fastapi import FastAPI

from app.openai_api.config import ApiConfig
from app.openai_api.install import install_api
from app.web import build_app
from fusion.model import LunettesModel

DEFAULT_API = ApiConfig()  # frozen: safe to share


def build_server(
    model: LunettesModel,
    api: ApiConfig = DEFAULT_API,
    ui_login: tuple[str, str] | None = None,
) -> FastAPI:
    server = FastAPI(
        title="Lunettes", docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json"
    )
    worker = install_api(server, model, api)
    blocks = build_app(worker.shared_model()).queue(default_concurrency_limit=1)
    return gr.mount_gradio_app(
        server,
        blocks,
        path="/",
        auth=ui_login,
        max_file_size=api.max_body_bytes,
        run_history=False,  # nothing a person sent is kept or offered for upload
        footer_links=[],
    )


def serve(
    model: LunettesModel,
    host: str,
    port: int,
    api: ApiConfig = DEFAULT_API,
    ui_login: tuple[str, str] | None = None,
) -> None:
    import uvicorn

    for warning in exposure_warnings(host, api, ui_login):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    print(f"Lunettes is serving on http://{host}:{port} (API: http://{host}:{port}/v1)", flush=True)
    uvicorn.run(build_server(model, api, ui_login), host=host, port=port, log_level="warning")


def exposure_warnings(host: str, api: ApiConfig, ui_login: tuple[str, str] | None) -> list[str]:
    """What is open to the network when serving on a non-loopback address."""
    if is_loopback(host):
        return []
    warnings = []
    if api.api_key is None:
        warnings.append(
            f"serving on {host} without an API key: anyone who can reach this address can use "
            "the API (set --api-key or LUNETTES_API_KEY)"
        )
    if ui_login is None:
        warnings.append(
            f"serving on {host} without a login for the web app: anyone who can reach this "
            "address can use it (set --auth USER:PASSWORD or LUNETTES_AUTH)"
        )
    if api.allow_remote_media:
        warnings.append(
            "--allow-remote-media: clients can make this machine fetch any http(s) URL, "
            "including addresses on your local network"
        )
    return warnings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
