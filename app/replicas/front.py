"""The one HTTP ingress in front of the replicas: every path, every method, forwarded.

Ray Serve's HTTP proxy hands each request to the front, which reads its body (bounded, as
the API's gate would), names the web page's session (a cookie it sets) and calls a replica
(router.py chooses which). The replica answers "accepted" at once, then the response's start
and its body as it streams (replica.py); the front streams them on unchanged.

Faults (a replica killed, or Ray replacing it):
- before the response started, the request is sent again to another replica (nothing was
  said to the client yet), up to ATTEMPTS times; then 503 with Retry-After;
- no replica accepting within ACCEPT_TIMEOUT_S (all of them down or starting): 503;
- after it started, a server-sent event stream (the API's streamed answers) ends with an
  OpenAI-style error event, which clients raise on; any other body is cut off (the
  connection closes early, which an HTTP client reports as an incomplete response).
"""

import asyncio
import json
import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.replicas.replica import ACCEPTED

log = logging.getLogger(__name__)

SESSION_COOKIE = "lunettes_replica"  # a web page's session: which replica holds its state
SESSION_KWARG = "session"  # the keyword a call names the session in, for router.py
ATTEMPTS = 3  # replicas tried for one request before a 503
ACCEPT_TIMEOUT_S = 30.0  # for a replica to take a request (none alive: Ray is replacing them)
RETRY_AFTER_S = 5  # what a 503 tells the client: about one replica's replacement time
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Unavailable(Exception):
    """No replica could answer this request."""


def build_front(max_body_bytes: int, body_timeout_s: float, secure_cookie: bool):
    """The front's deployment class, with its FastAPI app (built here, not at import)."""
    from ray import serve

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @serve.ingress(app)
    class Front:
        def __init__(self, replicas):
            self.replicas = replicas.options(stream=True)

        @app.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
        async def forward(self, request: Request, path: str) -> Response:
            limits = (max_body_bytes, body_timeout_s)
            return await forward(self.replicas, request, limits, secure_cookie)

    return Front


async def forward(replicas, request: Request, limits: tuple[int, float], secure_cookie: bool):
    """limits: (the largest body in bytes, seconds to receive it), as the API's gate has."""
    max_body_bytes, body_timeout_s = limits
    path = request.url.path
    api = path == "/v1" or path.startswith("/v1/")
    session = None if api else request.cookies.get(SESSION_COOKIE)
    new_session = not api and not session
    if new_session:
        session = secrets.token_urlsafe(16)
    try:
        body = await asyncio.wait_for(read_body(request, max_body_bytes), body_timeout_s)
    except TimeoutError:
        return error_response(
            408, f"the request body was not received within {body_timeout_s:g} s",
            "request_timeout",
        )  # fmt: skip
    if body is None:
        return error_response(
            413, f"the request body is over {max_body_bytes / 2**20:g} MiB", "request_too_large"
        )
    call = {
        "method": request.method,
        "path": path,
        "query": request.url.query,
        "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        "body": body,
    }
    try:
        stream, start = await first_answer(replicas, call, session)
    except Unavailable as error:
        return error_response(
            503, f"no replica could answer ({error}); retry in {RETRY_AFTER_S} s",
            "replica_unavailable", {"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    headers = list(start["headers"])
    if new_session:
        cookie = f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax"
        headers.append((b"set-cookie", (cookie + ("; Secure" if secure_cookie else "")).encode()))
    events = any(
        k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers
    )
    response = StreamingResponse(rest(stream, events), status_code=start["status"])
    response.raw_headers = headers
    return response


async def first_answer(replicas, call: dict, session: str | None):
    """-> (the replica's stream, the response's start), from the first replica that gets that
    far; one that dies before is replaced by another (the request is sent again)."""
    reason = "none was ready"
    for attempt in range(ATTEMPTS):
        stream = replicas.http.remote(call, **{SESSION_KWARG: session})
        try:
            accepted = await asyncio.wait_for(stream.__anext__(), ACCEPT_TIMEOUT_S)
            if accepted != ACCEPTED:
                raise RuntimeError(f"unexpected first item {accepted!r}")
            return stream, await stream.__anext__()
        except TimeoutError:
            stream.cancel()
            raise Unavailable(f"none took the request within {ACCEPT_TIMEOUT_S:g} s") from None
        except asyncio.CancelledError:  # the client left while it waited
            stream.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - a replica lost (actor died, its server gone)
            stream.cancel()
            reason = f"{type(error).__name__}"
            log.warning("a replica failed before answering (%s): sent to another", reason)
            await asyncio.sleep(0.2 * (attempt + 1))  # Ray marks the dead replica meanwhile
    raise Unavailable(f"{ATTEMPTS} replicas failed: {reason}")


async def rest(stream, events: bool):
    """The body from the replica, chunk by chunk; see the module's docstring for faults."""
    finished = False
    try:
        async for chunk in stream:
            yield chunk
        finished = True
    except Exception as error:
        log.warning("a replica failed while answering (%s)", type(error).__name__)
        if not events:
            raise
        lost = {
            "message": "the replica answering this was lost; send the request again",
            "type": "server_error", "code": "replica_lost",
        }  # fmt: skip
        yield f"data: {json.dumps({'error': lost})}\n\n".encode()
        finished = True
    finally:
        if not finished:  # the client left: the replica stops answering
            stream.cancel()


async def read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None when it is over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, message: str, code: str, headers: dict | None = None):
    """In the API's error shape (OpenAI's), which the web page shows as text too."""
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=headers)
