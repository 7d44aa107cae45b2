"""Hands-free listening: the energy-based detector ends a question at a pause, and only then."""

import numpy as np
import pytest

from app.vad import (
    END_SILENCE_S,
    MAX_QUESTION_S,
    PRE_ROLL_S,
    TAIL_S,
    VoiceActivityDetector,
    microphone_samples,
)
from encoders.audio_io import SAMPLE_RATE
from tests.tiny import tone


def silence(seconds: float, level: float = 0.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, level, round(seconds * SAMPLE_RATE))
    return noise.astype(np.float32)


def feed(detector: VoiceActivityDetector, audio: np.ndarray, chunk_s: float = 0.5) -> list:
    """Push audio in microphone-sized chunks, as the browser streams it."""
    step = round(chunk_s * SAMPLE_RATE)
    ended = []
    for start in range(0, len(audio), step):
        ended += detector.push(audio[start : start + step])
    return ended


def test_a_question_ends_after_a_pause_and_keeps_its_onset():
    detector = VoiceActivityDetector()
    speech = tone(1.5, amplitude=0.3)
    ended = feed(detector, np.concatenate([silence(1.0, 0.001), speech, silence(1.5, 0.001)]))
    assert len(ended) == 1
    seconds = len(ended[0]) / SAMPLE_RATE
    assert 1.5 <= seconds <= 1.5 + PRE_ROLL_S + TAIL_S + 0.1
    assert not detector.hearing


def test_no_question_before_the_pause_is_long_enough():
    detector = VoiceActivityDetector()
    assert (
        feed(detector, np.concatenate([tone(1.0, amplitude=0.3), silence(END_SILENCE_S - 0.2)]))
        == []
    )
    assert detector.hearing  # still in the question
    assert len(feed(detector, silence(0.5))) == 1


def test_two_questions_with_a_pause_between_are_two():
    detector = VoiceActivityDetector()
    audio = np.concatenate(
        [tone(0.8, amplitude=0.3), silence(1.2), tone(0.8, amplitude=0.3), silence(1.2)]
    )
    assert len(feed(detector, audio)) == 2


@pytest.mark.parametrize(
    "audio",
    [
        silence(3.0),  # nothing
        silence(3.0, level=0.004),  # a quiet room (-48 dBFS)
        np.concatenate([tone(0.06, amplitude=0.5), silence(2.0)]),  # a click
    ],
    ids=["silence", "room-noise", "click"],
)
def test_silence_noise_and_clicks_are_not_questions(audio):
    assert feed(VoiceActivityDetector(), audio) == []


def test_speech_over_steady_noise_is_heard():
    detector = VoiceActivityDetector()
    noise = 0.005
    audio = np.concatenate(
        [
            silence(1.0, noise),
            tone(1.0, amplitude=0.2) + silence(1.0, noise, seed=1),
            silence(1.5, noise, seed=2),
        ]
    )
    assert len(feed(detector, audio)) == 1


def test_a_question_that_never_pauses_is_cut_before_whisper_limit():
    ended = feed(VoiceActivityDetector(), tone(MAX_QUESTION_S + 3.0, amplitude=0.3))
    assert len(ended) == 1
    assert len(ended[0]) / SAMPLE_RATE <= MAX_QUESTION_S + 0.1


def test_reset_forgets_a_question_in_progress():
    detector = VoiceActivityDetector()
    feed(detector, tone(1.0, amplitude=0.3))
    detector.reset()
    assert feed(detector, silence(1.5)) == []


def test_microphone_chunks_become_16khz_mono_float():
    rate, seconds = 48_000, 0.5
    left = (tone(seconds, rate=rate, amplitude=0.5) * 32767).astype(np.int16)
    stereo = np.stack([left, left], axis=1)  # S, C
    samples = microphone_samples(rate, stereo)
    assert samples.dtype == np.float32
    assert samples.shape == (round(seconds * SAMPLE_RATE),)
    assert 0.45 < float(np.abs(samples).max()) <= 1.0
