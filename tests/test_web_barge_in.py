"""Barge-in in a real browser: hands-free, the wearer asks, then speaks over the answer; the
answer stops (kept, marked stopped) and what they said is asked next. Chromium's fake
microphone plays one WAV: a question, a pause while the (slow) answer is written, a second
question over it, silence. A short "yeah" over an answer is covered by test_web_session.py.
"""

import numpy as np
import pytest
import soundfile

from bench.browser import launch_chromium
from tests.web_support import (
    LiveServer,
    PacedModel,
    answer_text,
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

FIRST, SECOND = "What colour is this cup?", "No, tell me about the table instead."
PAUSE_S = 3.0  # after the first question: its answer is being written when the second starts


@pytest.fixture(scope="module")
def server(model):
    slow = PacedModel(model, pace_s=0.3, max_tokens=60)  # an answer of ~18 s
    with LiveServer(slow) as live:
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    if not have_espeak():
        pytest.skip("espeak-ng is not installed (make test installs it)")
    folder = tmp_path_factory.mktemp("microphone")
    first = fake_microphone_wav(folder / "first.wav", FIRST, lead_s=1.0, pad_s=PAUSE_S)
    second = fake_microphone_wav(folder / "second.wav", SECOND, lead_s=0.0, pad_s=4.0)
    samples = [soundfile.read(path, dtype="int16")[0] for path in (first, second)]
    both = folder / "both.wav"
    soundfile.write(both, np.concatenate(samples), soundfile.info(first).samplerate)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, both)
        yield chromium
        chromium.close()


def test_speaking_over_an_answer_stops_it_and_asks_anew(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = open_app(context, server.url)
    page.locator("#hands-free").get_by_role("button", name="Record").click()
    wait_until(lambda: user_messages(page).count() == 2, 30, "the second question")
    wait_until(lambda: "(stopped)" in answer_text(page, 0), 10, "the first answer stopped")
    wait_for_answers(page, 1, timeout_s=60)  # the second: a stopped answer has no timings
    screenshot(page, "web-barge-in.png")
    assert len(answer_text(page, 0)) > len("(stopped)")  # kept as far as it went
    assert "(stopped)" not in answer_text(page, 1)
    assert all("🎙️" in user_messages(page).nth(i).inner_text() for i in range(2))
    page.locator("#hands-free").get_by_role("button", name="Stop").click()
    context.close()
