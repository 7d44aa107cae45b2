"""Speech made offline: espeak-ng and flite voices, speeds, pitches, noise and tempo.

Some voices are kept out of training entirely, so evaluation hears voices the adapter has
never heard.
"""

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.audio_io import SAMPLE_RATE, load_audio


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng" or "flite"
    name: str  # espeak-ng voice (with +variant) or flite voice
    held_out: bool = False


TRAIN_VOICES = [
    Voice("espeak-ng", "en"), Voice("espeak-ng", "en-us"), Voice("espeak-ng", "en+m3"),
    Voice("espeak-ng", "en-us+f2"), Voice("espeak-ng", "en-gb-scotland"), Voice("espeak-ng", "en+f4"),
    Voice("espeak-ng", "en-gb-x-rp"), Voice("flite", "kal16"), Voice("flite", "awb"),
]  # fmt: skip
HELD_OUT_VOICES = [
    Voice("espeak-ng", "en-us+m5", held_out=True), Voice("espeak-ng", "en+f3", held_out=True),
    Voice("flite", "rms", held_out=True), Voice("flite", "slt", held_out=True),
]  # fmt: skip


@dataclass(frozen=True)
class Delivery:
    speed: int = 160  # espeak-ng words per minute
    pitch: int = 50  # espeak-ng pitch 0..99
    tempo: float = 1.0  # sox tempo factor, applied to every engine
    noise_snr_db: float | None = None  # white noise added at this signal-to-noise ratio


def random_delivery(rng: random.Random) -> Delivery:
    return Delivery(
        speed=rng.randint(130, 190),
        pitch=rng.randint(30, 70),
        tempo=rng.choice([1.0, 1.0, 0.9, 1.1]),
        noise_snr_db=rng.choice([None, None, 30.0, 20.0]),
    )


def synthesize(
    text: str, voice: Voice, delivery: Delivery = Delivery(), seed: int = 0
) -> np.ndarray:
    """Speak `text` -> float32 [S] at 16 kHz (read through the project's own audio reader)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, final = Path(tmp) / "raw.wav", Path(tmp) / "final.wav"
        if voice.engine == "espeak-ng":
            command = [
                "espeak-ng",
                "-v",
                voice.name,
                "-s",
                str(delivery.speed),
                "-p",
                str(delivery.pitch),
            ]
            subprocess.run([*command, "-w", str(raw), text], check=True, capture_output=True)
        elif voice.engine == "flite":
            subprocess.run(
                ["flite", "-voice", voice.name, "-t", text, "-o", str(raw)],
                check=True,
                capture_output=True,
            )
        else:
            raise ValueError(f"unknown speech engine {voice.engine!r}")
        if delivery.tempo != 1.0 and shutil.which("sox"):
            subprocess.run(
                ["sox", str(raw), str(final), "tempo", str(delivery.tempo)],
                check=True,
                capture_output=True,
            )
        else:
            final = raw
        waveform = load_audio(final)
    if delivery.noise_snr_db is not None:
        noise_rng = np.random.default_rng(seed)
        power = float(np.mean(waveform**2))
        noise = noise_rng.normal(
            0.0, np.sqrt(power / 10 ** (delivery.noise_snr_db / 10)), waveform.shape
        )
        waveform = np.clip(waveform + noise, -1.0, 1.0).astype(np.float32)
    assert waveform.dtype == np.float32 and waveform.ndim == 1 and SAMPLE_RATE == 16_000
    return waveform
