"""The web app in a real browser on the real embedded bundle: a photo with a typed question,
then a spoken question through the fake microphone, whose transcript must be right; and live
translation mode, hands-free: French said to the glasses is captioned and said in English.

Screenshots and the latencies the page showed go to test-artifacts/.
"""

import re

import pytest

from bench.browser import launch_chromium
from bench.voice_loop import PAGE_CLOCK  # notes when the voice first sounds
from tests.web_support import (
    ARTIFACTS,
    PHOTOS,
    LiveServer,
    answer_text,
    fake_microphone_wav,
    finished_answers,
    have_espeak,
    needs_chromium,
    open_app,
    screenshot,
    send,
    status,
    user_messages,
    wait_until,
)

pytestmark = [pytest.mark.bundle, needs_chromium]

SPOKEN = "What is the weather like in Paris today?"
FRENCH = "Je voudrais un café et un croissant, s'il vous plaît."
MAX_TOKENS = 48  # set in the page's settings: enough to see the spoken answer stream


@pytest.fixture(scope="module")
def server():
    from fusion.bundle import load_model

    with LiveServer(load_model()) as live:
        yield live


@pytest.fixture(scope="module")
def driver():
    """Playwright, once for the module's browsers (a second one at once cannot start)."""
    if not have_espeak():
        pytest.skip("espeak-ng is not installed: no spoken question for the fake microphone")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(driver, tmp_path_factory):
    wav = fake_microphone_wav(tmp_path_factory.mktemp("microphone") / "question.wav", SPOKEN)
    chromium = launch_chromium(driver, wav)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def french_browser(driver, tmp_path_factory):
    folder = tmp_path_factory.mktemp("microphone")
    wav = fake_microphone_wav(folder / "french.wav", FRENCH, pad_s=6.0, voice="fr")
    chromium = launch_chromium(driver, wav)
    yield chromium
    chromium.close()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_the_bundle_answers_a_photo_and_a_spoken_question_in_the_browser(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = open_app(context, server.url)
    page.locator("#settings").get_by_role("button").first.click()
    tokens = page.locator("#max-tokens input[type=number]")
    tokens.fill(str(MAX_TOKENS))
    tokens.press("Enter")
    assert "trained" in page.locator("#header").inner_text()

    send(page, "What is in this picture?", [PHOTOS / "cat.jpg"])
    wait_until(lambda: status(page).startswith("Answered"), timeout_s=180,
               what="the answer about the photo")  # fmt: skip
    assert answer_text(page)  # "This is a cat.": too short to see it stream
    photo_latency = status(page)
    screenshot(page, "web-bundle-photo.png")

    recorder = page.locator("#push-to-talk")
    recorder.get_by_role("button", name="Push to talk: Record").click()
    page.wait_for_timeout(5000)  # 1 s of silence, the question (~2.5 s), silence
    recorder.get_by_role("button", name="Push to talk: Stop").click()
    question = user_messages(page).nth(1)
    wait_until(lambda: "🎙️" in question.inner_text() and "…" not in question.inner_text(),
               timeout_s=120, what="the transcript")  # fmt: skip
    transcript = question.inner_text().split("🎙️", 1)[1]
    assert words(transcript) == words(SPOKEN), f"heard {transcript!r}"
    lengths = []

    def answered() -> bool:
        lengths.append(len(answer_text(page, 1)))
        return finished_answers(page) >= 2

    wait_until(answered, timeout_s=180, what="the answer to the spoken question")
    assert len({n for n in lengths if n > 1}) >= 3, f"the answer did not stream: {lengths}"
    wait_until(lambda: status(page).startswith("Answered"), what="the end of the spoken answer")
    speech_latency = status(page)
    screenshot(page, "web-bundle-voice.png")
    (ARTIFACTS / "web-bundle-latencies.txt").write_text(
        f"photo + typed question: {photo_latency}\nspoken question: {speech_latency}\n"
        f"transcript: {transcript.strip()}\n"
    )
    context.close()


def test_translation_mode_captions_and_says_french_speech_in_english(french_browser, server):
    context = french_browser.new_context(viewport={"width": 1280, "height": 1100})
    context.add_init_script(PAGE_CLOCK)
    page = open_app(context, server.url)
    page.locator("#translate input[type=checkbox]").check()
    page.locator("#hands-free").get_by_role("button", name="Record").click()
    wait_until(lambda: finished_answers(page) >= 1, timeout_s=180, what="the translation")
    page.locator("#hands-free").get_by_role("button", name="Stop").click()
    question, caption = user_messages(page).first.inner_text(), answer_text(page)
    assert "🎙️" in question and "caf" in question.lower(), f"heard {question!r}"
    assert "French → English" in caption and "coffee" in caption.lower(), caption
    wait_until(
        lambda: page.evaluate("window.__lunettes_bench.sound") is not None,
        what="the English said aloud",
    )
    screenshot(page, "web-bundle-translation.png")
    assert page.problems == []
    context.close()
