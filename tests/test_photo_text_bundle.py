"""Text in view on the real embedded bundle: a sign is read word for word, other questions
about a photo never run OCR."""

import random

import pytest

from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.model import Chunk, Stats
from fusion.training.sign_data import (
    SIGN_QUESTIONS,
    available_fonts,
    reads_every_word,
    render_sign,
)

pytestmark = pytest.mark.bundle

OPTIONS = GenerationOptions(max_new_tokens=24, repetition_penalty=1.1)  # as the surfaces answer


@pytest.fixture(scope="module")
def model():
    from fusion.bundle import load_model

    return load_model()


def answer(model, message) -> tuple[str, Stats]:
    events = list(model.stream([message], OPTIONS))
    return "".join(e.text for e in events if isinstance(e, Chunk)), events[-1]


def test_signs_are_read_word_for_word(model):
    """Most signs' answers hold every word of the sign, however the question is put (the four
    phrasings of `lunettes eval`, whose 120 held-out signs give the figure); each runs OCR."""
    from fusion.training.sign_data import sign_examples

    signs = sign_examples(8, seed=5)
    read = 0
    for sign, question in zip(signs, SIGN_QUESTIONS * 2):
        text, stats = answer(model, user(question, photos=[sign.image]))
        read += reads_every_word(sign.text, text)
        assert stats.timings_ms["ocr"] > 0
    assert read >= 6, f"{read} of {len(signs)} signs read word for word"


def test_other_questions_about_a_photo_never_run_ocr(model, monkeypatch):
    def no_reading(image):
        raise AssertionError("OCR ran for a question that does not ask to read")

    monkeypatch.setattr(model.text_reader, "read", no_reading)
    sign = render_sign("NO PARKING", available_fonts()[0], random.Random(4))
    text, stats = answer(model, user("What is in this picture?", photos=[sign.image]))
    assert text.strip() and stats.timings_ms["ocr"] == 0.0
