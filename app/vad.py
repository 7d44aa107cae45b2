"""Hands-free listening: voice-activity detection over streamed microphone chunks, with Silero.

Silero VAD (its ONNX model from the silero-vad wheel, run by onnxruntime) gives each 32 ms
frame a probability of speech. Unlike a loudness threshold it does not take a fan, a street
or a tone for a voice, however loud they get. A question starts at the first frame above
START_PROBABILITY and ends after END_SILENCE_S below END_PROBABILITY (Silero's own
hysteresis), or sooner when the caller knows its words are complete (`end_now`, after a
shorter pause: app/web_session.py); it is kept when it holds at least MIN_SPEECH_S of
speech frames (a cough or a click is not a question). The model is loaded once per process;
each listener keeps its own recurrent state. Nothing here knows about Gradio.

The silero-vad package is not imported: its import sets torch's thread count to 1 for the
whole process, which would slow the language model down.
"""

import functools

import numpy as np

from encoders.audio_io import MAX_SECONDS, SAMPLE_RATE, resample
from encoders.packaged import packaged_path

FRAME_S = 0.032  # Silero's frame: 512 samples at 16 kHz
CONTEXT = 64  # samples of the previous frame Silero sees before each frame
START_PROBABILITY = 0.5  # a frame this likely to be speech starts (or continues) a question
END_PROBABILITY = 0.35  # below this, a frame counts as silence
# A speaking wearer is close to the microphone: louder than the room. A frame counts as speech
# only when it stands ABOVE_ROOM_DB over the room's level (the ROOM_PERCENTILE of the last
# ROOM_S of frame levels, every frame counted), and a question is kept only when its speech
# stands as far above the pause that ended it: a crowd's babble, or the moment a fan or a
# crowd starts, is no question, while the wearer's voice is heard over them.
ABOVE_ROOM_DB = 6.0
ROOM_PERCENTILE = 10
ROOM_S = 3.0
END_SILENCE_S = 0.8  # silence that ends a question
MIN_SPEECH_S = 0.25  # voiced time a question needs
PRE_ROLL_S = 0.3  # audio kept from before the first voiced frame (soft onsets)
# Silence kept after the last voiced frame: the question is settled (`settled`) this far into
# its pause, and web_partial.py prepares it from then on (Whisper gets 0.5 s of silence
# appended anyway, encoders/audio.py). The natural tuning half (95 questions, neural voice, in
# quiet room noise, through this detector), readings typed exactly: 79 with 0.3 s, 79 with
# 0.064 s, 79 with 0.032 s (word error 3.7%, 3.1%, 3.2%; a one-off script, 2026-12-04).
TAIL_S = 0.064
MAX_QUESTION_S = MAX_SECONDS - 2.0  # a question is cut here: Whisper reads 30 s at most

FRAME = round(FRAME_S * SAMPLE_RATE)  # samples per frame


@functools.cache
def _silero():
    """Silero VAD's ONNX session, loaded once per process (~2 MB, ~50 ms)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1  # 32 ms frames: tiny work
    path = packaged_path("silero_vad", "data/silero_vad.onnx")
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class SpeechProbability:
    """Silero VAD on a stream of 512-sample frames at 16 kHz -> each frame's speech probability.
    Holds only numpy state (a web session copies it); the model is the process's (_silero)."""

    def __init__(self):
        _silero()  # load now, not on the first frame
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, CONTEXT), np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        """frame [FRAME] float32 -> probability of speech in it."""
        window = np.concatenate([self.context, frame[None].astype(np.float32)], axis=1)
        inputs = {"input": window, "state": self.state, "sr": np.array(SAMPLE_RATE, np.int64)}
        probability, self.state = _silero().run(None, inputs)
        self.context = window[:, -CONTEXT:]
        return float(probability[0, 0])


class VoiceActivityDetector:
    """Feed 16 kHz mono chunks with `push`; it returns each question as soon as it ended."""

    def __init__(self, end_silence_s: float = END_SILENCE_S, min_speech_s: float = MIN_SPEECH_S):
        self.end_silence_frames = round(end_silence_s / FRAME_S)
        self.min_speech_frames = round(min_speech_s / FRAME_S)
        self.speech = SpeechProbability()
        self.reset()

    def reset(self) -> None:
        """Forget any question in progress, and what the model heard before."""
        self.speech.reset()
        self.levels: list[float] = []  # the last ROOM_S of frame RMS levels
        self.pending = np.zeros(0, np.float32)  # samples not yet filling a frame
        self.frames: list[np.ndarray] = []  # the question so far, or the pre-roll when idle
        self.voiced = 0  # voiced frames in the question so far
        self.voiced_levels: list[float] = []  # their RMS levels
        self.silent = 0  # unvoiced frames since the last voiced one
        self.in_question = False
        self.last_pause_s = 0.0  # the pause that ended the last question

    @property
    def silent_s(self) -> float:
        """Seconds since the last voiced frame of the question being spoken (0 between them)."""
        return self.silent * FRAME_S if self.in_question else 0.0

    @property
    def spoken_frames(self) -> int:
        """Frames of the question being spoken up to its last voiced one (so_far() holds them
        and the pause since)."""
        return len(self.frames) - self.silent if self.in_question else 0

    @property
    def hearing(self) -> bool:
        """True while a question is being spoken."""
        return self.in_question and self.voiced >= self.min_speech_frames

    def so_far(self) -> np.ndarray:
        """The question being spoken, from its pre-roll to now, [S] float32 (empty between
        questions)."""
        if not self.in_question or not self.frames:
            return np.zeros(0, np.float32)
        return np.concatenate(self.frames)

    @property
    def voiced_s(self) -> float:
        """Seconds of speech in the question being spoken so far (0 between questions)."""
        return self.voiced * FRAME_S if self.in_question else 0.0

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
        probability = self.speech(frame)
        threshold = END_PROBABILITY if self.in_question else START_PROBABILITY
        level = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        self.levels = [*self.levels[-(round(ROOM_S / FRAME_S) - 1) :], level]
        room = float(np.percentile(self.levels, ROOM_PERCENTILE))
        voiced = probability >= threshold and level >= room * 10 ** (ABOVE_ROOM_DB / 20)
        self.frames.append(frame)
        if not self.in_question:
            if voiced:
                self.in_question, self.voiced, self.silent = True, 1, 0
                self.voiced_levels = [level]
            else:
                del self.frames[: -round(PRE_ROLL_S / FRAME_S)]  # keep only the pre-roll
            return None
        self.voiced += voiced
        if voiced:
            self.voiced_levels.append(level)
        self.silent = 0 if voiced else self.silent + 1
        too_long = len(self.frames) * FRAME_S >= MAX_QUESTION_S
        if self.silent < self.end_silence_frames and not too_long:
            return None
        return self._end()

    def settled(self) -> np.ndarray | None:
        """The question being spoken as it will be kept if the pause under way ends it, [S]
        float32: once that pause has passed TAIL_S, what `_end` returns stays the same (up to
        TAIL_S after the last voiced frame) unless the wearer speaks again. None before that,
        or between questions. Work done on it meanwhile is work done on the question
        (app/web_partial.py)."""
        if not self.in_question or self.silent < round(TAIL_S / FRAME_S):
            return None
        return np.concatenate(self.frames[: self._kept()])

    def _kept(self) -> int:
        """How many of the question's frames it keeps: up to TAIL_S after its last voiced one."""
        return len(self.frames) - max(self.silent - round(TAIL_S / FRAME_S), 0)

    def end_now(self) -> np.ndarray | None:
        """End the question being spoken at this point of its pause -> the question, or None
        (none is being spoken, or it is no question: too little voice, or the room's noise)."""
        return self._end() if self.in_question else None

    def _end(self) -> np.ndarray | None:
        frames, voiced_frames, silent, keep = self.frames, self.voiced, self.silent, self._kept()
        spoken_level = float(np.median(self.voiced_levels))
        room = float(np.percentile(self.levels, ROOM_PERCENTILE))
        self.frames, self.voiced, self.silent, self.in_question = [], 0, 0, False
        self.last_pause_s = silent * FRAME_S
        if voiced_frames < self.min_speech_frames:
            return None  # a click or a cough
        after = float(np.median(self.levels[-silent:])) if silent else room  # the pause's level
        if spoken_level < max(room, after) * 10 ** (ABOVE_ROOM_DB / 20):
            return None  # the room got louder (a crowd began to talk), not the wearer
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
