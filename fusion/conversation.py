"""A conversation: messages whose user turns may hold photos and speech.

Encoder features, transcripts and the text read in a photo are computed once per medium and
kept on it, so a follow-up question re-uses the photo of an earlier turn without encoding (or
reading) it again. A conversation belongs to one person's session; nothing here is shared
between sessions.
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image

from encoders.text_reader import TextLine


@dataclass(eq=False)
class Photo:
    image: Image.Image  # RGB, as read by encoders.image_io.load_image
    features: torch.Tensor | None = None  # [1, N, C] vision tokens, filled on first use
    text_lines: list[TextLine] | None = None  # its text, in reading order, once asked to read


@dataclass(eq=False)
class Speech:
    waveform: np.ndarray  # [S] float32 mono at 16 kHz, as read by encoders.audio_io.load_audio
    features: torch.Tensor | None = None  # [1, T, C] Whisper encoder frames, filled on first use
    transcript: str | None = None  # what was said, filled on first use
    language: str | None = None
    # the LM tokens it was read as (speech_reading.py), filled on first use
    reading: list[int] | None = None
    heard: tuple[str, ...] = ()  # Whisper's readings of it, its best (transcript) first
    heard_scores: tuple[float, ...] = ()  # the beam's log-probability of each (): not known


@dataclass(eq=False)
class Message:
    role: Literal["system", "user", "assistant"]
    text: str = ""
    photos: list[Photo] = field(default_factory=list)
    speech: Speech | None = None

    def record(self) -> str:
        """The message as text: what was typed, plus the transcript of what was said."""
        said = f"(said) {self.speech.transcript}" if self.speech and self.speech.transcript else ""
        return "\n".join(part for part in (said, self.text) if part)


def user(
    text: str = "", photos: list[Image.Image] = (), speech: np.ndarray | None = None
) -> Message:
    """A user message from raw inputs (already read and checked by encoders' readers)."""
    return Message(
        role="user",
        text=text,
        photos=[Photo(image) for image in photos],
        speech=Speech(speech) if speech is not None else None,
    )
