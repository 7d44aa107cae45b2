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
next events. It ends when the page leaves (Gradio sees the disconnect), when the server
stops, or with any end that is not that close.

Plain ASGI (as app/server.py's BrowserCookie): streams pass through unbuffered.
"""

STREAM_PATH = "/gradio_api/queue/data"
CLOSE = b'"msg":"close_stream"'  # Gradio writes its messages with orjson: no spaces
SERVER_STOPPED = b'"msg":"server_stopped"'
END = {"type": "http.response.body", "body": b"", "more_body": False}


class KeptEventStream:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(STREAM_PATH):
            await self.app(scope, receive, send)
            return
        first = True  # only the first run's response start goes to the page
        while True:
            run = {"first": first, "closed": False, "stopped": False, "refused": False}

            async def relay(message, run=run) -> None:
                if message["type"] == "http.response.start":
                    run["refused"] = not run["first"] and message["status"] != 200
                    if run["first"]:
                        await send(message)
                    return
                if run["refused"]:
                    return  # a later run refused the session (it is gone): the stream ends
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                body = message.get("body", b"")
                run["stopped"] |= SERVER_STOPPED in body
                if CLOSE in body and not run["stopped"]:
                    run["closed"] = True
                    events = body.split(b"\n\n")  # server-sent events end with a blank line
                    body = b"".join(e + b"\n\n" for e in events if e and CLOSE not in e)
                if run["closed"] and not message.get("more_body", False):
                    if body:
                        await send({**message, "body": body, "more_body": True})
                    return  # the end of this run's response: the stream goes on instead
                await send({**message, "body": body})

            await self.app(scope, receive, relay)
            if run["refused"]:
                await send(END)
            if not run["closed"] or run["refused"]:
                return
            first = False
