"""A multi-turn conversation: photo in turn 1, speech in turn 2, then a typed follow-up."""

import pytest

from encoders.errors import InputError
from fusion.conversation import Message, user
from fusion.generate import GenerationOptions
from fusion.model import Chunk, Heard, Stats
from tests.tiny import photo, tone

OPTIONS = GenerationOptions(max_new_tokens=6)


def photo_speech_text() -> list[Message]:
    """A photo, then speech, then a typed follow-up: new objects on every call."""
    return [
        user("What is in this photo?", photos=[photo(seed=4)]),
        Message("assistant", "A cat on a mat."),
        user(speech=tone(1.2, 330.0)),
        Message("assistant", "I heard you."),
        user("And what colour is it?"),
    ]


@pytest.fixture
def conversation():
    return photo_speech_text()


class Counting:
    """Wraps an encoder method, counting its calls."""

    def __init__(self, monkeypatch, owner, name):
        self.calls, self.inner = 0, getattr(owner, name)
        monkeypatch.setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)

    def __getattr__(self, name):  # the wrapped object's other methods (Transcriber.score)
        return getattr(self.inner, name)


def test_prompt_counts_both_media(model, conversation):
    model.encode_media(conversation)
    counts = model.build_inputs(conversation).prompt_tokens
    assert counts["image"] == model.vision.num_tokens
    vocabulary = model.lm.get_input_embeddings().weight
    reading = conversation[2].speech.reading  # the clip as LM tokens (speech_reading.py)
    assert counts["audio"] == model.adapter.project_reading(reading, vocabulary).shape[0]
    speech = conversation[2].speech  # read as one of Whisper's readings, as the LM's tokens
    heard = [model.tokenizer.encode(t.strip(), add_special_tokens=False) for t in speech.heard]
    assert reading in heard and speech.heard[0] == speech.transcript
    assert counts["text"] > 0


def test_media_are_encoded_once(model, conversation, monkeypatch):
    vision = Counting(monkeypatch, model.vision, "encode")
    audio = Counting(monkeypatch, model.audio, "encode")
    transcribe = Counting(monkeypatch, model, "transcriber")
    model.encode_media(conversation)
    photo_features, speech_features = (
        conversation[0].photos[0].features,
        conversation[2].speech.features,
    )
    transcript = conversation[2].speech.transcript
    timings = model.encode_media(conversation)
    assert (vision.calls, audio.calls, transcribe.calls) == (1, 1, 1)
    assert conversation[0].photos[0].features is photo_features
    assert conversation[2].speech.features is speech_features
    assert conversation[2].speech.transcript == transcript
    assert timings == {
        "encode_image": 0.0,
        "encode_audio": 0.0,
        "transcribe": 0.0,
        "read_speech": 0.0,
        "ocr": 0.0,
    }


def test_several_photos_are_encoded_in_one_batch(model, monkeypatch):
    vision = Counting(monkeypatch, model.vision, "encode")
    messages = [
        user("compare", photos=[photo(seed=1), photo(seed=2)]),
        user("and this", photos=[photo(seed=3)]),
    ]
    model.encode_media(messages)
    assert vision.calls == 1
    features = [p.features for m in messages for p in m.photos]
    assert all(f.shape == (1, model.vision.num_tokens, model.vision.dim) for f in features)
    assert not features[0].equal(features[1])
    assert model.build_inputs(messages).prompt_tokens["image"] == 3 * model.vision.num_tokens


def test_stream_turn_by_turn(model, conversation):
    first = list(model.stream(conversation[:1], OPTIONS))
    assert not any(isinstance(e, Heard) for e in first)
    assert first[-1].prompt_tokens["image"] == model.vision.num_tokens
    assert first[-1].timings_ms["encode_image"] > 0.0

    second = list(model.stream(conversation[:3], OPTIONS))
    assert isinstance(second[0], Heard) and second[0].text == conversation[2].speech.transcript
    assert sum(isinstance(e, Heard) for e in second) == 1  # the photo's turn is not heard again
    assert all(isinstance(e, Chunk) for e in second[1:-1]) and len(second) > 2
    stats = second[-1]
    assert isinstance(stats, Stats)
    assert {"encode_image", "encode_audio", "first_token", "total"} <= stats.timings_ms.keys()
    assert stats.timings_ms["encode_image"] == 0.0  # the photo was encoded in the first turn
    assert stats.timings_ms["encode_audio"] > 0.0
    assert stats.transcripts == [conversation[2].speech.transcript]
    assert stats.prompt_tokens["image"] > 0 and stats.prompt_tokens["audio"] > 0

    third = list(model.stream(conversation, OPTIONS))
    assert not any(isinstance(e, Heard) for e in third)
    assert third[-1].timings_ms["encode_audio"] == 0.0 and third[-1].transcripts == []
    opening = model.answer_opening(conversation)  # "what colour": the photo's colours
    assert opening.startswith("Its main colour") and third[0].text == opening
    assert third[-1].prompt_tokens == model.build_inputs(conversation, opening).prompt_tokens


def test_answer_depends_on_the_photo(model):
    """The spliced features reach the LM: another photo changes the prompt embeddings."""
    one, two = [user("what?", photos=[photo(seed=8)])], [user("what?", photos=[photo(seed=9)])]
    model.encode_media(one + two)
    first, second = model.build_inputs(one).embeddings, model.build_inputs(two).embeddings
    assert first.shape == second.shape and not first.equal(second)


def test_an_empty_user_message_is_refused(model):
    with pytest.raises(InputError, match="needs text, a photo or speech"):
        model.build_inputs([user("")])


def test_record_includes_what_was_said():
    message = user("typed too", speech=tone(0.5))
    assert message.record() == "typed too"  # not transcribed yet
    message.speech.transcript = "hello there"
    assert message.record() == "(said) hello there\ntyped too"
