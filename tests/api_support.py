"""Helpers for the API tests (tests/test_api_*.py): media as the API takes them, the API on a
bare FastAPI app, a real server on a free loopback port, and a model that answers slowly.
"""

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self

import numpy as np
import soundfile
import uvicorn
from fastapi import FastAPI

from app.openai_api.config import ApiConfig
from app.openai_api.install import install_api
from fusion.model import Chunk
from tests.tiny import photo, tone

TEST_LIMITS = {"max_tokens": 32, "default_max_tokens": 6}  # the tiny LM never stops by itself


def png_bytes(seed: int = 0, width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    photo(width, height, seed).save(buffer, "PNG")
    return buffer.getvalue()


def png_data_url(seed: int = 0, width: int = 64, height: int = 48) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(seed, width, height)).decode()


def wav_bytes(
    seconds: float = 1.0, frequency: float = 440.0, samples: np.ndarray | None = None
) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(
        buffer, tone(seconds, frequency) if samples is None else samples, 16_000, format="WAV"
    )
    return buffer.getvalue()


def wav_base64(seconds: float = 1.0, frequency: float = 440.0) -> str:
    return base64.b64encode(wav_bytes(seconds, frequency)).decode()


def image_part(url: str | None = None) -> dict:
    return {"type": "image_url", "image_url": {"url": png_data_url() if url is None else url}}


def audio_part(data: str | None = None, format: str = "wav") -> dict:
    data = wav_base64() if data is None else data
    return {"type": "input_audio", "input_audio": {"data": data, "format": format}}


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def chat(*parts: dict | str, **fields) -> dict:
    """A chat completion request with one user message made of `parts`."""
    content = parts[0] if len(parts) == 1 and isinstance(parts[0], str) else list(parts)
    return {"model": "lunettes", "messages": [{"role": "user", "content": content}], **fields}


def api_app(model, store=None, **config) -> FastAPI:
    """The API alone (no web app) on a FastAPI app, with TEST_LIMITS unless overridden; with a
    store (app/store), memory works."""
    app = FastAPI(openapi_url="/v1/openapi.json")
    app.state.worker = install_api(app, model, ApiConfig(**{**TEST_LIMITS, **config}), store)
    return app


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 at a free port, in a thread; a context manager.
    With `tls` (app.certificates.TlsFiles) it serves HTTPS."""

    def __init__(self, app, tls=None):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            timeout_graceful_shutdown=5,
            ssl_certfile=tls.certfile if tls else None,
            ssl_keyfile=tls.keyfile if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]})

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


class SlowModel:
    """The model with a pause before each piece of the answer; counts what it did.

    `closed` tells whether the answer's generator was closed before its end (a client left).
    """

    def __init__(self, model, pause_s: float = 0.05):
        self._model, self.pause_s = model, pause_s
        self.chunks = self.started = self.closed = self.finished = 0

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def stream(self, messages, options=None, owner: str = "") -> Iterator:
        self.started += 1
        ended = False
        try:
            for event in self._model.stream(messages, options, owner):
                if isinstance(event, Chunk):
                    time.sleep(self.pause_s)
                    self.chunks += 1
                yield event
            ended = True
            self.finished += 1
        finally:
            if not ended:
                self.closed += 1


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
