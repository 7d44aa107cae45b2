"""Naming the colours of an image from its pixels: what an answer to "what colour is it?"
starts from (answer_opening.py; the adapter's tokens do not carry colour to this small LM:
"What colour is the cat?" was answered "The cat is likely to be a cat."), and the adapter's
training label for that question (training/vision_data.py).

The subject: a cut-out's opaque pixels; else, when the frame's border is one plain colour
(a drawing, a thing held up against a wall), the pixels that differ from it; else the middle
of the frame, half its width and height, where glasses or a phone are pointed.
"""

import re

import numpy as np
from PIL import Image

ASKS_COLOUR = re.compile(r"\bcolou?r(s|ed)?\b", re.IGNORECASE)  # "what color are the shoes?"
SECOND_COLOUR_SHARE = 0.25  # a second colour is named when it covers this much of the subject
PLAIN_BORDER = 12.0  # RGB standard deviation under which a border is one plain colour
FROM_BORDER = 60.0  # RGB distance from a plain border's colour at which a pixel is subject
SUBJECT_SHARE = 0.005  # the least share of the frame such pixels must be, to be the subject

# (name, hue range in degrees) for saturated, not too dark pixels; brown is dark orange/red.
HUES = [("red", 0, 15), ("orange", 15, 40), ("yellow", 40, 70), ("green", 70, 170),
        ("blue", 170, 260), ("purple", 260, 300), ("pink", 300, 345), ("red", 345, 361)]  # fmt: skip


def pixel_colour_names(rgb: np.ndarray) -> np.ndarray:
    """[N, 3] uint8 -> [N] colour names."""
    hsv = np.asarray(
        Image.fromarray(rgb.reshape(-1, 1, 3)).convert("HSV"), dtype=np.float32
    ).reshape(-1, 3)
    hue, sat, val = hsv[:, 0] * 360 / 255, hsv[:, 1] / 255, hsv[:, 2] / 255
    names = np.full(len(rgb), "grey", dtype=object)
    for name, low, high in HUES:
        names[(hue >= low) & (hue < high)] = name
    brownish = np.isin(names, ["orange", "red"]) & (val < 0.55) & (sat > 0.3)
    names[brownish] = "brown"
    names[sat < 0.18] = "grey"
    names[(sat < 0.18) & (val > 0.85)] = "white"
    names[val < 0.18] = "black"
    return names


def asks_colour(words: str) -> bool:
    """Whether a question (typed, or a transcript of what was said) asks about colour."""
    return ASKS_COLOUR.search(words) is not None


def main_colour(image: Image.Image) -> str:
    """The most common colour name of the subject: opaque pixels of a cut-out, else the centre
    (the adapter's training label, training/vision_data.py)."""
    pixels = _cut_out(image)
    if pixels is None:
        pixels = _centre(np.asarray(image.convert("RGB")))
    return _counted(pixels)[0][0] if len(pixels) else "white"


def main_colours(image: Image.Image) -> list[str]:
    """The subject's colour names (module docstring), the most common first, and the second
    when it covers at least SECOND_COLOUR_SHARE of the subject."""
    pixels = _cut_out(image)
    if pixels is None:
        pixels = _subject(np.asarray(image.convert("RGB")))
    if len(pixels) == 0:
        return ["white"]
    counted = _counted(pixels)
    names = [counted[0][0]]
    if len(counted) > 1 and counted[1][1] >= SECOND_COLOUR_SHARE:
        names.append(counted[1][0])
    return names


def _cut_out(image: Image.Image) -> np.ndarray | None:
    """A cut-out's opaque pixels [N, 3] uint8; None for an image without transparency."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return None
    rgba = np.asarray(image.convert("RGBA"))
    return rgba[rgba[..., 3] > 128][:, :3]


def _subject(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> the subject's pixels [N, 3]."""
    border = np.concatenate([rgb[:2].reshape(-1, 3), rgb[-2:].reshape(-1, 3),
                             rgb[:, :2].reshape(-1, 3), rgb[:, -2:].reshape(-1, 3)])  # fmt: skip
    border = border.astype(np.float32)
    if border.std(axis=0).max() < PLAIN_BORDER:
        distance = np.linalg.norm(rgb.astype(np.float32) - np.median(border, axis=0), axis=-1)
        apart = distance > FROM_BORDER  # H, W
        if apart.mean() >= SUBJECT_SHARE:
            return rgb[apart]
    return _centre(rgb)


def _centre(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    return rgb[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].reshape(-1, 3)


def _counted(pixels: np.ndarray) -> list[tuple[str, float]]:
    """[N, 3] uint8 -> (colour name, share of the pixels), the most common first."""
    step = max(1, len(pixels) // 20_000)
    names, counts = np.unique(pixel_colour_names(pixels[::step]), return_counts=True)
    order = np.argsort(-counts, kind="stable")  # ties: the first name, as argmax gives
    return [(str(names[k]), float(counts[k] / counts.sum())) for k in order]
