"""Spoken answers: text -> speech from a local engine, offline.

Engines, best first:
- piper: Piper's neural en_US joe voice (encoders/piper_voice.py), human-like, in process,
  sentence by sentence; for English-looking text, when the voice package is installed;
- flite with CMU's "slt" voice (English only);
- espeak-ng (robotic, many languages).
flite and espeak-ng run as subprocesses reading the text from a file (never as an argument,
so an answer starting with "-" is not taken for an option). Nothing is downloaded. Nothing
here knows about Gradio.
"""

import logging
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import soundfile

from encoders import piper_voice

MAX_CHARS = 1500  # longest text spoken; a longer answer is cut at a sentence end
TIMEOUT_S = 30  # per synthesis; both engines take ~10 ms per sentence
ESPEAK_VOICE = "en-us"
ESPEAK_WORDS_PER_MINUTE = 165
FLITE_VOICE = "slt"
log = logging.getLogger(__name__)


class SpeechError(RuntimeError):
    """The speech engine failed; the message says how."""


ENGINES = ("piper", "flite", "espeak-ng")
MIN_SPEED, MAX_SPEED = 0.25, 4.0


def available_engines() -> list[str]:
    found = ["piper"] if piper_voice.available() else []
    return found + [name for name in ("flite", "espeak-ng") if shutil.which(name)]


def engine_for(text: str) -> str | None:
    """The best installed engine for this text, or None when none is installed."""
    engines = available_engines()
    for english_only in ("piper", "flite"):
        if english_only in engines and _mostly_ascii(text):
            return english_only
    return "espeak-ng" if "espeak-ng" in engines else None


def warm_up() -> None:
    """Load the best engine now (Piper's voice takes ~0.3-1.3 s to load), so that the first
    answer does not wait for it. A failure is logged here, and reported by `speak`."""
    if "piper" in available_engines():
        try:
            piper_voice.voice()
        except Exception:  # onnxruntime or a missing file: speak() says which
            log.warning("loading the Piper voice failed", exc_info=True)


def speakable(text: str) -> str:
    """Answer text -> what is worth saying: no markdown marks, emoji or control characters,
    whitespace collapsed, at most MAX_CHARS (cut after the last full sentence that fits)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)  # code blocks are not read aloud
    text = re.sub(r"[*_`#>|~]+", " ", text)
    text = "".join(
        ch for ch in text if unicodedata.category(ch)[0] in "LNPZ" or ch in "\n'\"-"
    )  # letters, numbers, punctuation, spaces: no symbols (emoji) or control characters
    text = " ".join(text.split())
    if len(text) <= MAX_CHARS:
        return text
    cut = text[:MAX_CHARS]
    end = max(cut.rfind(mark) for mark in ".!?")
    return cut[: end + 1] if end > 0 else cut


def synthesise(text: str, path: Path, engine: str | None = None, speed: float = 1.0) -> float:
    """Say `text` into a 16-bit WAV file at `path` -> its duration in seconds (0.0: nothing
    to say). Raises SpeechError when no engine is installed or the engine fails."""
    samples, rate = speak(text, engine, speed)
    if not len(samples):
        return 0.0
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return len(samples) / rate


def speak(text: str, engine: str | None = None, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """text -> (float32 mono samples [S], their rate); no samples when nothing is worth saying.
    speed: 1 is the voice's own pace, in [MIN_SPEED, MAX_SPEED]."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be in [{MIN_SPEED}, {MAX_SPEED}], got {speed}")
    text = speakable(text)
    if not text:
        return np.zeros(0, np.float32), 16_000
    engine = engine or engine_for(text)
    if engine is None:
        raise SpeechError("no speech engine is installed (install espeak-ng)")
    if engine == "piper":
        try:
            pieces = list(piper_voice.chunks(text, speed))
            return np.concatenate(pieces) if pieces else np.zeros(0, np.float32), (
                piper_voice.sample_rate()
            )
        except Exception as error:  # noqa: BLE001 - onnxruntime or a missing file: say which
            raise SpeechError(f"piper failed: {error}") from None
    return _spoken_by_subprocess(text, engine, speed)


def _spoken_by_subprocess(text: str, engine: str, speed: float) -> tuple[np.ndarray, int]:
    with (
        tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as script,
        tempfile.TemporaryDirectory() as folder,
    ):
        script.write(text)
        script.flush()
        path = Path(folder) / "speech.wav"
        if engine == "flite":
            command = ["flite", "-voice", FLITE_VOICE, "--setf", f"duration_stretch={1 / speed}",
                       "-f", script.name, "-o", str(path)]  # fmt: skip
        else:
            words_per_minute = max(80, min(450, round(ESPEAK_WORDS_PER_MINUTE * speed)))
            command = ["espeak-ng", "-v", ESPEAK_VOICE, "-s", str(words_per_minute),
                       "-f", script.name, "-w", str(path)]  # fmt: skip
        try:
            result = subprocess.run(
                command, check=False, capture_output=True, text=True, timeout=TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SpeechError(f"{engine} failed: {error}") from None
        if result.returncode != 0 or not path.is_file():
            raise SpeechError(
                f"{engine} failed (exit {result.returncode}): {result.stderr.strip()}"
            )
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def _mostly_ascii(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) >= 0.95 * len(letters)
