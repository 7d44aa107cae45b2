"""Rooms to listen in: silence, a fan, a canteen's babble, at a chosen level (16 kHz float32).
Used by the voice-activity tests and by `make bench`."""

import numpy as np

from encoders.audio_io import SAMPLE_RATE
from tests.tiny import said

BABBLE = (
    "Where did I leave my keys this morning?", "The weather will be sunny all day.",
    "Can you tell me the time please?", "I think we should go to the park later.",
    "My brother lives in a small town by the sea.", "Turn left at the next corner.",
)  # fmt: skip


def silence(seconds: float, level: float = 0.0, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, level, round(seconds * SAMPLE_RATE))
    return noise.astype(np.float32)


def at_dbfs(audio: np.ndarray, dbfs: float) -> np.ndarray:
    return (audio / np.sqrt(np.mean(audio**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def fan(seconds: float, seed: int = 0) -> np.ndarray:
    """A fan: low-passed noise with a 100 Hz hum."""
    count = round(seconds * SAMPLE_RATE)
    walk = np.cumsum(np.random.default_rng(seed).normal(size=count))
    rumble = walk - np.convolve(walk, np.ones(400) / 400, mode="same")
    hum = 0.3 * rumble.std() * np.sin(2 * np.pi * 100 * np.arange(count) / SAMPLE_RATE)
    return (rumble + hum).astype(np.float32)


def babble(seconds: float, seed: int = 0) -> np.ndarray:
    """A canteen: about 75 people talking at once, as the babble of noise corpora (NOISEX-92
    recorded 100 people in a canteen); no one voice stands out."""
    rng = np.random.default_rng(seed)
    crowd = np.zeros(round(seconds * SAMPLE_RATE), np.float32)
    for index in range(round(30 * seconds)):  # ~75 voices at any time
        voice = said(BABBLE[index % len(BABBLE)])
        start = rng.integers(0, len(crowd) - len(voice))
        crowd[start : start + len(voice)] += voice
    return crowd
