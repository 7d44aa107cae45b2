"""Partial transcripts on the real embedded bundle: while a question is spoken hands-free (the
neural voice, fed in the page's 64 ms chunks at the pace it is said), the page is told what
Whisper heard so far, before the question ends; then the question is asked as usual."""

import json
import time

import numpy as np
import pytest

from app.listening import hear
from app.web_partial import PartialTranscripts
from app.web_session import WebSession
from tests.tiny import said

pytestmark = pytest.mark.bundle

QUESTION = "What is the weather like in Paris today, and will it rain this evening?"


def test_the_status_line_shows_the_question_while_it_is_spoken(tmp_path):
    from fusion.bundle import load_model

    partials = PartialTranscripts(load_model())
    session = WebSession(root=tmp_path)
    audio = np.concatenate([said(QUESTION) * 0.5, np.zeros(24_000, np.float32)])
    pcm, step = (audio * 32767).astype(np.int16), 1_024  # 64 ms at 16 kHz
    shown, asked_at = [], None
    start = time.monotonic()
    for index in range(0, len(pcm), step):
        time.sleep(max(0.0, start + index / 16_000 - time.monotonic()))  # as it is said
        for message in map(json.loads, hear(session, 16_000, pcm[index : index + step], partials)):
            if message["kind"] == "heard":
                shown.append(message["text"])
            elif message["kind"] == "asked":
                asked_at = len(shown)
    assert asked_at is not None, "the question was not heard to its end"
    before_end = " ".join(shown[:asked_at]).lower()
    assert "weather" in before_end, shown
    assert session.take_heard() is not None
