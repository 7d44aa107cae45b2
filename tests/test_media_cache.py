"""The media cache: an API client resends the whole conversation each turn; its photos and
clips are encoded, transcribed and read once, for that owner only, within a byte budget."""

import numpy as np

from fusion.conversation import Message, user
from fusion.generate import GenerationOptions
from fusion.media_cache import MediaCache
from fusion.model import Chunk
from tests.test_conversation import Counting, photo_speech_text
from tests.tiny import photo, tone

OPTIONS = GenerationOptions(max_new_tokens=6)


def resent():
    """The conversation as a client sends it again: new objects, the same bytes."""
    return photo_speech_text()


def answer(model, messages, owner):
    events = list(model.stream(messages, OPTIONS, owner=owner))
    return "".join(e.text for e in events if isinstance(e, Chunk)), events[-1]


def test_a_resent_conversation_is_not_encoded_again(model, monkeypatch):
    vision = Counting(monkeypatch, model.vision, "encode")
    audio = Counting(monkeypatch, model.audio, "encode")
    transcribe = Counting(monkeypatch, model, "transcriber")
    first_text, first = answer(model, resent(), "api")
    assert (vision.calls, audio.calls, transcribe.calls) == (1, 1, 1)
    assert first.timings_ms["encode_image"] > 0 and first.timings_ms["transcribe"] > 0

    again = resent()
    second_text, second = answer(model, again, "api")
    assert (vision.calls, audio.calls, transcribe.calls) == (1, 1, 1)
    assert second.timings_ms["encode_image"] == second.timings_ms["transcribe"] == 0.0
    assert second_text == first_text and second.prompt_tokens == first.prompt_tokens
    speech = again[2].speech
    assert speech.transcript and speech.reading and speech.heard[0] == speech.transcript


def test_another_owner_never_hits_the_cache(model, monkeypatch):
    vision = Counting(monkeypatch, model.vision, "encode")
    answer(model, resent(), "web:one")
    answer(model, resent(), "web:two")
    assert vision.calls == 2
    assert model.media_cache.hits == 0


def test_another_photo_is_another_entry(model, monkeypatch):
    vision = Counting(monkeypatch, model.vision, "encode")
    model.encode_media([user("what?", photos=[photo(seed=1)])], "api")
    model.encode_media([user("what?", photos=[photo(seed=2)])], "api")
    model.encode_media([user("what?", photos=[photo(seed=1).convert("L").convert("RGB")])], "api")
    assert vision.calls == 3


def test_the_budget_drops_the_least_recently_used(model):
    messages = [user("what?", photos=[photo(seed=s)]) for s in range(3)]
    model.encode_media(messages, "api")
    one = messages[0].photos[0].features
    entry = one.numel() * one.element_size()
    cache = MediaCache(budget_bytes=2 * entry + entry // 2)  # room for two photos
    cache.keep(messages[:1], "api")
    cache.keep(messages[1:2], "api")
    assert cache.restore([user(photos=[photo(seed=0)])], "api") == 1  # 0 is now the newest
    cache.keep(messages[2:], "api")  # drops 1, the least recently used
    assert len(cache) == 2 and cache.held_bytes <= cache.budget_bytes
    assert cache.restore([user(photos=[photo(seed=1)])], "api") == 0
    assert cache.restore([user(photos=[photo(seed=0)]), user(photos=[photo(seed=2)])], "api") == 2


def test_a_clip_is_keyed_by_its_samples(model, monkeypatch):
    transcribe = Counting(monkeypatch, model, "transcriber")
    clip = tone(1.0, 440.0)
    model.encode_media([user(speech=clip)], "api")
    model.encode_media([user(speech=(clip * 0.5).astype(np.float32))], "api")  # quieter
    assert transcribe.calls == 2
    same = user(speech=clip.copy())
    model.encode_media([same], "api")
    assert transcribe.calls == 2
    assert same.speech.features is not None and same.speech.transcript is not None


def test_translation_takes_the_owners_encoded_clip_from_the_cache(model, monkeypatch):
    """As when hands-free listening prepared the question during its pause (web_partial.py)."""
    from fusion.conversation import Speech

    audio = Counting(monkeypatch, model.audio, "encode")
    transcribe = Counting(monkeypatch, model, "transcriber")
    clip = tone(1.0, 440.0)
    model.encode_media([user(speech=clip)], "web:one")
    assert (audio.calls, transcribe.calls) == (1, 1)
    _, timings = model.translate(Speech(clip.copy()), "web:one")
    assert (audio.calls, transcribe.calls) == (1, 2)  # the translate task alone
    assert timings["encode_audio"] == 0.0
    model.translate(Speech(clip.copy()), "web:two")  # another owner: encoded again
    assert audio.calls == 2


def test_other_reading_settings_read_the_clip_again(model, monkeypatch):
    from dataclasses import replace

    transcribe = Counting(monkeypatch, model, "transcriber")
    model.encode_media([user(speech=tone(1.0, 440.0))], "api")
    monkeypatch.setattr(model, "speech_reading", replace(model.speech_reading, lm_weight=0.5))
    model.encode_media([user(speech=tone(1.0, 440.0))], "api")
    assert transcribe.calls == 2


def test_a_clip_without_samples_is_not_kept(model):
    speech = user(speech=tone(1.0, 440.0)).speech
    model.encode_media([Message("user", speech=speech)], "api")
    frames_only = Message("user", speech=type(speech)(np.zeros(0, np.float32), speech.features))
    model.media_cache.clear()
    model.encode_media([frames_only], "api")
    assert len(model.media_cache) == 0
