"""Naming the main colour of an image: a real label for "what colour is it?", from pixels."""

import numpy as np
from PIL import Image

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


def main_colour(image: Image.Image) -> str:
    """The most common colour name of the subject: opaque pixels of a cut-out, else the centre."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        pixels = rgba[rgba[..., 3] > 128][:, :3]
    else:
        rgb = np.asarray(image.convert("RGB"))
        height, width = rgb.shape[:2]
        pixels = rgb[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].reshape(-1, 3)
    if len(pixels) == 0:
        return "white"
    step = max(1, len(pixels) // 20_000)
    names, counts = np.unique(pixel_colour_names(pixels[::step]), return_counts=True)
    return str(names[counts.argmax()])
