"""Reading what a person sends: every unusable photo or clip is an InputError that says why."""

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from PIL import Image

from encoders.audio_io import SAMPLE_RATE, load_audio
from encoders.errors import InputError
from encoders.image_io import MAX_SIDE, load_image
from tests.tiny import photo, png_header, tone


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


# --- photos ----------------------------------------------------------------------------------


def test_reads_a_photo_from_path_and_bytes(tmp_path):
    data = jpeg_bytes(photo(120, 80))
    (tmp_path / "cat.jpg").write_bytes(data)
    for source in (tmp_path / "cat.jpg", str(tmp_path / "cat.jpg"), data):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (120, 80)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(InputError, match=r"notes\.jpg is not an image format"):
        load_image(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg(tmp_path, keep):
    data = jpeg_bytes(photo(300, 200))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="could not be decoded.*is the file complete"):
        load_image(path)


def test_missing_image_file(tmp_path):
    with pytest.raises(InputError, match="image file not found: .*nowhere.png"):
        load_image(tmp_path / "nowhere.png")


def test_empty_image_bytes():
    with pytest.raises(InputError, match=r"empty \(0 bytes\)"):
        load_image(b"", name="upload.jpg")


def test_empty_image_file_is_refused(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty.png"):
        load_image(tmp_path / "empty.png")


@pytest.fixture(scope="module")
def fifty_megapixels(tmp_path_factory) -> tuple:
    """An 8660 x 5773 (50 MP) solid-colour JPEG: ~0.8 MB on disk, 150 MB once decoded in full."""
    path = tmp_path_factory.mktemp("big") / "phone.jpg"
    Image.new("RGB", (8660, 5773), (200, 30, 40)).save(path, "JPEG", quality=80)
    return path, (8660, 5773)


def test_fifty_megapixel_photo_is_downscaled(fifty_megapixels):
    path, (width, height) = fifty_megapixels
    image = load_image(path)
    assert max(image.size) <= MAX_SIDE
    assert max(image.size) >= MAX_SIDE // 2  # downscaled, not thumbnailed to nothing
    assert image.size[0] / image.size[1] == pytest.approx(width / height, rel=0.01)
    assert image.getpixel((10, 10)) == pytest.approx((200, 30, 40), abs=3)


@pytest.mark.parametrize(("width", "height"), [(12_000, 10_000), (20_000, 20_000)])
def test_header_claiming_too_many_pixels_is_refused(width, height):
    with pytest.raises(InputError, match="too large|megapixels"):
        load_image(png_header(width, height), name="bomb.png")


def test_header_over_the_limit_names_the_size():
    with pytest.raises(InputError, match="12000x10000 = 120 megapixels; the limit is 100"):
        load_image(png_header(12_000, 10_000))


def test_transparency_goes_over_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image = load_image(rgba)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_greyscale_keeps_its_tones():
    grey = Image.fromarray(np.full((20, 30), 32_768, np.uint16))  # 50 % grey in 16 bits
    buffer = io.BytesIO()
    grey.save(buffer, "PNG")
    assert load_image(buffer.getvalue()).getpixel((0, 0)) == pytest.approx((128, 128, 128), abs=2)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    data = jpeg_bytes(photo(60, 20), exif=exif.tobytes())
    assert load_image(data).size == (20, 60)


# --- speech ----------------------------------------------------------------------------------


def test_reads_speech_from_path_and_bytes(tmp_path):
    data = wav_bytes(tone(1.0))
    (tmp_path / "hello.wav").write_bytes(data)
    for source in (tmp_path / "hello.wav", data):
        waveform = load_audio(source)
        assert waveform.dtype == np.float32 and waveform.shape == (SAMPLE_RATE,)


def test_empty_audio_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.wav is empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")


def test_missing_audio_file(tmp_path):
    with pytest.raises(InputError, match="audio file not found"):
        load_audio(tmp_path / "nowhere.wav")


def test_silent_wav():
    with pytest.raises(InputError, match="silent"):
        load_audio(wav_bytes(np.zeros(SAMPLE_RATE, np.float32)))


def test_ten_minute_wav_is_refused(tmp_path):
    path = tmp_path / "lecture.wav"
    soundfile.write(path, np.zeros(10 * 60 * 8000, np.int16), 8000)  # 10 min at 8 kHz: 9.6 MB
    with pytest.raises(InputError, match=r"600\.0 s long; the limit is 30 s"):
        load_audio(path)


def test_too_short_clip():
    with pytest.raises(InputError, match=r"too short \(0\.05 s\)"):
        load_audio(wav_bytes(tone(0.05)))


def test_invalid_samples():
    samples = tone(1.0)
    samples[100] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_audio(wav_bytes(samples, subtype="FLOAT"))


def test_header_only_wav():
    with pytest.raises(InputError, match="no audio samples"):
        load_audio(wav_bytes(np.zeros(0, np.float32)), name="nothing.wav")


def test_stereo_44k_becomes_mono_16k():
    seconds, rate = 1.5, 44_100
    left = tone(seconds, 440.0, rate=rate, amplitude=0.4)
    stereo = np.stack([left, 0.5 * left], axis=1)  # S, 2
    waveform = load_audio(wav_bytes(stereo, rate=rate, subtype="FLOAT"))
    assert waveform.ndim == 1 and waveform.dtype == np.float32
    assert len(waveform) == round(len(left) * SAMPLE_RATE / rate)
    middle = waveform[2000:-2000]
    assert np.abs(middle).max() == pytest.approx(0.3, abs=0.02)  # (0.4 + 0.2) / 2
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.fft.rfftfreq(len(middle), 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(
        440, abs=2
    )


def test_random_bytes_named_mp3(tmp_path):
    path = tmp_path / "voice.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(InputError, match=r"voice\.mp3 is not"):
        load_audio(path)


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def ffmpeg_tone(path, seconds: float) -> None:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
               "-ac", "2", "-ar", "48000", "-c:a", "libopus", "-y", str(path)]  # fmt: skip
    subprocess.run(command, check=True, timeout=60)


@needs_ffmpeg
def test_webm_goes_through_ffmpeg(tmp_path):
    ffmpeg_tone(tmp_path / "note.webm", 1.0)
    waveform = load_audio(tmp_path / "note.webm")
    assert waveform.ndim == 1 and abs(len(waveform) - SAMPLE_RATE) < SAMPLE_RATE * 0.05


@needs_ffmpeg
def test_long_webm_is_refused(tmp_path):
    ffmpeg_tone(tmp_path / "talk.webm", 45.0)
    with pytest.raises(InputError, match="the limit is 30 s"):
        load_audio(tmp_path / "talk.webm")


@needs_ffmpeg
def test_long_webm_error_gives_its_real_length(tmp_path):
    ffmpeg_tone(tmp_path / "talk.webm", 45.0)
    with pytest.raises(InputError, match=r"45(\.0)? s"):
        load_audio(tmp_path / "talk.webm")


def test_unsupported_format_without_ffmpeg(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(InputError, match="not in a supported audio format.*install ffmpeg"):
        load_audio(b"\x1a\x45\xdf\xa3" + bytes(200), name="clip.webm")  # a WebM/Matroska magic


def test_a_thin_strip_is_refused_before_any_resizing():
    buffer = io.BytesIO()
    Image.new("RGB", (2048, 1), "red").save(buffer, "PNG")
    with pytest.raises(InputError, match="2048x1"):
        load_image(buffer.getvalue())
