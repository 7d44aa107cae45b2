"""Photos and clips in a request -> bytes -> the encoders' readers, each failure a clear 400.

Photos come as data: URLs (base64), or http(s) URLs when the server allows remote media
(fetched with a size and a time limit). Clips come as base64 (`input_audio.data`). Decoding
is blocking work: the routes run these functions in a worker thread.
"""

import base64
import binascii
import io
import re
import warnings

import anyio
import httpx
import numpy as np
import soundfile
from PIL import Image

from app.openai_api.config import ApiConfig
from app.openai_api.errors import ApiError
from encoders.audio_io import SAMPLE_RATE, load_audio
from encoders.errors import InputError
from encoders.image_io import load_image

DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*),", re.ASCII)
NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")
URL_SAFE = bytes.maketrans(b"-_", b"+/")


def is_remote(url: str) -> bool:
    return url[:8].lower().startswith(("http://", "https://"))


def decode_base64(text: str, param: str) -> bytes:
    """Standard or URL-safe base64, whitespace and missing padding tolerated -> bytes."""
    data = text.encode("ascii", errors="replace").translate(URL_SAFE, b" \t\r\n\f\v")
    data = data.rstrip(b"=")
    if NOT_BASE64.search(data) or len(data) % 4 == 1:
        raise ApiError(400, f"{param} is not valid base64", "invalid_base64", param)
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param} is not valid base64", "invalid_base64", param) from None


def data_url_bytes(url: str, param: str) -> bytes:
    """A data: URL (data:image/png;base64,....) -> bytes."""
    match = DATA_URL.match(url)
    if match is None:
        scheme = url.split(":", 1)[0][:20] if ":" in url else ""
        hint = f"the scheme {scheme!r} is not supported; " if scheme else ""
        raise ApiError(
            400, f"{param}: {hint}send the photo as a data: URL (data:image/jpeg;base64,...)",
            "invalid_image_url", param,
        )  # fmt: skip
    if ";base64" not in match["params"].lower():
        raise ApiError(
            400, f"{param}: only base64 data: URLs are accepted", "invalid_image_url", param
        )
    return decode_base64(url[match.end() :], param)


def clip_bytes(data: str, param: str) -> bytes:
    """input_audio.data: base64, or a base64 data: URL as some clients send -> bytes."""
    return (
        data_url_bytes(data, param) if data[:5].lower() == "data:" else decode_base64(data, param)
    )


def read_photo(data: bytes, param: str, config: ApiConfig) -> Image.Image:
    """Photo bytes -> RGB image; refused above config.max_image_pixels before decoding."""
    check_pixels(data, param, config.max_image_pixels)
    try:
        return load_image(data, name=param)
    except InputError as error:
        raise ApiError(400, str(error), "invalid_image", param) from None


def read_clip(data: bytes, param: str, config: ApiConfig, declared: str) -> np.ndarray:
    """Clip bytes -> float32 [S] mono at 16 kHz; refused above config.max_audio_seconds (from
    the header when it says, else after decoding)."""
    check_seconds(data, param, config.max_audio_seconds)
    try:
        waveform = load_audio(data, name=f"{param} ({declared})")
    except InputError as error:
        raise ApiError(400, str(error), "invalid_audio", param) from None
    _refuse_long(waveform.shape[0] / SAMPLE_RATE, param, config.max_audio_seconds)
    return waveform


def check_seconds(data: bytes, param: str, limit: float) -> None:
    """The length from the header (WAV, FLAC, OGG, MP3); others are measured once decoded."""
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - not a soundfile format: the reader tries ffmpeg
        return
    if info.samplerate > 0 and info.frames > 0:
        _refuse_long(info.frames / info.samplerate, param, limit)


def _refuse_long(seconds: float, param: str, limit: float) -> None:
    if seconds > limit:
        raise ApiError(
            400,
            f"{param} is {seconds:.1f} s long; the limit is {limit:g} s",
            "audio_too_long",
            param,
        )


def check_pixels(data: bytes, param: str, limit: int) -> None:
    """Read the size from the header only; the reader reports what is not an image at all."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            width, height = Image.open(io.BytesIO(data)).size
    except Image.DecompressionBombError as error:
        raise ApiError(400, f"{param} is too large: {error}", "image_too_large", param) from None
    except Exception:  # noqa: BLE001 - not an image at all: load_image says what is wrong
        return
    if width * height > limit:
        raise ApiError(
            400, f"{param} is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
            f"the limit is {limit / 1e6:g} megapixels", "image_too_large", param,
        )  # fmt: skip


async def fetch(url: str, param: str, config: ApiConfig) -> bytes:
    """GET an http(s) URL within config's size and time limits -> bytes."""
    if not config.allow_remote_media:
        raise ApiError(
            400, f"{param}: this server does not fetch URLs (start it with --allow-remote-media); "
            "send the photo as a data: URL", "remote_media_disabled", param,
        )  # fmt: skip
    limit = config.remote_media_bytes
    try:
        with anyio.fail_after(config.remote_media_timeout_s):
            async with (
                httpx.AsyncClient(follow_redirects=True, max_redirects=3) as client,
                client.stream("GET", url) as response,
            ):
                response.raise_for_status()
                if int(response.headers.get("content-length") or 0) > limit:
                    raise _too_large(param, limit)
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise _too_large(param, limit)
                return bytes(data)
    except TimeoutError:
        raise ApiError(
            400, f"{param}: the URL did not answer within {config.remote_media_timeout_s:g} s",
            "remote_media_unavailable", param,
        ) from None  # fmt: skip
    except (httpx.HTTPError, ValueError) as error:
        raise ApiError(
            400, f"{param}: the URL could not be fetched ({type(error).__name__}: {error})",
            "remote_media_unavailable", param,
        ) from None  # fmt: skip


def _too_large(param: str, limit: int) -> ApiError:
    return ApiError(
        400,
        f"{param}: the photo at this URL is over {limit / 2**20:g} MiB",
        "image_too_large",
        param,
    )
