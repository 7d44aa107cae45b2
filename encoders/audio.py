"""Whisper's encoder as a speech feature extractor: waveform [S] -> tokens [1, T, D].

Letters: S samples at 16 kHz, M mel bins, F mel frames (100 Hz), T encoder frames (50 Hz),
D encoder width.

Whisper pads every clip to a 30 s window (1500 frames). Here only the frames of the real clip
are run, with the positional embedding sliced to their length: a 5 s question costs a sixth of
the padded window. The encoder modules are Whisper's own; only the slicing is ours.

Whisper was trained on windows that end in silence or padding: a clip that stops right at
its last word makes the decoder loop ("...water it? Hey, could you..."). Half a second of
trailing silence is appended to every clip (25 more frames), which removes those loops.
"""

import numpy as np
import torch
import torch.nn.functional as F
from whisper.audio import HOP_LENGTH, log_mel_spectrogram
from whisper.model import Whisper

from encoders.audio_io import SAMPLE_RATE, check_speech
from encoders.fingerprint import fingerprint

TRAILING_SILENCE_S = 0.5  # appended to every clip, see the module docstring
_TRAILING_SAMPLES = int(TRAILING_SILENCE_S * SAMPLE_RATE)


class AudioEncoder(torch.nn.Module):
    """Frozen Whisper encoder over the real frames of one clip; knows its own preprocessing."""

    def __init__(self, whisper: Whisper, name: str):
        super().__init__()
        self.whisper = whisper  # the decoder is kept for transcription (encoders/transcribe.py)
        self.name = name
        self.n_mels = whisper.dims.n_mels
        self.dim = whisper.dims.n_audio_state
        self.max_tokens = whisper.dims.n_audio_ctx
        self.identity = {"name": name, "fingerprint": fingerprint(whisper.encoder)}

    def num_tokens(self, num_samples: int) -> int:
        """How many feature tokens a clip of `num_samples` samples at 16 kHz becomes."""
        frames = (num_samples + self._padding(num_samples)) // HOP_LENGTH  # F
        return (frames + 1) // 2  # conv2 has stride 2, padding 1: T = ceil(F / 2)

    def _padding(self, num_samples: int) -> int:
        """Trailing silence in samples: TRAILING_SILENCE_S, less what would overflow the window."""
        window = 2 * HOP_LENGTH * self.max_tokens  # 30 s for Whisper
        return max(0, min(_TRAILING_SAMPLES, window - num_samples))

    def mel(self, waveform: np.ndarray) -> torch.Tensor:
        """[S] -> log-mel [1, M, F]: Whisper's normalisation, TRAILING_SILENCE_S appended, no 30 s padding."""
        check_speech(waveform)
        silence = np.zeros(self._padding(waveform.shape[0]), np.float32)
        padded = np.concatenate([waveform.astype(np.float32), silence])
        audio = torch.from_numpy(padded)
        return log_mel_spectrogram(audio, n_mels=self.n_mels).unsqueeze(0)

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, M, F] -> features [B, T, D] with T = ceil(F / 2) <= max_tokens."""
        encoder = self.whisper.encoder
        x = F.gelu(encoder.conv1(mel))  # B, M, F -> B, D, F
        x = F.gelu(encoder.conv2(x))  # B, D, F -> B, D, T
        x = x.permute(0, 2, 1)  # B, D, T -> B, T, D
        if x.shape[1] > self.max_tokens:
            raise ValueError(
                f"audio is {x.shape[1]} frames; Whisper takes at most {self.max_tokens}"
            )
        x = x + encoder.positional_embedding[: x.shape[1]]
        for block in encoder.blocks:
            x = block(x)
        return encoder.ln_post(x)

    def encode(self, waveform: np.ndarray) -> torch.Tensor:
        """[S] at 16 kHz -> features [1, T, D]."""
        features = self(self.mel(waveform))
        expected = self.num_tokens(waveform.shape[0])
        if features.shape[1] != expected:
            raise RuntimeError(f"expected {expected} audio tokens, got {features.shape[1]}")
        return features
