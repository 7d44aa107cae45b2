"""One replica: its own model, decode scheduler and server (the single-process one, unchanged).

The replica serves app.server's FastAPI app with uvicorn on a loopback port of its own
machine; `http` replays a request forwarded by the front (front.py) against it and streams
the response back, start first. Being the very same server, a replica answers exactly as
`lunettes serve` does: its gate, limits, 429s, web app and store.

Ray keeps traffic off a replica until its constructor returns (model loaded, server up),
and `check_health` fails when its server has stopped, so that Ray replaces it. (The decode
scheduler's thread starts with each answer and stops when idle: nothing to check there.)
"""

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

ACCEPTED = "accepted"  # the first item of every answer: this replica has the request
REPLICA_HEADER = "x-lunettes-replica"  # "<id> <pid>" on every response a replica gives
HOP_BY_HOP = {  # a connection's own headers: not forwarded either way
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length",
}  # fmt: skip
SET_BY_FRONT = {"date", "server"}  # the front's own server writes these
START_TIMEOUT_S = 60.0  # the server's own start (the model is loaded before)


@dataclass(frozen=True)
class ReplicaSettings:
    """What every replica builds its server from; pickled to each replica (by Ray)."""

    load_model: Callable  # () -> LunettesModel, run in the replica
    api: object  # app.openai_api.config.ApiConfig
    logins: list[tuple[str, str]] | None = None  # the web app's logins
    open_store: Callable | None = None  # () -> Store in the replica; None: no history
    threads: int = 1  # torch threads: the CPUs the replica was given


class Replica:
    """A Ray Serve deployment class (launch.py wraps it with serve.deployment)."""

    def __init__(self, settings: ReplicaSettings):
        import torch
        import uvicorn
        from ray import serve

        from app.cli import quiet_libraries
        from app.server import build_server
        from app.warm_up import start_warm_up

        quiet_libraries()  # no weight-loading progress bars in the terminal
        torch.set_num_threads(max(1, settings.threads))
        self.identity = {
            "id": serve.get_replica_context().replica_id.unique_id,
            "pid": os.getpid(),
        }
        model = settings.load_model()
        store = settings.open_store() if settings.open_store else None
        app = build_server(model, settings.api, settings.logins, store=store, replica=self.identity)
        start_warm_up(model)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listener]}, name="replica-http", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the replica's server did not start")
            time.sleep(0.02)
        self.client = None  # an httpx.AsyncClient, made in the replica's event loop

    async def http(self, request: dict, session: str | None = None) -> AsyncIterator:
        """request: {method, path, query, headers: [(name, value)], body} -> yields ACCEPTED
        at once, {"status", "headers"} when the response starts, then its body's bytes.
        session: the web page's, which chose this replica (router.py); not used here."""
        import httpx

        yield ACCEPTED
        if self.client is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            self.client = httpx.AsyncClient(timeout=None, limits=limits)
        url = f"http://127.0.0.1:{self.port}{request['path']}"
        if request["query"]:
            url += "?" + request["query"]
        headers = [(k, v) for k, v in request["headers"] if k.lower() not in HOP_BY_HOP]
        outgoing = self.client.build_request(
            request["method"], url, headers=headers, content=request["body"]
        )
        response = await self.client.send(outgoing, stream=True)
        try:
            dropped = HOP_BY_HOP | SET_BY_FRONT
            kept = [(k, v) for k, v in response.headers.raw if k.decode().lower() not in dropped]
            named = f"{self.identity['id']} {self.identity['pid']}"
            kept.append((REPLICA_HEADER.encode(), named.encode()))
            yield {"status": response.status_code, "headers": kept}
            async for chunk in response.aiter_raw():
                yield chunk
        finally:  # the front's client left (Ray cancels this): the server sees it leave too
            await response.aclose()

    def check_health(self) -> None:
        """Called by Ray every few seconds; an exception marks the replica unhealthy."""
        if not self.thread.is_alive() or self.server.should_exit:
            raise RuntimeError("the replica's HTTP server has stopped")
