"""A web page's event stream (Gradio's /gradio_api/queue/data) stays open between its events.

Gradio ends a page's stream (a `close_stream` message, then the end of the response) once
the last of the page's events has completed. The page opens a new stream with its next event
only if it has already read that close when the event is accepted (the answer to its
`queue/join`). When the join's answer arrives first (the close is still on its way, as it
often is behind app/replicas' front, two Ray hops on a busy machine), the page counts on the
stream that is closing, then drops it: the event runs, but its updates wait on the server
and are never read, and the question the person sent never appears.

So the close is taken out: where Gradio would end the stream after an event, the response
goes on with Gradio's own stream for the same session, asked again, and carries the page's
next events. It ends when the page leaves (Gradio sees the disconnect), with any end that is
not that close, or when `stopping` is set (the server stops: app/server.py's serve, at
Ctrl+C; an open page would otherwise hold the server up for as long as it stays open).

Plain ASGI (as app/server.py's BrowserCookie): streams pass through unbuffered.
"""

import asyncio
import contextlib
from dataclasses import dataclass

STREAM_PATH = "/gradio_api/queue/data"
CLOSE = b'"msg":"close_stream"'  # Gradio writes its messages with orjson: no spaces
SERVER_STOPPED = b'"msg":"server_stopped"'
END = {"type": "http.response.body", "body": b"", "more_body": False}


@dataclass
class _Run:
    """One run of Gradio's stream handler for the page's one response."""

    first: bool  # its response start goes to the page (later runs' do not)
    started: bool = False  # that start was sent
    closed: bool = False  # it ended with Gradio's close: the stream goes on with another run
    stopped: bool = False  # it said the server stopped: its close ends the stream
    refused: bool = False  # a later run answered other than 200 (the session is gone)


class KeptEventStream:
    def __init__(self, app, stopping: asyncio.Event):
        self.app, self.stopping = app, stopping

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(STREAM_PATH):
            await self.app(scope, receive, send)
            return
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            await self._keep(scope, receive, send, stopped)
        finally:
            stopped.cancel()

    async def _keep(self, scope, receive, send, stopped: asyncio.Future) -> None:
        first = True
        while True:
            run = _Run(first)

            async def relay(message, run=run) -> None:
                if message["type"] == "http.response.start":
                    run.refused = not run.first and message["status"] != 200
                    if run.first:
                        await send(message)
                        run.started = True
                    return
                if run.refused:
                    return  # a later run refused the session (it is gone): the stream ends
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                body = message.get("body", b"")
                run.stopped |= SERVER_STOPPED in body
                if CLOSE in body and not run.stopped:
                    run.closed = True
                    events = body.split(b"\n\n")  # server-sent events end with a blank line
                    body = b"".join(e + b"\n\n" for e in events if e and CLOSE not in e)
                if run.closed and not message.get("more_body", False):
                    if body:
                        await send({**message, "body": body, "more_body": True})
                    return  # the end of this run's response: the stream goes on instead
                await send({**message, "body": body})

            gradio = asyncio.ensure_future(self.app(scope, receive, relay))
            try:
                await asyncio.wait([gradio, stopped], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # this request was cancelled: so is Gradio's run
                gradio.cancel()
                raise
            if not gradio.done():  # the server stops: the page's stream ends here
                gradio.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gradio
                if not first or run.started:
                    await send(END)
                return
            gradio.result()  # Gradio's own error, if it raised one
            if run.refused:
                await send(END)
            if not run.closed or run.refused:
                return
            first = False
