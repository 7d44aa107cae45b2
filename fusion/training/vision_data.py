"""The vision training and evaluation sets: images -> EfficientNet tokens + pseudo-labels, cached.

Sources, all offline: Debian's openclipart PNGs (~8,000 drawings in category folders),
wallpapers from gnome-backgrounds and scikit-image's photos (many random crops each). Labels:
the frozen backbone's own top-5 ImageNet classes for exactly the view it sees (pseudo-labels:
the adapter learns to say what the backbone recognises), and the subject's main colour from
its pixels. An image's split is decided by a hash of its source, never by chance.
"""

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from encoders.image_io import load_image
from encoders.vision_labels import ImageLabeller
from fusion.model import LunettesModel
from fusion.photo_colours import main_colour

CLIPART_DIR = Path("/usr/share/openclipart/png")
WALLPAPER_DIRS = [Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers")]
PHOTO_CROPS = 40  # random views per photo
HELD_OUT_PERCENT = 10
MAX_SOURCE_PIXELS = 40_000_000  # a few drawings are enormous; they add nothing at 224 px


@dataclass
class VisionExample:
    features: torch.Tensor  # [N, C] float16 vision tokens
    top5: list[int]  # ImageNet class ids the frozen backbone ranks first, best first
    colour: str  # main colour of the subject
    source: str


def is_held_out(source: str) -> bool:
    return int(hashlib.sha256(source.encode()).hexdigest(), 16) % 100 < HELD_OUT_PERCENT


def image_sources() -> list[tuple[str, callable]]:
    """(source name, loader returning a PIL image) for every available image, sorted."""
    sources = [(str(p), lambda p=p: Image.open(p)) for p in sorted(CLIPART_DIR.rglob("*.png"))]
    for directory in WALLPAPER_DIRS:
        for path in sorted(directory.rglob("*")) if directory.is_dir() else []:
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                sources.append((str(path), lambda p=path: Image.open(p)))
    try:
        import skimage.data as photos

        for name in (
            "astronaut",
            "chelsea",
            "coffee",
            "rocket",
            "motorcycle_left",
            "cat",
            "horse",
            "camera",
        ):
            if hasattr(photos, name):
                sources.append(
                    (f"skimage:{name}", lambda n=name: Image.fromarray(getattr(photos, n)()))
                )
    except ImportError:
        pass
    return sources


def views(source: str, image: Image.Image, rng: random.Random) -> list[Image.Image]:
    """One view of a drawing; PHOTO_CROPS random crops (and flips) of a photo."""
    if source.startswith(str(CLIPART_DIR)):
        return [image]
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    out = []
    for _ in range(PHOTO_CROPS):
        scale = rng.uniform(0.3, 1.0)
        w, h = int(width * scale), int(height * scale)
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
        crop = image.crop((x, y, x + w, y + h))
        out.append(ImageOps.mirror(crop) if rng.random() < 0.5 else crop)
    return out


def build_vision_set(
    model: LunettesModel, split: str, path: Path, limit: int | None = None, seed: int = 0
):
    """Load the cached set at `path`, or encode and label the images of `split` and cache them."""
    if path.is_file():
        return [VisionExample(**item) for item in torch.load(path, weights_only=False)]
    labeller = model.vision.labeller
    if labeller is None:
        raise ValueError(
            f"the vision encoder {model.vision.name!r} has no classifier head to label images with"
        )
    rng = random.Random(seed)
    chosen = [(s, load) for s, load in image_sources() if is_held_out(s) == (split == "eval")]
    rng.shuffle(chosen)
    examples, batch = [], []
    for source, load in tqdm(chosen[:limit], desc=f"vision {split}"):
        try:
            raw = load()
            if raw.width * raw.height > MAX_SOURCE_PIXELS:
                continue
            raw.load()
        except (OSError, Image.DecompressionBombError):
            continue  # unreadable or huge sources are skipped: this is training data, not a user's photo
        for view in views(source, raw, rng):
            batch.append((source, main_colour(view), load_image(view)))
        if len(batch) >= 32:
            examples += _encode(model, labeller, batch)
            batch = []
    examples += _encode(model, labeller, batch) if batch else []
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([vars(e) for e in examples], path)
    return examples


@torch.inference_mode()
def _encode(model: LunettesModel, labeller: ImageLabeller, batch: list) -> list[VisionExample]:
    tokens = model.vision.encode([image for _, _, image in batch])  # B, N, C
    top5 = labeller.top(tokens, 5).tolist()  # B, 5
    return [
        VisionExample(tokens[i].to(torch.float16), top5[i], colour, source)
        for i, (source, colour, _) in enumerate(batch)
    ]
