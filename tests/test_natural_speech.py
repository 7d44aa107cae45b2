"""The natural speech sets: hand-written questions, split in two halves, said by held-out
voices, the neural one never trained on."""

import numpy as np
import pytest

from fusion.training import natural_speech
from fusion.training.align_data import ALIGN_VOICES
from fusion.training.natural_speech import NaturalClip, build_natural_set, natural_questions
from fusion.training.questions import all_questions
from fusion.training.voices import NEURAL_VOICE, TRAIN_VOICES, synthesize


def test_the_halves_are_disjoint_and_cover_every_question():
    tune, evaluation = natural_questions("tune"), natural_questions("eval")
    assert not set(tune) & set(evaluation)
    assert len(tune) + len(evaluation) >= 200 and min(len(tune), len(evaluation)) >= 80
    with pytest.raises(ValueError, match="split must be one of"):
        natural_questions("train")


def test_no_natural_question_is_a_training_question():
    templates = {q.lower() for q in all_questions()}
    natural = natural_questions("tune") + natural_questions("eval")
    assert not {q.lower() for q in natural} & templates


def test_the_neural_voice_is_held_out_of_every_training_list():
    assert NEURAL_VOICE.held_out and NEURAL_VOICE in natural_speech.NATURAL_VOICES
    assert all(v.engine != "piper" for v in TRAIN_VOICES + ALIGN_VOICES)


def test_the_neural_voice_speaks_at_16_khz():
    waveform = synthesize("What time is it?", NEURAL_VOICE)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert 0.5 < waveform.shape[0] / 16_000 < 4.0  # a short question, at 16 kHz
    assert (
        0.01 < float(np.abs(waveform).max()) < 1.5
    )  # speech, not silence (resampling may overshoot 1)


def test_a_built_set_is_cached_and_reloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(natural_speech, "NATURAL_VOICES", [NEURAL_VOICE])
    clips = build_natural_set(tmp_path / "natural.pt", "tune", [NEURAL_VOICE], limit=2)
    assert [c.text for c in clips] == natural_questions("tune")[:2]
    again = build_natural_set(tmp_path / "natural.pt", "tune", [NEURAL_VOICE], limit=2)
    assert isinstance(again[0], NaturalClip) and np.array_equal(again[0].samples, clips[0].samples)
    assert again[0].waveform.dtype == np.float32
