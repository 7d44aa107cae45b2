"""POST /v1/audio/speech, as OpenAI's: text -> speech in the format asked, from local voices.

OpenAI's voice names map onto the voices this machine has (app/speech_out.py): Piper's
neural en_US joe for most, flite's "slt" for coral, nova, sage and shimmer when flite is
installed (else joe too); the local names `joe`, `slt` and `espeak` choose one directly.
Formats: wav and flac at the voice's own rate (soundfile); pcm as OpenAI's (raw 16-bit
little-endian, 24 kHz mono); mp3, opus (in Ogg) and aac through ffmpeg.
"""

import shutil
import subprocess
from fractions import Fraction
from io import BytesIO

import numpy as np
import soundfile

from app import speech_out
from app.openai_api.errors import ApiError

SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "lunettes")
MAX_INPUT_CHARS = 4096  # as OpenAI
PCM_RATE = 24_000
_NEURAL = ("alloy", "ash", "ballad", "echo", "fable", "onyx", "verse", "marin", "cedar", "joe")
_FLITE = ("coral", "nova", "sage", "shimmer", "slt")
VOICES = {name: "piper" for name in _NEURAL} | {name: "flite" for name in _FLITE}
VOICES["espeak"] = "espeak-ng"
MEDIA_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}  # fmt: skip
_FFMPEG_FORMATS = {  # format -> ffmpeg output arguments
    "mp3": ["-f", "mp3", "-b:a", "64k"],
    "opus": ["-f", "ogg", "-c:a", "libopus", "-b:a", "32k"],
    "aac": ["-f", "adts", "-c:a", "aac", "-b:a", "64k"],
}
FFMPEG_TIMEOUT_S = 60


def engine_of(voice: str) -> str:
    """A voice name -> the engine that speaks it here (ApiError 400 when unknown)."""
    engine = VOICES.get(voice.lower())
    if engine is None:
        names = ", ".join(sorted(VOICES))
        raise ApiError(
            400, f"unknown voice {voice!r}; use one of: {names}", "invalid_voice", "voice"
        )
    installed = speech_out.available_engines()
    if engine not in installed:
        engine = next((e for e in speech_out.ENGINES if e in installed), None)
    if engine is None:
        raise ApiError(503, "no speech engine is installed here", "speech_unavailable")
    return engine


def speech_bytes(text: str, voice: str, response_format: str, speed: float) -> bytes:
    """Synthesise `text` and encode it; raises ApiError on anything a client can fix."""
    if not speech_out.speakable(text):
        raise ApiError(
            400, "input has nothing to say (only symbols or code)", "empty_input", "input"
        )
    engine = engine_of(voice)
    try:
        samples, rate = speech_out.speak(text, engine, speed)
    except speech_out.SpeechError as error:
        raise ApiError(500, str(error), "speech_failed") from None
    return encode(samples, rate, response_format)


def encode(samples: np.ndarray, rate: int, response_format: str) -> bytes:
    """float32 mono samples [S] at `rate` -> the bytes of `response_format`."""
    if response_format == "pcm":
        return _pcm16(_resampled(samples, rate, PCM_RATE))
    if response_format in ("wav", "flac"):
        buffer = BytesIO()
        subtype = "PCM_16"
        soundfile.write(buffer, samples, rate, format=response_format.upper(), subtype=subtype)
        return buffer.getvalue()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ApiError(
            400, f"{response_format} needs ffmpeg, which is not installed here; ask for wav, "
            "flac or pcm", "unsupported_format", "response_format",
        )  # fmt: skip
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate),
               "-ac", "1", "-i", "pipe:0", *_FFMPEG_FORMATS[response_format], "pipe:1"]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            check=False,
            input=_pcm16(samples),
            capture_output=True,
            timeout=FFMPEG_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ApiError(500, f"ffmpeg failed: {error}", "speech_failed") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise ApiError(500, f"ffmpeg failed: {message}", "speech_failed")
    return result.stdout


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _resampled(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or not len(samples):
        return samples
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
