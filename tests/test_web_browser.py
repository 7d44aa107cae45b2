"""The web app in a real browser: Debian's Chromium, headless, driven by Playwright, against a
live server on the tiny random model (answers are noise, but every path runs: photos, typed
and spoken questions, the camera, hands-free listening, two sessions, errors, the keyboard).

The fake microphone plays a spoken question (espeak-ng) once per recording; the fake camera
shows Chromium's test picture. Screenshots go to test-artifacts/.
"""

import pytest

from app import speech_out
from bench.browser import launch_chromium
from bench.voice_loop import PAGE_CLOCK
from tests.web_support import (
    PHOTOS,
    WAIT_MS,
    LiveServer,
    PacedModel,
    answer_text,
    bot_messages,
    fake_microphone_wav,
    have_espeak,
    huge_png,
    needs_chromium,
    open_app,
    screenshot,
    send,
    status,
    user_messages,
    wait_for_answers,
    wait_until,
)

pytestmark = needs_chromium

QUESTION = "What is in this picture?"
ACCESSIBLE_NAME = """el => (el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].innerText)
    || el.getAttribute('title') || el.innerText || el.getAttribute('placeholder') || el.getAttribute('alt') || '').trim()"""


@pytest.fixture(scope="module")
def paced(model):
    return PacedModel(model)


@pytest.fixture(scope="module")
def server(paced):
    with LiveServer(paced) as live:
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    spoken = "What colour is this cup?" if have_espeak() else None
    wav = fake_microphone_wav(tmp_path_factory.mktemp("microphone") / "question.wav", spoken)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, wav)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield context
    context.close()


@pytest.fixture
def page(context, server):
    return open_app(context, server.url)


def test_photos_and_a_typed_question_stream_an_answer_and_stay_in_the_history(page):
    send(page, QUESTION, [PHOTOS / "cat.jpg", PHOTOS / "coffee.jpg"])
    question = user_messages(page).first
    question.get_by_text(QUESTION).wait_for(timeout=WAIT_MS)
    lengths = []  # the answer's length, polled while it streams

    def finished() -> bool:
        lengths.append(len(answer_text(page)))
        return status(page).startswith("Answered")

    wait_until(finished, what="the answer")
    assert len({n for n in lengths if n > 1}) >= 3, f"the answer did not stream: {lengths}"
    images = question.locator("img")
    assert images.count() == 2
    assert [images.nth(i).get_attribute("alt") for i in range(2)] == [
        "your photo cat.jpg", "your photo coffee.jpg",
    ]  # fmt: skip
    timing = bot_messages(page).first.locator(".thought").inner_text()
    assert "photo" in timing and "first token" in timing and "tokens at" in timing

    send(page, "And what colour is it?")  # a follow-up about the same photos
    wait_for_answers(page, 2)
    follow_up_timing = bot_messages(page).nth(1).locator(".thought").inner_text()
    assert "photo" not in follow_up_timing  # already encoded: not again
    assert user_messages(page).locator("img").count() == 2  # still shown
    assert all(url.startswith(("http://127.0.0.1", "data:", "blob:")) for url in page.requested)
    assert page.problems == []
    screenshot(page, "web-chat-photos.png")


def test_a_recorded_question_shows_its_transcript_before_the_answer(page):
    recorder = page.locator("#push-to-talk")
    recorder.get_by_role("button", name="Push to talk: Record").click()
    page.wait_for_timeout(3500)
    recorder.get_by_role("button", name="Push to talk: Stop").click()
    seen = []  # (transcript shown, answer length), polled

    def finished() -> bool:
        said = user_messages(page).first.inner_text() if user_messages(page).count() else ""
        seen.append(("🎙️" in said and "…" not in said, len(answer_text(page).strip("… \n"))))
        return status(page).startswith("Answered")

    wait_until(finished, what="the spoken question's answer")
    assert all(shown for shown, answered in seen if answered), (
        "the answer came before the transcript"
    )
    said = user_messages(page).first
    assert said.locator("audio").count() == 1 or said.get_by_text("0:0").count()  # replayable
    screenshot(page, "web-push-to-talk.png")
    if speech_out.available_engines():  # the voice plays in the page's own player

        def playing() -> bool:
            return page.evaluate("window.lunettesVoice.playing()")

        wait_until(playing, what="the spoken answer to play")
        page.get_by_role("button", name="Stop speaking").click()  # interrupt the voice
        assert not playing()  # at once, by the page itself
        page.wait_for_timeout(1000)  # pieces on their way, and the server's own stop
        assert not playing()

    box = page.locator("#message")  # the message box's own microphone, with typed text
    box.get_by_role("button", name="Record audio").click()
    box.get_by_role("button", name="Start recording").click()
    page.wait_for_timeout(3000)
    box.get_by_role("button", name="Stop recording").click()
    box.get_by_role("button", name="Clear audio").wait_for(timeout=WAIT_MS)
    box.locator("textarea").fill("and in French?")
    box.locator("textarea").press("Enter")
    wait_for_answers(page, 2)
    second = user_messages(page).nth(1).inner_text()
    assert "🎙️" in second and "and in French?" in second


def test_hands_free_asks_with_the_camera_frame_when_the_speaker_pauses(page):
    camera = page.locator("#camera")
    camera.get_by_text("Click to Access Webcam").click()
    camera.get_by_role("button", name="Camera: Record").click()  # start streaming frames
    page.wait_for_timeout(3000)  # a few frames reach the server (seconds on a busy machine)
    page.evaluate(PAGE_CLOCK)  # notes when the voice first sounds (app/static/voice_player.js)
    page.locator("#hands-free").get_by_role("button", name="Record").click()
    wait_for_answers(page, 1)
    question = user_messages(page).first
    assert "🎙️" in question.inner_text()
    assert question.locator("img").first.get_attribute("alt") == "camera frame"
    wait_until(
        lambda: page.evaluate("window.__lunettes_bench.sound") is not None,
        what="the answer said aloud",
    )
    page.locator("#hands-free").get_by_role("button", name="Stop").click()
    screenshot(page, "web-glasses-hands-free.png")
    page.keyboard.press("Alt+KeyL")  # look and ask, by keyboard: the current frame
    wait_for_answers(page, 2)
    assert user_messages(page).nth(1).locator("img").first.get_attribute("alt") == "camera frame"


def test_two_browsers_never_see_each_other_s_chats(browser, server):
    pages = []
    for name in ("Alice", "Bob"):
        context = browser.new_context()
        pages.append((name, open_app(context, server.url)))
        send(pages[-1][1], f"My name is {name}")
    for name, page in pages:
        wait_for_answers(page, 1)
        chat = page.locator("#conversation").inner_text()
        other = "Bob" if name == "Alice" else "Alice"
        assert f"My name is {name}" in chat and other not in chat
    for _, page in pages:
        page.context.close()


def test_errors_are_chat_messages_and_the_server_keeps_serving(browser, server, tmp_path):
    notes, huge = tmp_path / "notes.jpg", tmp_path / "huge.png"
    notes.write_bytes(b"these are my notes, not a photo")
    huge.write_bytes(huge_png(12_000, 9_000))
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = open_app(context, server.url)
    send(page, "What is this?", [notes])
    bot_messages(page).get_by_text("⚠️ notes.jpg is not an image format that can be read").wait_for(
        timeout=WAIT_MS
    )
    send(page, "And this?", [huge])
    bot_messages(page).get_by_text("108 megapixels").wait_for(timeout=WAIT_MS)
    send(page, f"Please {PacedModel.FAIL_MARK}")
    bot_messages(page).get_by_text("⚠️ The model failed while answering").wait_for(timeout=WAIT_MS)
    assert "Traceback" not in page.locator("#conversation").inner_text()
    screenshot(page, "web-errors.png")

    other = open_app(browser.new_context(), server.url)  # another person, meanwhile
    send(other, "Hello")
    wait_for_answers(other, 1)
    send(page, "Hello again")  # and the first person can go on
    wait_for_answers(page, 1)

    denied = browser.new_context()
    denied.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    refused = open_app(denied, server.url)
    refused.locator("#push-to-talk").get_by_role("button", name="Record").click()
    bot_messages(refused).get_by_text(
        "⚠️ The microphone cannot be used: permission was denied"
    ).wait_for(timeout=WAIT_MS)
    insecure = browser.new_context()  # e.g. a phone on http://192.168.x.y: no camera, no microphone
    insecure.add_init_script(
        "Object.defineProperty(navigator, 'mediaDevices', {value: undefined});"
    )
    phone = open_app(insecure, server.url)
    bot_messages(phone).get_by_text("only on a secure page").wait_for(timeout=WAIT_MS)
    for opened in (context, other.context, denied, insecure):
        opened.close()


def test_stop_regenerate_and_clear(page, paced):
    paced.pace_s = 0.4  # slow enough to stop half way
    try:
        send(page, "Tell me a long story")
        wait_until(lambda: status(page) == "Answering…", what="the answer to start")
        page.keyboard.press("Escape")  # the keyboard's Stop
        bot_messages(page).get_by_text("(stopped)").wait_for(timeout=WAIT_MS)
        assert status(page) == "Stopped."
    finally:
        paced.pace_s = 0.05
    page.locator("#regenerate-button").click()
    wait_for_answers(page, 1)
    assert "(stopped)" not in page.locator("#conversation").inner_text()
    # the answer's last update has arrived (the status line with the voice's first sound, when
    # there is a voice): an update computed before a Clear can land after it
    last = "first sound" if speech_out.available_engines() else "Answered"
    wait_until(lambda: last in status(page), what="the answer's last status line")
    page.locator("#clear-button").click()
    wait_until(
        lambda: user_messages(page).count() == 0 and bot_messages(page).count() == 0,
        what="a clear chat",
    )
    assert status(page).startswith("Cleared")


def test_keyboard_labels_and_a_phone_layout(page, browser, server):
    unnamed = page.evaluate(
        f"""() => [...document.querySelectorAll('button, input, textarea, select, audio, [role=button]')]
            .filter(el => el.offsetParent !== null && el.type !== 'file')
            .filter(el => !({ACCESSIBLE_NAME})(el))
            .map(el => el.outerHTML.slice(0, 120))"""
    )
    assert unnamed == [], f"controls without an accessible name: {unnamed}"
    assert page.locator("#status [role=status][aria-live=polite]").count() == 1

    reached = []  # Tab from the top of the page until the message box has the focus
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(f"() => ({ACCESSIBLE_NAME})(document.activeElement)"))
        if page.evaluate("() => document.activeElement.matches('#message textarea')"):
            break
    else:
        raise AssertionError(f"the message box is not reachable with Tab: {reached}")
    assert all(reached), f"a focused control has no name: {reached}"
    page.keyboard.type("Hello from the keyboard")
    page.keyboard.press("Enter")
    wait_for_answers(page, 1)

    page.locator("#look-and-ask").focus()
    page.keyboard.press("Alt+KeyM")  # back to the message box from anywhere
    assert page.evaluate("() => document.activeElement.matches('#message textarea')")
    page.keyboard.press("Alt+KeyL")  # look and ask with the camera off: said plainly
    bot_messages(page).get_by_text("⚠️ The camera is off").wait_for(timeout=WAIT_MS)

    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    small = open_app(phone, server.url)
    assert small.evaluate("() => document.documentElement.scrollWidth") <= 390
    camera, chat = (
        small.locator("#camera").bounding_box(),
        small.locator("#conversation").bounding_box(),
    )
    assert camera["y"] < chat["y"] and chat["width"] > 300  # stacked: the glasses first
    screenshot(small, "web-phone.png")
    phone.close()
