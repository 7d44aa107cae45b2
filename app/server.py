"""The HTTP server: the web app (Gradio) mounted on a FastAPI app, on one port.

Further HTTP surfaces (an API) are added as routers on the same FastAPI app here.
"""

import gradio as gr
from fastapi import FastAPI

from app.web import build_app
from fusion.model import LunettesModel


def build_server(model: LunettesModel) -> FastAPI:
    server = FastAPI(title="Lunettes", docs_url=None, redoc_url=None)
    blocks = build_app(model).queue(default_concurrency_limit=1)
    return gr.mount_gradio_app(server, blocks, path="/")


def serve(model: LunettesModel, host: str, port: int) -> None:
    import uvicorn

    print(f"Lunettes is serving on http://{host}:{port}", flush=True)
    uvicorn.run(build_server(model), host=host, port=port, log_level="warning")
