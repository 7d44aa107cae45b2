"""The follow-up window in a real browser: after the answer to a push-to-talk question has been
written and said, the page listens hands-free by itself; a question said then is answered
with no button; silence closes the window. Chromium's fake microphone plays the question to
each recording that opens it (push to talk, then the window's), then silence.
"""

import pytest

from bench.browser import launch_chromium
from tests.web_support import (
    LiveServer,
    PacedModel,
    fake_microphone_wav,
    have_espeak,
    needs_chromium,
    open_app,
    screenshot,
    user_messages,
    wait_for_answers,
    wait_until,
)

pytestmark = needs_chromium

WINDOW_WAIT_MS = 60_000  # the answer is written, then said by the neural voice


@pytest.fixture(scope="module")
def server(model):
    with LiveServer(PacedModel(model, pace_s=0.02, max_tokens=12)) as live:
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    if not have_espeak():
        pytest.skip("espeak-ng is not installed (make test installs it)")
    wav = fake_microphone_wav(
        tmp_path_factory.mktemp("microphone") / "question.wav", "What colour is this cup?"
    )
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, wav)
        yield chromium
        chromium.close()


def test_the_microphone_stays_open_for_a_follow_up_after_a_push_to_talk_answer(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = open_app(context, server.url)
    recorder, hands_free = page.locator("#push-to-talk"), page.locator("#hands-free")
    recorder.get_by_role("button", name="Push to talk: Record").click()
    page.wait_for_timeout(3500)
    recorder.get_by_role("button", name="Push to talk: Stop").click()
    wait_for_answers(page, 1, timeout_s=60)
    listening = hands_free.get_by_role("button", name="Hands-free listening: Stop")
    listening.wait_for(timeout=WINDOW_WAIT_MS)  # opened by itself, once the answer was said
    wait_until(lambda: user_messages(page).count() == 2, 30, "a follow-up with no button")
    assert "🎙️" in user_messages(page).nth(1).inner_text()
    wait_for_answers(page, 2, timeout_s=60)
    screenshot(page, "web-follow-up.png")
    closed = hands_free.get_by_role("button", name="Hands-free listening: Record")
    closed.wait_for(timeout=WINDOW_WAIT_MS)  # then silence: it closed by itself
    assert user_messages(page).count() == 2
    context.close()
