"""Natural spoken questions: hand-written everyday questions said by held-out voices.

The questions (assets/eval/spoken_questions.txt) were written by people, not generated from
the training templates (questions.py), and no training set holds them. They are split in two
halves by a hash of the text: "tune" (choosing settings such as how a clip is read) and
"eval" (the figures `lunettes eval` prints). Both are said by:

- NEURAL_VOICE, Piper's en_US joe: a neural, human-like voice, never used for training, at
  its own pace;
- one robotic held-out espeak-ng voice (en-us+m5), at a random speed and pitch.

Each clip keeps its waveform (16-bit, 16 kHz), so Whisper can be run on it in any way.
Piper samples noise as it speaks (VITS), so a set built again sounds slightly different: the
cached set is the one every reader and every run of `lunettes eval` hears.
"""

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fusion.training.voices import NEURAL_VOICE, Delivery, Voice, random_delivery, synthesize

QUESTIONS_FILE = Path(__file__).resolve().parents[2] / "assets" / "eval" / "spoken_questions.txt"
ROBOTIC_VOICE = Voice("espeak-ng", "en-us+m5", held_out=True)
NATURAL_VOICES = [NEURAL_VOICE, ROBOTIC_VOICE]
SPLITS = ("tune", "eval")


@dataclass
class NaturalClip:
    text: str  # what was said (also typed, for the answer comparison)
    voice: str  # the voice's name
    samples: np.ndarray  # [S] int16 at 16 kHz

    @property
    def waveform(self) -> np.ndarray:
        """[S] float32 in -1..1, as encoders.audio_io reads audio."""
        return self.samples.astype(np.float32) / 32768.0


def natural_questions(split: str) -> list[str]:
    """The hand-written questions of one half, in file order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    lines = QUESTIONS_FILE.read_text().splitlines()
    questions = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [q for q in questions if SPLITS[_half(q)] == split]


def _half(text: str) -> int:
    return hashlib.sha256(text.encode()).digest()[0] % 2


def build_natural_set(
    path: Path, split: str, voices: list[Voice] = NATURAL_VOICES, limit: int | None = None
) -> list[NaturalClip]:
    """Load the cached clips at `path`, or synthesize and cache them."""
    if path.is_file():
        return [NaturalClip(**item) for item in torch.load(path, weights_only=False)]
    clips = []
    questions = natural_questions(split)[:limit]
    for index, question in enumerate(tqdm(questions, desc=f"natural speech {split}")):
        for voice in voices:
            delivery = (
                Delivery() if voice.engine == "piper" else random_delivery(random.Random(index))
            )
            waveform = synthesize(question, voice, delivery, seed=index)
            samples = (np.clip(waveform, -1.0, 1.0) * 32767).astype(np.int16)
            clips.append(NaturalClip(question, voice.name, samples))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([vars(c) for c in clips], path)
    return clips
