"""Drawings with the names people wrote for them: the training data of the adapter's name head.

Sources, all Debian packages, none of them emoji:
- Tux Paint's stamps (tuxpaint-stamps-default): ~800 drawings of animals, food, vehicles,
  household things, ..., each with a sentence written for it ("A US 1 cent piece called a
  penny.") and a file name ("001penny.png");
- openclipart-png: ~8,000 drawings whose file names carry their title, then their author
  ("full_moon_dan_gerhards_01.png"), in category folders ("science/astronomy");
- icon sets (icon_data.py): ~24,000 icons rendered from their SVGs, each under the name its
  designers gave it ("fox-head.png"), in a folder per set that names nothing.

A drawing's names are the words of its sentence and title that are plain English words (the
system word list, lower case), less style words, colours and function words (NOT_NAMES),
then the word of its innermost folder ("animals/birds": "bird") unless that word is a kind
or a topic (CATEGORIES: "mammal", "food", "application"), which people do not call one thing
by. An icon's names are its own name's words less such kinds ("food-fruit-apple": "apple").
The name vocabulary is every such word that at least MIN_SOURCES drawings carry, built
from the training split alone. A drawing's split is decided by a hash of its path, as for
the other vision sets (vision_data.is_held_out).

The views' mean tokens are cached with their drawings' paths, and the names are worked out
from the paths when the set is loaded, so that a change of naming needs no new encoding.
"""

import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from fusion.training.icon_data import is_icon
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
    number letter text step filled fill line duotone regular thin bold off alt twotone"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
# Folder words that are kinds or topics, not what anyone calls one thing: a drawing in
# "food/fruit" is an apple or a pear to people, not "a fruit" (titles may still say it).
_CATEGORIES_TEXT = """action application app computer office tool gradients geography theme
    music mammal sport transportation food fruit dessert shape device party vehicle lowercase
    uppercase hardware bug animal plant beverage toy weapon education united meat vegetable
    weather holiday carbs astronomy flowchart electronic decoration clothing clothe religion
    state building recreation bovine container miscellany alcohol historic math operator
    furniture insect household science kingdom money rodent logo special string connector
    aquatic medical equine dishes auto diagram network dairy award navy hazard amphibian
    marsupial percussion military space emergency fantasy thanksgiving medicine duplicate
    shellfish hobbies utensil monument town construction jewelry body parts plastic seasonal
    cycle emblem generic player disability certificate game people map"""
CATEGORIES = frozenset(_CATEGORIES_TEXT.split())


@dataclass(frozen=True)
class NamedDrawing:
    path: Path
    names: tuple[str, ...]  # plain words naming it, most specific (title) first


def dictionary() -> set[str]:
    return {w.strip() for w in WORDS_FILE.read_text().splitlines() if w.strip().islower()}


def drawing_paths(icons: Path | None = None) -> list[Path]:
    """The stamps', clip art's and (with the folder of rendered icon sets) icons' PNG
    drawings, sorted within each source."""
    found = []
    for directory in (STAMPS_DIR, CLIPART_DIR, icons):
        found += sorted(directory.rglob("*.png")) if directory and directory.is_dir() else []
    return found


def named_drawing(path: Path, words: set[str]) -> NamedDrawing | None:
    """A drawing's names: its sentence's (stamps) and title's words, then its folder's word
    unless that is a category; an icon's, its name's words that are no category. None when
    it has no name."""
    if is_icon(path):
        names = tuple(dict.fromkeys(w for w in name_words(path.stem, words) if w not in CATEGORIES))
        return NamedDrawing(path, names) if names else None
    sentence = path.with_suffix(".txt")
    text = sentence.read_text(errors="ignore").splitlines()[:1] if sentence.is_file() else []
    own = name_words(" ".join(text), words) + name_words(path.stem, words)
    folder = [w for w in name_words(path.parent.name, words) if w not in CATEGORIES]
    names = tuple(dict.fromkeys(own + folder))
    return NamedDrawing(path, names) if names else None


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


VIEWS = 4  # random placements of each drawing
ICON_VIEWS = 2  # of each icon: they are three times as many, and this halves their encoding
IMAGE_SIZE = 224


@dataclass
class NameSet:
    features: torch.Tensor  # [M, C] float16: the vision tower's mean token of each view
    names: list[tuple[int, ...]]  # [M] indices into `vocabulary`, most specific first
    held_out: list[bool]  # [M] by the drawing's path
    vocabulary: list[str]


def build_name_set(
    model, path: Path, seed: int = 0, limit: int | None = None, icons: Path | None = None
) -> NameSet:
    """The named views: their mean tokens from the cache at `path` (drawings not in it yet,
    such as newly rendered icons, are placed and encoded, then kept there), their names from
    the drawings' paths (named_drawing)."""
    views = torch.load(path, weights_only=False) if path.is_file() else None
    views = views or {"features": torch.zeros(0, 0, dtype=torch.float16), "paths": []}
    known = set(views["paths"])
    missing = [p for p in drawing_paths(icons)[:limit] if str(p) not in known]
    if missing:
        new = encode_views(model, missing, seed)
        if len(views["paths"]):
            new["features"] = torch.cat([views["features"], new["features"]])
            new["paths"] = views["paths"] + new["paths"]
        views = new
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(views, path)
    words = dictionary() if WORDS_FILE.is_file() else set()
    named = {p: named_drawing(Path(p), words) for p in dict.fromkeys(views["paths"])}
    rows = [row for row, p in enumerate(views["paths"]) if named[p]]
    by_path = [named[p] for p in dict.fromkeys(views["paths"]) if named[p]]
    vocab = vocabulary(by_path, min_sources=1 if limit else MIN_SOURCES)
    index = {name: i for i, name in enumerate(vocab)}
    ids = [tuple(index[n] for n in named[views["paths"][row]].names if n in index) for row in rows]
    keep = [k for k, i in enumerate(ids) if i]
    return NameSet(
        features=views["features"][[rows[k] for k in keep]],
        names=[ids[k] for k in keep],
        held_out=[is_held_out(views["paths"][rows[k]]) for k in keep],
        vocabulary=vocab,
    )


def encode_views(model, paths: list[Path], seed: int) -> dict:
    """VIEWS random placements of each drawing (ICON_VIEWS of an icon; the same for a drawing
    whatever else is encoded with it), encoded -> {"features": [M, C] float16 mean tokens,
    "paths": [M] the drawing of each view}."""
    features, view_paths, batch = [], [], []

    def flush():
        tokens = model.vision.encode([image for image, _ in batch])  # B, N, C
        features.append(tokens.float().mean(dim=1).to(torch.float16))  # B, C
        view_paths.extend(p for _, p in batch)
        batch.clear()

    for path in tqdm(paths, desc="named drawings"):
        try:
            with Image.open(path) as raw:
                if raw.width * raw.height > 40_000_000:
                    continue
                art = raw.convert("RGBA")
        except (OSError, Image.DecompressionBombError):
            continue  # unreadable drawings are skipped: training data, not a user's photo
        art = art.crop(art.getbbox() or (0, 0, art.width, art.height))
        art.thumbnail((IMAGE_SIZE, IMAGE_SIZE))  # once, not for every view: the views shrink it
        rng = random.Random(f"{seed}:{path}")
        views = ICON_VIEWS if is_icon(path) else VIEWS
        batch += [(placed(art, rng), str(path)) for _ in range(views)]
        if len(batch) >= 64:
            flush()
    if batch:
        flush()
    empty = torch.zeros(0, model.vision.dim, dtype=torch.float16)
    return {"features": torch.cat(features) if features else empty, "paths": view_paths}


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
