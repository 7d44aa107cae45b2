"""Reading photos a person sends: any format Pillow decodes, with bounded memory.

A phone photo can be 50 megapixels; encoders look at a few hundred pixels a side. JPEGs are
decoded at reduced scale (`draft`) so a huge photo never needs its full-size buffer; other
formats are decoded once and downscaled. Headers that claim more than `MAX_PIXELS` are refused
before anything is decoded.
"""

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from encoders.errors import InputError

MAX_PIXELS = 100_000_000  # refuse above this, read from the header before decoding
MAX_ASPECT = 20  # a 1x2048 strip would be resized to 256x524288 by a crop-based preprocess
MAX_SIDE = 2048  # longest side kept after loading: far above any encoder's input size


def load_image(source: str | Path | bytes | Image.Image, *, name: str | None = None) -> Image.Image:
    """Open a photo from a path, bytes or a PIL image -> RGB image, upright, longest side <= MAX_SIDE.

    Raises InputError with a plain message for a missing file, a non-image, a truncated file
    or an image over MAX_PIXELS.
    """
    if isinstance(source, Image.Image):
        return _normalise(source)
    label = name or (str(source) if isinstance(source, (str, Path)) else "the image")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"image file not found: {path}")
        stream = path.open("rb")
    else:
        if not source:
            raise InputError(f"{label} is empty (0 bytes)")
        stream = io.BytesIO(source)
    with stream:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(stream)
                _check_size(image, label)
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                image.load()
        except InputError:
            raise
        except Image.DecompressionBombError as error:
            raise InputError(f"{label} is too large: {error}") from None
        except UnidentifiedImageError:
            raise InputError(f"{label} is not an image format that can be read") from None
        except (OSError, SyntaxError, ValueError) as error:
            raise InputError(
                f"{label} could not be decoded ({error}); is the file complete?"
            ) from None
        return _normalise(image)


def _check_size(image: Image.Image, label: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise InputError(f"{label} has no pixels ({width}x{height})")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InputError(
            f"{label} is {width}x{height}: one side is more than {MAX_ASPECT} times the other; "
            "crop it to the part to look at"
        )
    if width * height > MAX_PIXELS:
        raise InputError(
            f"{label} is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        )


def _normalise(image: Image.Image) -> Image.Image:
    """Upright (EXIF orientation), RGB (alpha over white), longest side <= MAX_SIDE."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit greyscale or float
        image = _to_eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """High-bit-depth greyscale -> 8-bit "L", scaled (a plain convert would clip above 255)."""
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
    else:
        scale = (
            1.0 / 256.0 if values.max(initial=0.0) > 255 or image.mode.startswith("I;16") else 1.0
        )
    return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8), mode="L")
