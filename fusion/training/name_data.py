"""Drawings with the names people wrote for them: the training data of the adapter's name head.

Sources, all Debian packages, none of them emoji:
- Tux Paint's stamps (tuxpaint-stamps-default): ~800 drawings of animals, food, vehicles,
  household things, ..., each with a sentence written for it ("A US 1 cent piece called a
  penny.") and a file name ("001penny.png");
- openclipart-png: ~8,000 drawings whose file names carry their title, then their author
  ("full_moon_dan_gerhards_01.png"), in category folders ("science/astronomy").

A drawing's names are the words of its sentence, title and innermost folder that are plain
English words (the system word list, lower case), less style words, colours and function
words (NOT_NAMES). The name vocabulary is every such word that at least MIN_SOURCES drawings
carry, built from the training split alone. A drawing's split is decided by a hash of its
path, as for the other vision sets (vision_data.is_held_out).
"""

import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from fusion.training.vision_data import CLIPART_DIR, is_held_out

STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
WORDS_FILE = Path("/usr/share/dict/words")
MIN_SOURCES = 3
# Words of titles and sentences that do not name a thing: how it is drawn, its colour, its
# place in a set, grammar, and the given names of clip-art authors that are also words.
_NOT_NAMES_TEXT = """a an the and with for from into onto over under this that its it's of on in to at by
    or as is are was be called named made make makes one two three four five six seven eight
    nine ten half full new old simple simplified stylized stylised drawn drawing cartoon clip
    art clipart icon icons symbol symbols sign signs image picture gradient pattern patterns
    style outline contour shaded smooth solid soft glossy shiny flat round rounded square
    rectangular triangular left right up down top bottom upper lower front back side view
    small big large little mini tiny huge red orange yellow green blue purple pink brown black
    white grey gray gold golden silver dark light pale bright colour color colored coloured
    ornamental bordered border element elements part set collection another other version
    remix variant style design happy sad funny cute angry us european canadian american
    victor franc matt mike martin gerhards architetto dan jean john peter anthony andrew
    gnome tango etiquette mime stock crystal oxygen ark tux open closed empty single double
    number letter text"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())


@dataclass(frozen=True)
class NamedDrawing:
    path: Path
    names: tuple[str, ...]  # plain words naming it, most specific (title) first


def dictionary() -> set[str]:
    return {w.strip() for w in WORDS_FILE.read_text().splitlines() if w.strip().islower()}


def drawings(words: set[str]) -> list[NamedDrawing]:
    """Every stamp and clip-art drawing with at least one name word, sorted by path."""
    found = []
    for path in sorted(STAMPS_DIR.rglob("*.png")) if STAMPS_DIR.is_dir() else []:
        sentence = path.with_suffix(".txt")
        text = sentence.read_text(errors="ignore").splitlines()[0] if sentence.is_file() else ""
        found.append((path, [text, path.stem, path.parent.name]))
    for path in sorted(CLIPART_DIR.rglob("*.png")) if CLIPART_DIR.is_dir() else []:
        found.append((path, [path.stem, path.parent.name]))
    named = []
    for path, texts in found:
        names = tuple(dict.fromkeys(w for text in texts for w in name_words(text, words)))
        if names:
            named.append(NamedDrawing(path, names))
    return named


def name_words(text: str, words: set[str]) -> list[str]:
    """The words of a title, sentence or folder that may name a thing, singular where the
    word list has the singular ("birds" -> "bird")."""
    out = []
    for token in re.split(r"[^a-z]+", text.lower()):
        if len(token) < 3 or token in NOT_NAMES or token not in words:
            continue
        if token.endswith("s") and token[:-1] in words and token[:-1] not in NOT_NAMES:
            token = token[:-1]
        out.append(token)
    return out


def vocabulary(named: list[NamedDrawing], min_sources: int = MIN_SOURCES) -> list[str]:
    """The name words that at least `min_sources` training drawings carry, sorted."""
    counts: dict[str, int] = {}
    for drawing in named:
        if not is_held_out(str(drawing.path)):
            for name in drawing.names:
                counts[name] = counts.get(name, 0) + 1
    return sorted(name for name, count in counts.items() if count >= min_sources)


VIEWS = 2  # random placements of each drawing
IMAGE_SIZE = 224


@dataclass
class NameSet:
    features: torch.Tensor  # [M, C] float16: the vision tower's mean token of each view
    names: list[tuple[int, ...]]  # [M] indices into `vocabulary`, most specific first
    held_out: list[bool]  # [M] by the drawing's path
    vocabulary: list[str]


def build_name_set(model, path: Path, seed: int = 0, limit: int | None = None) -> NameSet:
    """Load the cached set at `path`, or place, encode and cache every named drawing."""
    if path.is_file():
        return NameSet(**torch.load(path, weights_only=False))
    named = drawings(dictionary())[:limit] if WORDS_FILE.is_file() else []
    vocab = vocabulary(named, min_sources=1 if limit else MIN_SOURCES)
    index = {name: i for i, name in enumerate(vocab)}
    rng = random.Random(seed)
    features, names, held_out, batch = [], [], [], []

    def flush():
        tokens = model.vision.encode([image for image, _, _ in batch])  # B, N, C
        features.append(tokens.float().mean(dim=1).to(torch.float16))  # B, C
        names.extend(ids for _, ids, _ in batch)
        held_out.extend(h for _, _, h in batch)
        batch.clear()

    for drawing in tqdm(named, desc="named drawings"):
        ids = tuple(index[n] for n in drawing.names if n in index)
        if not ids:
            continue
        try:
            with Image.open(drawing.path) as raw:
                if raw.width * raw.height > 40_000_000:
                    continue
                art = raw.convert("RGBA")
        except (OSError, Image.DecompressionBombError):
            continue  # unreadable drawings are skipped: training data, not a user's photo
        for _ in range(VIEWS):
            batch.append((placed(art, rng), ids, is_held_out(str(drawing.path))))
        if len(batch) >= 32:
            flush()
    if batch:
        flush()
    width = model.vision.dim
    result = NameSet(torch.cat(features) if features else torch.zeros(0, width), names, held_out, vocab)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vars(result), path)
    return result


def placed(art: Image.Image, rng: random.Random) -> Image.Image:
    """A drawing (RGBA) at a random size and place on a plain light background, as a thing
    held up in front of the camera: RGB IMAGE_SIZE x IMAGE_SIZE."""
    from PIL import Image

    box = art.getbbox() or (0, 0, art.width, art.height)
    art = art.crop(box)
    side = rng.randint(IMAGE_SIZE // 2, IMAGE_SIZE)
    art.thumbnail((side, side))
    background = tuple(rng.randint(190, 255) for _ in range(3))
    canvas = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    x = rng.randint(0, IMAGE_SIZE - art.width)
    y = rng.randint(0, IMAGE_SIZE - art.height)
    canvas.paste(art, (x, y), art)
    return canvas
