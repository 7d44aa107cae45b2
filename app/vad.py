"""Hands-free listening: energy-based voice-activity detection over streamed microphone chunks.

A question starts at the first voiced frame and ends after END_SILENCE_S of silence; it is
kept when it holds at least MIN_SPEECH_S of voiced frames (a cough or a click is not a
question). A frame is voiced when its RMS is above SPEECH_RMS_MIN and SPEECH_OVER_NOISE times
the noise floor, a slow average of the unvoiced frames. Nothing here knows about Gradio.
"""

import numpy as np

from encoders.audio_io import MAX_SECONDS, SAMPLE_RATE, resample

FRAME_S = 0.03  # analysis frame: 480 samples at 16 kHz
END_SILENCE_S = 0.8  # silence that ends a question
MIN_SPEECH_S = 0.25  # voiced time a question needs
PRE_ROLL_S = 0.3  # audio kept from before the first voiced frame (soft onsets)
TAIL_S = 0.3  # silence kept after the last voiced frame
MAX_QUESTION_S = MAX_SECONDS - 2.0  # a question is cut here: Whisper reads 30 s at most
SPEECH_RMS_MIN = 0.01  # -40 dBFS: quieter frames are never speech
SPEECH_OVER_NOISE = 3.0  # voiced: RMS above this many times the noise floor (~ +10 dB)
NOISE_FLOOR_START = 0.002  # noise floor before any unvoiced frame was seen
NOISE_ADAPT = 0.05  # weight of each unvoiced frame in the noise floor's moving average

FRAME = round(FRAME_S * SAMPLE_RATE)  # samples per frame


class VoiceActivityDetector:
    """Feed 16 kHz mono chunks with `push`; it returns each question as soon as it ended."""

    def __init__(self, end_silence_s: float = END_SILENCE_S, min_speech_s: float = MIN_SPEECH_S):
        self.end_silence_frames = round(end_silence_s / FRAME_S)
        self.min_speech_frames = round(min_speech_s / FRAME_S)
        self.noise_floor = NOISE_FLOOR_START
        self.reset()

    def reset(self) -> None:
        """Forget any question in progress (the noise floor is kept)."""
        self.pending = np.zeros(0, np.float32)  # samples not yet filling a frame
        self.frames: list[np.ndarray] = []  # the question so far, or the pre-roll when idle
        self.voiced = 0  # voiced frames in the question so far
        self.silent = 0  # unvoiced frames since the last voiced one
        self.in_question = False

    @property
    def hearing(self) -> bool:
        """True while a question is being spoken."""
        return self.in_question and self.voiced >= self.min_speech_frames

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """samples [S] float32 at 16 kHz -> the questions that ended in them, each [S'] float32."""
        samples = np.concatenate([self.pending, samples.astype(np.float32)])
        whole = len(samples) // FRAME * FRAME
        self.pending = samples[whole:]
        ended = []
        for frame in samples[:whole].reshape(-1, FRAME):  # S -> F, FRAME
            question = self.step(frame)
            if question is not None:
                ended.append(question)
        return ended

    def step(self, frame: np.ndarray) -> np.ndarray | None:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        voiced = rms > max(SPEECH_RMS_MIN, SPEECH_OVER_NOISE * self.noise_floor)
        if not voiced:
            self.noise_floor += NOISE_ADAPT * (rms - self.noise_floor)
        self.frames.append(frame)
        if not self.in_question:
            if voiced:
                self.in_question, self.voiced, self.silent = True, 1, 0
            else:
                del self.frames[: -round(PRE_ROLL_S / FRAME_S)]  # keep only the pre-roll
            return None
        self.voiced += voiced
        self.silent = 0 if voiced else self.silent + 1
        too_long = len(self.frames) * FRAME_S >= MAX_QUESTION_S
        if self.silent < self.end_silence_frames and not too_long:
            return None
        frames, voiced_frames, silent = self.frames, self.voiced, self.silent
        self.frames, self.voiced, self.silent, self.in_question = [], 0, 0, False
        if voiced_frames < self.min_speech_frames:
            return None  # a click or a cough
        keep = len(frames) - max(silent - round(TAIL_S / FRAME_S), 0)
        return np.concatenate(frames[:keep])


def microphone_samples(rate: int, data: np.ndarray) -> np.ndarray:
    """A streamed microphone chunk (rate, int16 or float samples [S] or [S, C]) -> [S'] float32
    mono at 16 kHz, values in [-1, 1]."""
    samples = np.asarray(data)
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples.astype(np.float32) / np.iinfo(samples.dtype).max
    samples = samples.astype(np.float32)
    if samples.ndim == 2:  # S, C -> S
        samples = samples.mean(axis=1)
    return resample(samples, int(rate), SAMPLE_RATE)
