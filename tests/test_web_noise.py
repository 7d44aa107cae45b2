"""A noise step in a real browser: hands-free, a canteen's babble starts 20 dB above the quiet
room and nobody speaks; no question is asked. Then the room is quiet again and a question is
said: it is asked, once (so the page was listening all along). Chromium's fake microphone
plays one WAV; Silero VAD (app/vad.py) is the real one, the LM the tiny random one.
"""

import numpy as np
import pytest
import soundfile

from bench.browser import FAKE_MICROPHONE_RATE, launch_chromium
from bench.voice_loop import PAGE_CLOCK
from encoders.audio_io import SAMPLE_RATE, resample
from tests.noise import at_dbfs, babble, silence
from tests.tiny import said
from tests.web_support import LiveServer, PacedModel, needs_chromium, open_app, user_messages

pytestmark = needs_chromium

QUIET_S, NOISE_S, GAP_S, TAIL_S = 3.0, 10.0, 1.5, 5.0
QUESTION = "What does that sign say?"
# When each question joined the chat, on the page's clock (bench.voice_loop.PAGE_CLOCK notes
# when the microphone opened: Chromium starts the WAV then).
QUESTIONS_CLOCK = """
window.__asked = [];
new MutationObserver(() => {
  const count = document.querySelectorAll('#conversation .user-row').length;
  while (window.__asked.length < count) window.__asked.push(performance.now());
}).observe(document, {childList: true, subtree: true});
"""


@pytest.fixture(scope="module")
def server(model):
    with LiveServer(PacedModel(model, pace_s=0.01, max_tokens=8)) as live:
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    room = at_dbfs(silence(QUIET_S, 1.0), -55)  # a quiet room's hiss
    crowd = at_dbfs(babble(NOISE_S), -35)  # +20 dB: a canteen, nobody speaking to the glasses
    question = at_dbfs(said(QUESTION), -20)
    gap, tail = (at_dbfs(silence(s, 1.0, seed=n), -55) for n, s in enumerate((GAP_S, TAIL_S)))
    audio = np.concatenate([room, crowd, gap, question, tail])  # [S] at 16 kHz
    wav = tmp_path_factory.mktemp("microphone") / "room.wav"
    samples = resample(audio, SAMPLE_RATE, FAKE_MICROPHONE_RATE)
    soundfile.write(wav, samples, FAKE_MICROPHONE_RATE, subtype="PCM_16")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, wav)
        yield chromium
        chromium.close()


def test_a_noise_step_starts_no_question_and_a_question_after_it_is_asked(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(PAGE_CLOCK)
    context.add_init_script(QUESTIONS_CLOCK)
    page = open_app(context, server.url)
    page.locator("#hands-free").get_by_role("button", name="Record").click()
    page.wait_for_function("window.__lunettes_bench.microphone !== undefined", timeout=10_000)
    spoken_at_s = QUIET_S + NOISE_S + GAP_S  # into the WAV: the question begins
    heard_by_s = spoken_at_s + len(said(QUESTION)) / SAMPLE_RATE + TAIL_S - 1.0
    page.wait_for_function(  # the question (or, were the babble taken for one, that one)
        "window.__asked.length >= 1", timeout=(heard_by_s + 30) * 1000, polling=100
    )
    page.wait_for_function(  # and the WAV's first pass, up to the question's pause and a little
        f"performance.now() - window.__lunettes_bench.microphone > {heard_by_s * 1000}",
        timeout=(heard_by_s + 15) * 1000,
        polling=100,
    )
    asked_s = [
        (at - page.evaluate("window.__lunettes_bench.microphone")) / 1000
        for at in page.evaluate("window.__asked")
    ]
    assert len(asked_s) == 1, f"questions asked {asked_s} s after the microphone opened"
    assert asked_s[0] > spoken_at_s, f"asked at {asked_s[0]:.1f} s, during the babble"
    assert "🎙️" in user_messages(page).first.inner_text()
    page.locator("#hands-free").get_by_role("button", name="Stop").click()
    assert page.problems == []
    context.close()
