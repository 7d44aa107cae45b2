"""Partial transcripts on the real embedded bundle: while a question is spoken hands-free (the
neural voice, fed in the page's 64 ms chunks at the pace it is said), the page is told what
Whisper heard so far, before the question ends; then the question is asked as usual, already
encoded, transcribed and read during the pause that ended it, its answer's prompt prefilled
with the camera frame it is asked with.

What is tested is what happens, not how fast: the next chunk waits for the background work
the last one started (a slow CI machine had no partial transcript in time, or asked the
question before its preparation ended). How fast it is: bench/voice_loop.py. A question
asked before its preparation ended is tested on its own, fed all at once."""

import json
import time

import numpy as np
import pytest

from app.listening import hear
from app.web_partial import PartialTranscripts
from app.web_session import WebSession
from fusion.conversation import user
from tests.tiny import said

pytestmark = pytest.mark.bundle

QUESTION = "What is the weather like in Paris today, and will it rain this evening?"


@pytest.fixture(scope="module")
def partials() -> PartialTranscripts:
    from fusion.bundle import load_model

    return PartialTranscripts(load_model())


def ask_hands_free(
    session: WebSession, partials: PartialTranscripts, paced: bool = True
) -> tuple[list[str], int]:
    """Say QUESTION into `session`'s microphone, then 1.5 s of silence, at the pace it is
    said, each chunk after the work the last one started (paced=False: all at once) ->
    (the partial transcripts the page was shown, how many came before "asked")."""
    audio = np.concatenate([said(QUESTION) * 0.5, np.zeros(24_000, np.float32)])
    pcm, step = (audio * 32767).astype(np.int16), 1_024  # 64 ms at 16 kHz
    shown, asked_at = [], None
    start = time.monotonic()
    for index in range(0, len(pcm), step):
        if paced:
            partials.worker.submit(lambda: None).result()  # what the last chunk started
            time.sleep(max(0.0, start + index / 16_000 - time.monotonic()))  # as it is said
        for message in map(json.loads, hear(session, 16_000, pcm[index : index + step], partials)):
            if message["kind"] == "heard":
                shown.append(message["text"])
            elif message["kind"] == "asked":
                asked_at = len(shown)
    assert asked_at is not None, "the question was not heard to its end"
    return shown, asked_at


def test_the_status_line_shows_the_question_while_it_is_spoken(tmp_path, partials):
    session = WebSession(root=tmp_path)
    shown, asked_at = ask_hands_free(session, partials)
    before_end = " ".join(shown[:asked_at]).lower()
    assert "weather" in before_end, shown
    assert session.take_heard() is not None


def test_the_question_is_transcribed_and_read_while_the_wearer_pauses(tmp_path, partials):
    model, session = partials.model, WebSession(root=tmp_path)
    ask_hands_free(session, partials)
    question = session.take_heard()
    partials.worker.submit(lambda: None).result()  # what the pause started has finished
    hits = model.media_cache.hits
    message = user("", [], question)
    timings = model.encode_media([message], owner=session.owner)  # as the answer does
    assert model.media_cache.hits == hits + 1
    assert timings["encode_audio"] == timings["transcribe"] == timings["read_speech"] == 0.0
    assert "weather" in message.speech.transcript.lower() and message.speech.reading
    other = user("", [], question)  # another owner: nothing of it is found
    assert model.encode_media([other], owner="someone else")["transcribe"] > 0


def test_a_question_asked_before_its_preparation_ended_is_answered_from_it(tmp_path, partials):
    """The pause ended the question (0.8 s) while the work its first 64 ms started still ran:
    that work goes on, and the answer finds it (it used to be dropped, as if the wearer had
    spoken on, and the answer did it all again)."""
    model, session = partials.model, WebSession(root=tmp_path)
    ask_hands_free(session, partials, paced=False)  # asked long before any transcript ends
    question = session.take_heard()
    partials.worker.submit(lambda: None).result()
    message = user("", [], question)
    timings = model.encode_media([message], owner=session.owner)
    assert timings["encode_audio"] == timings["transcribe"] == timings["read_speech"] == 0.0
    assert "weather" in message.speech.transcript.lower()


def test_the_answer_s_prompt_is_prefilled_with_the_camera_frame_while_the_page_asks(
    tmp_path, partials
):
    from pathlib import Path

    from PIL import Image

    from app.web_session import answer_next
    from fusion.generate import GenerationOptions

    model, session = partials.model, WebSession(root=tmp_path)
    session.see(Image.open(Path(__file__).parents[1] / "assets" / "examples" / "coffee.jpg"))
    ask_hands_free(session, partials)
    partials.worker.submit(lambda: None).result()
    turn = session.ask_heard()
    assert turn is not None and turn.question.photos  # asked with the frame it was prepared with
    before = model.prefixes.reused_tokens
    *_, done = answer_next(model, session, GenerationOptions(max_new_tokens=4))
    prompt = sum(done.stats.prompt_tokens.values())
    assert model.prefixes.reused_tokens - before == prompt  # all of it, its logits kept
    assert done.stats.timings_ms["encode_image"] == done.stats.timings_ms["transcribe"] == 0.0
    assert done.answer.strip()
