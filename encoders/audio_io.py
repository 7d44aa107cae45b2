"""Reading speech a person sends: mono float32 at 16 kHz, length-bounded, never silent.

WAV, FLAC, OGG (Vorbis/Opus) and MP3 are read with soundfile (libsndfile). Other formats
(WebM, M4A, ...) go through ffmpeg when it is installed. The duration is read from the header
first, so a 10-minute file is refused without decoding it.
"""

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from encoders.errors import InputError

SAMPLE_RATE = 16_000  # Hz, what Whisper expects
MAX_SECONDS = 30.0  # Whisper's window: 1500 encoder frames at 50 Hz
MIN_SECONDS = 0.1
SILENCE_PEAK = 1e-3  # peak amplitude below which a clip counts as silent (-60 dBFS)
FFMPEG_TIMEOUT_S = 30


def load_audio(source: str | Path | bytes, *, name: str | None = None) -> np.ndarray:
    """Read speech from a path or bytes -> float32 [S] mono at SAMPLE_RATE, values in [-1, 1].

    Raises InputError for a missing, empty, unreadable, too long, too short or silent clip.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "the audio")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"audio file not found: {path}")
        data = path.read_bytes()
    else:
        data = source
    if not data:
        raise InputError(f"{label} is empty (0 bytes)")
    waveform, rate = _decode(data, label)
    if waveform.size == 0:
        raise InputError(f"{label} holds no audio samples")
    if waveform.ndim == 2:  # S, C -> S
        waveform = waveform.mean(axis=1)
    waveform = resample(waveform.astype(np.float32), rate, SAMPLE_RATE)
    check_speech(waveform, label)
    return waveform


def check_speech(waveform: np.ndarray, label: str = "the audio") -> None:
    """Refuse clips outside [MIN_SECONDS, MAX_SECONDS] or with no signal; waveform: [S] at 16 kHz."""
    seconds = waveform.shape[0] / SAMPLE_RATE
    if seconds > MAX_SECONDS:
        raise InputError(f"{label} is {seconds:.1f} s long; the limit is {MAX_SECONDS:.0f} s")
    if seconds < MIN_SECONDS:
        raise InputError(f"{label} is too short ({seconds:.2f} s); say a few words")
    if not np.isfinite(waveform).all():
        raise InputError(f"{label} holds invalid samples (NaN or infinity)")
    if float(np.abs(waveform).max()) < SILENCE_PEAK:
        raise InputError(f"{label} is silent: no speech was heard")


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """[S] at `rate` -> [S * target / rate] at `target`, with an anti-aliasing polyphase filter."""
    if rate == target:
        return waveform
    from math import gcd

    from scipy.signal import resample_poly

    divisor = gcd(rate, target)
    return resample_poly(waveform, target // divisor, rate // divisor).astype(np.float32)


def _decode(data: bytes, label: str) -> tuple[np.ndarray, int]:
    """bytes -> (samples [S] or [S, C], sample rate); soundfile first, then ffmpeg."""
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        return _decode_with_ffmpeg(data, label)
    if info.samplerate <= 0:
        raise InputError(f"{label} declares an invalid sample rate ({info.samplerate})")
    if info.frames > 0 and info.frames / info.samplerate > MAX_SECONDS:
        raise InputError(
            f"{label} is {info.frames / info.samplerate:.1f} s long; the limit is {MAX_SECONDS:.0f} s"
        )
    try:
        max_frames = int((MAX_SECONDS + 1) * info.samplerate)  # bounded even if the header lies
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", frames=max_frames)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise InputError(f"{label} could not be decoded ({error}); is the file complete?") from None
    return samples, rate


def _decode_with_ffmpeg(data: bytes, label: str) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise InputError(
            f"{label} is not in a supported audio format (WAV, FLAC, OGG, MP3); "
            "install ffmpeg to read other formats"
        )
    with tempfile.NamedTemporaryFile(suffix=".media") as file:  # MP4/M4A need a seekable input
        file.write(data)
        file.flush()
        command = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", file.name,
            "-t", str(MAX_SECONDS + 1), "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, check=False, capture_output=True, timeout=FFMPEG_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise InputError(f"{label} took too long to decode") from None
        if result.returncode != 0 or not result.stdout:
            raise InputError(f"{label} is not an audio format that can be read")
        samples = np.frombuffer(result.stdout, dtype=np.float32).copy()
        if samples.shape[0] > MAX_SECONDS * SAMPLE_RATE:  # decoding stopped at MAX_SECONDS + 1
            seconds = _probe_seconds(file.name)
            length = f"{seconds:.1f} s long" if seconds else f"longer than {MAX_SECONDS:.0f} s"
            raise InputError(f"{label} is {length}; the limit is {MAX_SECONDS:.0f} s")
    return samples, SAMPLE_RATE


def _probe_seconds(path: str) -> float | None:
    """The container's duration from ffprobe, or None when it does not say (live recordings)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    command = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=10)
        return float(result.stdout.strip())
    except (subprocess.TimeoutExpired, ValueError):
        return None
