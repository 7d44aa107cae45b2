"""Hands-free listening: Silero VAD ends a question at a pause, and never takes noise for one
(a fan, a crowd's babble, a tone, a click), however loud it gets."""

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
from tests.noise import BABBLE, at_dbfs, babble, fan, silence
from tests.tiny import said, tone

QUESTION = "What does that sign say?"


def feed(detector: VoiceActivityDetector, audio: np.ndarray, chunk_s: float = 0.5) -> list:
    """Push audio in microphone-sized chunks, as the browser streams it."""
    step = round(chunk_s * SAMPLE_RATE)
    ended = []
    for start in range(0, len(audio), step):
        ended += detector.push(audio[start : start + step])
    return ended


def test_a_question_ends_after_a_pause_and_keeps_its_onset():
    detector = VoiceActivityDetector()
    speech = at_dbfs(said(QUESTION), -20)
    ended = feed(detector, np.concatenate([silence(1.0, 0.001), speech, silence(1.5, 0.001)]))
    assert len(ended) == 1
    seconds, spoken = len(ended[0]) / SAMPLE_RATE, len(speech) / SAMPLE_RATE
    assert spoken - 0.4 <= seconds <= spoken + PRE_ROLL_S + TAIL_S + 0.1
    assert not detector.hearing


def test_once_its_pause_passes_the_tail_the_question_is_settled_as_it_will_end():
    detector = VoiceActivityDetector()
    audio = np.concatenate([at_dbfs(said(QUESTION), -20), silence(1.5, 0.001)])
    settled, ended = [], []
    for start in range(0, len(audio), 1024):
        ended += detector.push(audio[start : start + 1024])  # the page's 64 ms chunks
        if not ended:
            settled.append(detector.settled())
    final = []  # the settles of the pause that ended it: the last run of them
    for clip in settled:
        final = final + [clip] if clip is not None else []
    assert settled[0] is None and final, "never settled before the question ended"
    assert len(ended) == 1
    for clip in final:  # from TAIL_S into the pause to its end: the very samples it ends with
        assert np.array_equal(clip, ended[0])
    for clip in (clip for clip in settled if clip is not None):  # also a pause it spoke on
        assert np.array_equal(clip, ended[0][: len(clip)])  # after: what was said so far
    assert detector.settled() is None  # between questions


def test_no_question_before_the_pause_is_long_enough():
    detector = VoiceActivityDetector()
    speech = at_dbfs(said(QUESTION), -20)
    assert feed(detector, np.concatenate([speech, silence(END_SILENCE_S - 0.3)])) == []
    assert detector.hearing  # still in the question
    assert len(feed(detector, silence(0.8))) == 1


def test_two_questions_with_a_pause_between_are_two():
    speech = at_dbfs(said(QUESTION), -20)
    audio = np.concatenate([speech, silence(1.5), speech, silence(1.5)])
    assert len(feed(VoiceActivityDetector(), audio)) == 2


@pytest.mark.parametrize(
    "audio",
    [
        silence(3.0),  # nothing
        silence(3.0, level=0.004),  # a quiet room (-48 dBFS)
        np.concatenate([tone(0.06, amplitude=0.5), silence(2.0)]),  # a click
        tone(3.0, amplitude=0.3),  # a beep
    ],
    ids=["silence", "room-noise", "click", "beep"],
)
def test_silence_noise_clicks_and_beeps_are_not_questions(audio):
    assert feed(VoiceActivityDetector(), audio) == []


@pytest.mark.parametrize("noise", [fan, babble], ids=["fan", "babble"])
def test_a_20_db_step_in_noise_starts_no_question(noise):
    quiet = at_dbfs(silence(3.0, 1.0), -55)
    audio = np.concatenate([quiet, at_dbfs(noise(20.0), -35)])  # +20 dB, nobody speaking
    detector = VoiceActivityDetector()
    assert feed(detector, audio) == [] and not detector.hearing


def test_speech_over_a_fan_is_heard():
    speech = at_dbfs(said(QUESTION), -20)
    room = at_dbfs(fan(len(speech) / SAMPLE_RATE + 4.0), -35)
    audio = room.copy()
    audio[SAMPLE_RATE * 2 : SAMPLE_RATE * 2 + len(speech)] += speech
    assert len(feed(VoiceActivityDetector(), audio)) == 1


def test_a_question_that_never_pauses_is_cut_before_whisper_limit():
    talk = np.concatenate([at_dbfs(said(text), -20) for text in BABBLE * 3])
    ended = feed(
        VoiceActivityDetector(end_silence_s=2.0), talk[: round((MAX_QUESTION_S + 3) * SAMPLE_RATE)]
    )
    assert len(ended) >= 1
    assert all(len(q) / SAMPLE_RATE <= MAX_QUESTION_S + 0.1 for q in ended)


def test_reset_forgets_a_question_in_progress():
    detector = VoiceActivityDetector()
    feed(detector, at_dbfs(said(QUESTION), -20))
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
