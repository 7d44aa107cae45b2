"""Putting the API on a FastAPI server: routes, gate, error handlers, and the shared worker."""

from fastapi import FastAPI

from app.openai_api.config import ApiConfig
from app.openai_api.errors import install_error_handlers
from app.openai_api.gate import ApiGate
from app.openai_api.routes import build_router
from app.openai_api.worker import ModelWorker
from app.store.database import Store
from fusion.model import LunettesModel


def install_api(
    server: FastAPI,
    model: LunettesModel,
    config: ApiConfig,
    store: Store | None = None,
    replica: dict | None = None,
) -> ModelWorker:
    """Add the /v1 routes, their gate and error handlers to `server` -> the model's worker
    (whose `shared_model()` other surfaces use, so that the model runs one step at a time)."""
    worker = ModelWorker(model, config.max_waiting)
    server.include_router(build_router(model, worker, config, store, replica))
    server.add_middleware(ApiGate, worker=worker, config=config)
    install_error_handlers(server)
    return worker
