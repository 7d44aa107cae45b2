"""Spoken answers: text -> a WAV file from a local speech engine, offline.

Engines, best first: flite with CMU's "slt" voice (natural-sounding, English only) when it is
installed and the text is English-looking; else espeak-ng (robotic, many languages). Each runs
as a subprocess reading the text from stdin or a file (never as an argument, so an answer
starting with "-" is not taken for an option). Nothing is downloaded. Nothing here knows
about Gradio.
"""

import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import soundfile

MAX_CHARS = 1500  # longest text spoken; a longer answer is cut at a sentence end
TIMEOUT_S = 30  # per synthesis; both engines take ~10 ms per sentence
ESPEAK_VOICE = "en-us"
ESPEAK_WORDS_PER_MINUTE = 165
FLITE_VOICE = "slt"


class SpeechError(RuntimeError):
    """The speech engine failed; the message says how."""


def available_engines() -> list[str]:
    return [name for name in ("flite", "espeak-ng") if shutil.which(name)]


def engine_for(text: str) -> str | None:
    """The best installed engine for this text, or None when none is installed."""
    engines = available_engines()
    if "flite" in engines and _mostly_ascii(text):
        return "flite"
    return "espeak-ng" if "espeak-ng" in engines else None


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


def synthesise(text: str, path: Path, engine: str | None = None) -> float:
    """Say `text` into a WAV file at `path` -> its duration in seconds (0.0: nothing to say).

    Raises SpeechError when no engine is installed or the engine fails.
    """
    text = speakable(text)
    if not text:
        return 0.0
    engine = engine or engine_for(text)
    if engine is None:
        raise SpeechError("no speech engine is installed (install espeak-ng)")
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as script:
        script.write(text)
        script.flush()
        if engine == "flite":
            command = ["flite", "-voice", FLITE_VOICE, "-f", script.name, "-o", str(path)]
        else:
            command = [
                "espeak-ng", "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WORDS_PER_MINUTE),
                "-f", script.name, "-w", str(path),
            ]  # fmt: skip
        try:
            result = subprocess.run(
                command, check=False, capture_output=True, text=True, timeout=TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SpeechError(f"{engine} failed: {error}") from None
    if result.returncode != 0 or not path.is_file():
        raise SpeechError(f"{engine} failed (exit {result.returncode}): {result.stderr.strip()}")
    info = soundfile.info(str(path))
    return info.frames / info.samplerate


def _mostly_ascii(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) >= 0.95 * len(letters)
