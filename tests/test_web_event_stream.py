"""A question typed just as the page's event stream would close still reaches the page.

Behind a slow hop (app/replicas' front on a busy machine), Gradio's close of a page's event
stream can arrive after the answer to the page's next `queue/join`; the page then drops the
stream its question's updates come on, and the question never appears (CI saw it, page's
first question and after a reload). Here the hop is made slow on purpose: HeldClose holds
Gradio's close for HOLD_S, and each question is typed once the page's events have all
completed (when Gradio decides to close): the page's loading, then an answer.
app/event_stream.py keeps the stream open instead. Real browser, tiny model.
"""

import asyncio
import time

import pytest

from app.event_stream import CLOSE, STREAM_PATH
from app.server import build_server
from bench.browser import launch_chromium
from tests.api_support import LiveServer
from tests.web_support import (
    PacedModel,
    needs_chromium,
    open_app,
    send,
    user_messages,
    wait_for_answers,
    wait_until,
)

pytestmark = needs_chromium
HOLD_S = 4.0  # how late Gradio's close reaches the page: longer than a join takes here


class HeldClose:
    """ASGI: the event stream's messages pass at once, a close HOLD_S late (a slow hop)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(STREAM_PATH):
            await self.app(scope, receive, send)
            return

        async def held(message) -> None:
            if CLOSE in message.get("body", b""):
                await asyncio.sleep(HOLD_S)
            await send(message)

        await self.app(scope, receive, held)


@pytest.fixture(scope="module")
def served(model):
    """-> (the page's URL, Gradio's queue)"""
    app = build_server(PacedModel(model))
    gradio = next(r.app for r in app.routes if hasattr(getattr(r, "app", None), "get_blocks"))
    with LiveServer(HeldClose(app)) as live:
        yield live.url + "/", gradio.get_blocks()._queue


def test_a_question_sent_as_the_stream_closes_is_answered(served):
    from playwright.sync_api import sync_playwright

    url, queue = served

    def all_completed() -> bool:  # what makes Gradio close a page's stream
        pending = queue.pending_event_ids_session
        return bool(pending) and not any(pending.values())

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            page = open_app(chromium.new_context(), url)
            for count, question in enumerate(["Hello there", "And again"], start=1):
                wait_until(all_completed, what="the page's events all completed")
                asked = time.monotonic()
                send(page, question)
                wait_for_answers(page, count, timeout_s=HOLD_S + 20)
                assert time.monotonic() - asked < HOLD_S  # not on a stream opened later
                assert user_messages(page).nth(count - 1).inner_text().strip() == question
        finally:
            chromium.close()
