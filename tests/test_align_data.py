"""The alignment speech set: unseen voices and questions stay unseen, texts, pitch, the cache."""

import random
import shutil
import subprocess

import numpy as np
import pytest
import torch

from fusion.training import align_data
from fusion.training.align_data import (
    MAX_WORDS,
    MIN_WORDS,
    alignment_texts,
    build_align_set,
    is_plain_sentence,
    text_pools,
)
from fusion.training.questions import is_held_out, split_questions
from fusion.training.voices import (
    ALIGN_LANGUAGES,
    ALIGN_VARIANTS,
    ALIGN_VOICES,
    HELD_OUT_VOICES,
    Delivery,
    Voice,
    random_align_delivery,
    synthesize,
    variant_of,
)

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")


def test_align_voices_hold_no_held_out_voice_nor_its_variant():
    held_out_variants = {variant_of(v) for v in HELD_OUT_VOICES} - {None}
    held_out_flite = {v.name for v in HELD_OUT_VOICES if v.engine == "flite"}
    assert held_out_variants == {"m5", "f3"} and held_out_flite == {"rms", "slt"}
    for voice in ALIGN_VOICES:
        assert not voice.held_out
        assert variant_of(voice) not in held_out_variants | {"male5", "female3"}, voice
        assert voice.engine != "flite" or voice.name not in held_out_flite, voice
    plain = {(v.engine, v.name) for v in ALIGN_VOICES}
    assert not plain & {(v.engine, v.name) for v in HELD_OUT_VOICES}
    assert len(plain) == len(ALIGN_VOICES) > 200


def test_variant_of():
    assert variant_of(Voice("espeak-ng", "en-us+m5")) == "m5"
    assert variant_of(Voice("espeak-ng", "en-gb-x-rp")) is None
    assert variant_of(Voice("flite", "kal")) is None


@needs_espeak
def test_align_voices_name_accents_and_variants_espeak_ng_has():
    """espeak-ng falls back to its default voice, silently, for a name it does not know."""

    def listed(argument: str, column: int) -> set[str]:
        command = ["espeak-ng", f"--voices={argument}"]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return {line.split()[column] for line in out.splitlines()[1:]}

    variant_files = {name.removeprefix("!v/") for name in listed("variant", 4)}
    assert set(ALIGN_VARIANTS) <= variant_files, set(ALIGN_VARIANTS) - variant_files
    assert set(ALIGN_LANGUAGES) - {"en"} <= listed("en", 1)


def test_alignment_texts_never_hold_a_held_out_question():
    held_out = split_questions()[1]
    texts = alignment_texts(0, 3000)
    assert not [t for t in texts if is_held_out(t)]
    lowered = [t.lower() for t in texts]
    for question in held_out:
        core = question.rstrip(".?!").lower()
        assert not [t for t in lowered if core in t], question


def test_alignment_texts_are_deterministic_plain_and_mixed():
    texts = alignment_texts(0, 1000)
    assert texts == alignment_texts(0, 1000)
    assert texts != alignment_texts(1, 1000)
    assert len(texts) == 1000
    for text in texts:
        assert text.isascii() and is_plain_sentence(text), text
        assert MIN_WORDS <= len(text.split()) <= MAX_WORDS, text
    pools = text_pools()
    for name, pool in pools.items():
        if pool:  # fortunes only where Debian's fortunes-min is installed
            assert set(pool) & set(texts), name
    assert len(set(texts)) > 800  # a source repeats only after all its texts


def test_plain_sentence_filter():
    assert is_plain_sentence("Avoid reality at all costs.")
    assert not is_plain_sentence("Go.")  # too short
    assert not is_plain_sentence("Bank error in your favor.  Collect $200.")
    assert not is_plain_sentence("After your lover has gone you will still have PEANUT BUTTER!")
    assert not is_plain_sentence("See http://example.com for more.")
    assert not is_plain_sentence(" ".join(["word"] * 17) + ".")


def test_without_fortunes_the_questions_remain_and_it_is_said_once(tmp_path, capsys):
    missing = tmp_path / "no-fortunes"
    texts = alignment_texts(0, 200, fortunes_dir=missing)
    alignment_texts(0, 200, fortunes_dir=missing)
    assert len(texts) == 200 and all(is_plain_sentence(t) for t in texts)
    assert capsys.readouterr().err.count("no-fortunes") == 1


def test_random_align_delivery_shifts_flite_pitch_mostly():
    rng = random.Random(0)
    flite = [random_align_delivery(rng, Voice("flite", "kal")) for _ in range(200)]
    espeak = [random_align_delivery(rng, Voice("espeak-ng", "en")) for _ in range(200)]
    flite_shifted = sum(d.pitch_cents != 0 for d in flite)
    espeak_shifted = sum(d.pitch_cents != 0 for d in espeak)
    assert flite_shifted > 120 and espeak_shifted < 90
    assert all(-400 <= d.pitch_cents <= 400 for d in flite + espeak)


def spectral_centroid(waveform: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(waveform)) ** 2
    frequencies = np.fft.rfftfreq(waveform.shape[0], 1 / 16_000)
    return float((power * frequencies).sum() / power.sum())


@needs_espeak
@needs_sox
def test_pitch_shift_raises_and_lowers_the_voice_and_combines_with_tempo():
    voice, text = Voice("espeak-ng", "en"), "Where did I put my glasses?"
    plain = synthesize(text, voice)
    up = synthesize(text, voice, Delivery(pitch_cents=400))
    down = synthesize(text, voice, Delivery(pitch_cents=-400))
    faster_up = synthesize(text, voice, Delivery(tempo=1.25, pitch_cents=400))
    assert abs(up.shape[0] - plain.shape[0]) < 0.02 * plain.shape[0]  # same length
    assert spectral_centroid(down) < spectral_centroid(plain) < spectral_centroid(up)
    assert faster_up.shape[0] < 0.85 * plain.shape[0]
    assert spectral_centroid(faster_up) > spectral_centroid(plain)


@needs_flite
@needs_sox
def test_pitch_shift_applies_to_flite():
    plain = synthesize("Is there a lamp here?", Voice("flite", "kal"))
    up = synthesize("Is there a lamp here?", Voice("flite", "kal"), Delivery(pitch_cents=300))
    assert spectral_centroid(up) > spectral_centroid(plain)


def test_build_align_set_skips_failed_and_long_clips(model, tmp_path, monkeypatch, capsys):
    texts = alignment_texts(0, 5)

    def fake_synthesize(text, voice, delivery, seed):
        if text == texts[1]:
            raise subprocess.CalledProcessError(1, ["espeak-ng"])
        seconds = 11.0 if text == texts[2] else 1.0
        return np.random.default_rng(seed).normal(0, 0.1, int(seconds * 16_000)).astype(np.float32)

    monkeypatch.setattr(align_data, "synthesize", fake_synthesize)
    examples = build_align_set(model, tmp_path / "align.pt", 5)
    assert [e.text for e in examples] == [texts[0], *texts[3:]]
    assert "1 failed synthesis, 1 over 10 s" in capsys.readouterr().err
    assert all(e.answer_ids == [] and e.features.dtype == torch.float16 for e in examples)
    assert examples[0].features.shape == (model.audio.num_tokens(16_000), model.audio.dim)


@needs_espeak
@needs_flite
def test_build_align_set_caches_real_clips(model, tmp_path, monkeypatch):
    path = tmp_path / "align.pt"
    built = build_align_set(model, path, 3, seed=0)
    assert [e.text for e in built] == alignment_texts(0, 3)
    assert all(e.answer_ids == [] and e.features.dtype == torch.float16 for e in built)

    monkeypatch.setattr(align_data, "synthesize", None)  # a rebuild would fail: it must load
    loaded = build_align_set(model, path, 3, seed=0)
    assert [e.text for e in loaded] == [e.text for e in built]
    assert [e.voice for e in loaded] == [e.voice for e in built]
    assert all(torch.equal(a.features, b.features) for a, b in zip(loaded, built))
