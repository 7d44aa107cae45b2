"""The gate in front of every /v1 route, at the ASGI level, before anything reads the body.

In order: the API key (401); for the routes that use the model, a place in the queue (429
with Retry-After when it is full); a bounded read of the body (413 above the limit, before
reading it when Content-Length says so; 408 when it is not received in time). Any failure
that escapes the routes becomes a clean OpenAI error (500, logged) instead of a traceback.
"""

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.openai_api.auth import check_api_key
from app.openai_api.config import ApiConfig
from app.openai_api.errors import ApiError, ClientGone, error_bytes, internal_error
from app.openai_api.worker import ModelWorker

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
QUEUED_ROUTES = {  # POST: they use the model or a voice
    "/v1/chat/completions", "/v1/audio/transcriptions", "/v1/audio/translations",
    "/v1/audio/speech",
}  # fmt: skip


class ApiGate:
    def __init__(self, app: ASGIApp, worker: ModelWorker, config: ApiConfig):
        self.app, self.worker, self.config = app, worker, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.guarded(scope, receive, tracked_send)
        except ClientGone:
            pass
        except ApiError as error:
            if not started:
                await send_error(send, error)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), path)
            if not started:
                await send_error(send, internal_error())

    async def guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        check_api_key(headers.get(b"authorization", b""), self.config.api_key)
        if scope.get("method") != "POST" or scope["path"] not in QUEUED_ROUTES:
            await self.app(scope, receive, send)
            return
        admission = self.worker.admission
        if not admission.try_enter():
            seconds = self.worker.retry_after_s()
            raise ApiError(
                429, f"the server is busy ({admission.held} requests are being answered or "
                f"waiting); retry in {seconds} s", "server_busy",
                headers={"Retry-After": str(seconds)},
            )  # fmt: skip
        try:
            body = await self.read_body(headers, receive)
            await self.app(scope, replay(body, receive), send)
        finally:
            admission.leave()

    async def read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.config.max_body_bytes
        declared = headers.get(b"content-length", b"").strip()
        if declared and not declared.isdigit():
            raise ApiError(400, "the Content-Length header is not a number", "invalid_body")
        if declared and int(declared) > limit:
            raise body_too_large(int(declared), limit)
        chunks, size = [], 0
        try:
            with anyio.fail_after(self.config.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise body_too_large(size, limit)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise ApiError(
                408, f"the request body was not received within {self.config.body_timeout_s:g} s",
                "request_timeout",
            ) from None  # fmt: skip


def body_too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413, f"the request body is {size / 2**20:.1f} MiB or more; the limit is "
        f"{limit / 2**20:g} MiB (send smaller photos, or fewer)", "request_too_large",
    )  # fmt: skip


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once, then what the client sends next."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def send_error(send: Send, error: ApiError) -> None:
    body = error_bytes(error)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
