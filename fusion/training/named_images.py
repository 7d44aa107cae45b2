"""Held-out images with names that people gave them: emoji drawings of everyday things.

Each emoji is drawn from an emoji font (Debian's fonts-noto-color-emoji), on a plain or
noisy background at a random size and place. Its names are the Unicode short name's main
word and the everyday words people use for the thing ("car", "automobile"): an answer
names the image when it says one of them. The vision tower's ImageNet labels play no part.

Emoji images are for evaluation only: no training or tuning set may ever draw on them
(tests check that the vision training sets take no emoji font).
"""

import random
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FONT_SIZE = 109  # the one size Noto Color Emoji's bitmaps come in
IMAGE_SIZE = 224

# emoji -> the names people give it (lowercase; the first is the Unicode short name's noun)
NAMES: dict[str, tuple[str, ...]] = {
    "🐱": ("cat", "kitten", "kitty"), "🐶": ("dog", "puppy"), "🐴": ("horse",),
    "🐮": ("cow",), "🐷": ("pig",), "🐭": ("mouse",), "🐰": ("rabbit", "bunny"),
    "🦊": ("fox",), "🐻": ("bear",), "🐼": ("panda",), "🐨": ("koala",), "🐯": ("tiger",),
    "🦁": ("lion",), "🐸": ("frog",), "🐵": ("monkey",), "🐔": ("chicken", "hen"),
    "🐧": ("penguin",), "🐦": ("bird",), "🦆": ("duck",), "🦉": ("owl",), "🐝": ("bee",),
    "🦋": ("butterfly",), "🐌": ("snail",), "🐢": ("turtle", "tortoise"), "🐍": ("snake",),
    "🐙": ("octopus",), "🐟": ("fish",), "🐬": ("dolphin",), "🐳": ("whale",),
    "🦀": ("crab",), "🐘": ("elephant",), "🦒": ("giraffe",), "🐪": ("camel",),
    "🦓": ("zebra",), "🐑": ("sheep", "lamb"), "🦔": ("hedgehog",), "🕷": ("spider",),
    "🍎": ("apple",), "🍌": ("banana",), "🍇": ("grapes", "grape"), "🍓": ("strawberry",),
    "🍒": ("cherries", "cherry"), "🍍": ("pineapple",), "🍉": ("watermelon", "melon"),
    "🍋": ("lemon",), "🍊": ("orange", "tangerine", "mandarin"), "🍐": ("pear",),
    "🥕": ("carrot",), "🌽": ("corn", "maize"), "🥦": ("broccoli",), "🍄": ("mushroom",),
    "🍞": ("bread", "loaf"), "🧀": ("cheese",), "🍕": ("pizza",), "🍔": ("hamburger", "burger"),
    "🍩": ("doughnut", "donut"), "🍪": ("cookie", "biscuit"), "🎂": ("cake",),
    "🍦": ("ice cream",), "☕": ("coffee", "cup", "mug", "tea"), "🍷": ("wine", "glass"),
    "🥚": ("egg",), "🚗": ("car", "automobile"), "🚲": ("bicycle", "bike"),
    "🚌": ("bus",), "🚂": ("locomotive", "train", "engine"), "✈": ("airplane", "aeroplane", "plane", "jet"),
    "🚀": ("rocket",), "⛵": ("sailboat", "boat", "yacht"), "🚁": ("helicopter",),
    "🚜": ("tractor",), "🚒": ("fire engine", "fire truck"), "🏠": ("house", "home"),
    "⏰": ("alarm clock", "clock"), "☂": ("umbrella",), "🔑": ("key",), "🔨": ("hammer",),
    "✂": ("scissors",), "📱": ("phone", "mobile", "smartphone"), "💡": ("light bulb", "bulb", "lamp"),
    "📚": ("books", "book"), "🎸": ("guitar",), "🎹": ("piano", "keyboard"),
    "⚽": ("soccer ball", "football", "ball"), "🏀": ("basketball", "ball"), "🎈": ("balloon",),
    "👓": ("glasses", "spectacles"), "👟": ("shoe", "sneaker", "trainer"), "🎩": ("hat", "top hat"),
    "🌻": ("sunflower", "flower"), "🌹": ("rose", "flower"), "🌵": ("cactus",),
    "🌲": ("tree", "evergreen", "pine", "fir"), "🍁": ("maple leaf", "leaf"),
    "☀": ("sun",), "🌙": ("moon",), "⭐": ("star",), "🔥": ("fire", "flame"),
    "⛄": ("snowman",), "🌈": ("rainbow",), "⚓": ("anchor",), "🔔": ("bell",),
    "🕯": ("candle",), "🎁": ("gift", "present"), "🧦": ("socks", "sock"),
}  # fmt: skip


@dataclass
class NamedImage:
    image: Image.Image  # RGB, IMAGE_SIZE x IMAGE_SIZE
    names: tuple[str, ...]  # what people call it
    emoji: str


def named_images(seed: int = 0, limit: int | None = None) -> list[NamedImage]:
    """One drawing per emoji in NAMES, placed and backed at random (deterministic by seed)."""
    font = _emoji_font()
    rng = random.Random(seed)
    items = list(NAMES.items())[:limit]
    return [NamedImage(_draw(emoji, font, rng), names, emoji) for emoji, names in items]


# Emoji whose Unicode names say their colour ("large orange circle", "green apple"): every one
# the font draws in these blocks, graded against that word. "black" and "white" are left out:
# in Unicode names they mostly say how a glyph is filled ("white medium star" is yellow).
COLOUR_NAME_WORDS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
                     "grey", "gray")  # fmt: skip
EMOJI_BLOCKS = (range(0x2600, 0x27C0), range(0x2B00, 0x2C00), range(0x1F300, 0x1FB00))


def colour_named_images(seed: int = 0, limit: int | None = None) -> list[NamedImage]:
    """One drawing per emoji whose Unicode name says one colour; names: that colour."""
    import unicodedata

    font = _emoji_font()
    rng = random.Random(seed)
    found = []
    for code in (code for block in EMOJI_BLOCKS for code in block):
        name = unicodedata.name(chr(code), "").lower()
        colours = [w for w in COLOUR_NAME_WORDS if re.search(rf"\b{w}\b", name)]
        if len(colours) != 1 or name.startswith("emoji component"):
            continue
        glyph = _glyph(chr(code), font)
        if glyph.getbbox() is None:
            continue  # not in the font
        colour = "grey" if colours[0] == "gray" else colours[0]
        names = (colour, *(("gray",) if colour == "grey" else ()))
        found.append(NamedImage(_place(glyph, rng), names, chr(code)))
    return found[:limit]


def _emoji_font() -> ImageFont.FreeTypeFont:
    if not EMOJI_FONT.is_file():
        raise FileNotFoundError(
            f"{EMOJI_FONT} is missing: install Debian's fonts-noto-color-emoji "
            "(LUNETTES_TRAINING=1 bash scripts/system-packages.sh)"
        )
    return ImageFont.truetype(str(EMOJI_FONT), FONT_SIZE)


def _glyph(emoji: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    """The emoji drawn alone: RGBA 160 x 160, transparent around it."""
    glyph = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text((80, 80), emoji, font=font, embedded_color=True, anchor="mm")
    return glyph


def _draw(emoji: str, font: ImageFont.FreeTypeFont, rng: random.Random) -> Image.Image:
    return _place(_glyph(emoji, font), rng)


def _place(glyph: Image.Image, rng: random.Random) -> Image.Image:
    """A drawn glyph (RGBA) cut to its extent, at a random size and place on a plain
    background: RGB IMAGE_SIZE x IMAGE_SIZE."""
    glyph = glyph.crop(glyph.getbbox() or (0, 0, 160, 160))
    side = rng.randint(120, 200)
    glyph.thumbnail((side, side))
    background = tuple(rng.randint(200, 255) for _ in range(3))
    canvas = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    x = rng.randint(0, IMAGE_SIZE - glyph.width)
    y = rng.randint(0, IMAGE_SIZE - glyph.height)
    canvas.paste(glyph, (x, y), glyph)
    return canvas


def names_it(answer: str, names: tuple[str, ...]) -> bool:
    """Whether an answer says one of the names, as whole words (plural "s" allowed)."""
    text = answer.lower()
    return any(re.search(rf"\b{re.escape(name)}(s|es)?\b", text) for name in names)
