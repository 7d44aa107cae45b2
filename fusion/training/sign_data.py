"""The sign evaluation set: rendered signs -> "What does this sign say?" read word for word.

Each sign is one of SIGN_TEXTS (short real sign texts, 1-3 lines, written by hand) on a plate
of sign-like colours, in one of Debian's fonts (fonts-dejavu-core, fonts-liberation,
fonts-freefont-ttf; PIL's own font when none is installed), rotated by up to 10 degrees,
pasted on a cluttered background (a smooth photo-like field, shapes, noise) and blurred. The
same seed gives the same signs.

Score, "every word read": all words of the sign (case and punctuation ignored) appear among
the words of the answer, or of the lines OCR read (text_reader.py) for the OCR-alone figure.
"""

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm import tqdm

from fusion.conversation import Message, Photo
from fusion.generate import GenerationOptions
from fusion.model import Chunk, LunettesModel

SIGN_QUESTION = "What does this sign say?"
# The evaluation asks each sign one of these in turn: the first three were used in tuning how
# the text reaches the LM (photo_text/prompt.py), the last never was.
SIGN_QUESTIONS = (
    SIGN_QUESTION,
    "Can you read this for me?",
    "What is written here?",
    "Read it out to me, please.",
)
ANSWER = GenerationOptions(max_new_tokens=48, repetition_penalty=1.1)  # as the surfaces answer
IMAGE_SIZE = (640, 480)  # width, height in pixels: a glasses camera frame, downscaled
MAX_ROTATION = 10.0  # degrees, either way
MAX_BLUR = 1.5  # Gaussian blur radius in pixels
FONTS = Path("/usr/share/fonts/truetype")
FONT_DIRS = [FONTS / "dejavu", FONTS / "liberation", FONTS / "freefont"]
FONT_FILES = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed-Bold.ttf",
    "LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf", "LiberationSerif-Regular.ttf",
    "LiberationSerif-Bold.ttf", "LiberationSansNarrow-Bold.ttf", "LiberationMono-Bold.ttf",
    "FreeSans.ttf", "FreeSansBold.ttf", "FreeSerif.ttf", "FreeSerifBold.ttf", "FreeMonoBold.ttf",
]  # fmt: skip
# (plate, text) colours of real signs: street, motorway, warning, shop, chalkboard ...
PALETTES = [
    ((255, 255, 255), (20, 20, 20)), ((0, 70, 160), (255, 255, 255)),
    ((0, 110, 60), (255, 255, 255)), ((250, 205, 0), (15, 15, 15)),
    ((200, 20, 30), (255, 255, 255)), ((25, 25, 25), (255, 255, 255)),
    ((30, 45, 40), (235, 235, 220)), ((110, 60, 30), (250, 240, 220)),
    ((240, 235, 220), (120, 20, 30)), ((20, 30, 80), (250, 205, 0)),
]  # fmt: skip

# Sign texts, one line per "/": street and station signs, doors, shops, menus, notices.
SIGN_TEXTS = [
    "PLATFORM 4 / Trains to Lyon", "NO PARKING", "Exit", "Open 9am-5pm", "Pull", "Push",
    "STOP", "Emergency Exit", "Baker Street", "Rue de la Paix", "Main St", "Oxford Road",
    "Station Road / City Centre 2 km", "Joe's Coffee", "City Pharmacy / Open 24 hours",
    "Fresh Bread", "Espresso 2.50", "Cappuccino 3.20 / Latte 3.40", "Croissant 1.80",
    "Soup of the Day 4.50", "Fish and Chips 9.95", "Pizza Margherita 8.00",
    "Today's Special / Lasagne 11.50", "WET FLOOR", "KEEP OUT / Private Property", "No Smoking",
    "Please Queue Here", "Closed on Sundays", "SALE / 50% off", "Bus Stop / Line 42",
    "Speed Limit 30", "ONE WAY", "Gate B12", "Departures", "Arrivals / Baggage Claim",
    "Toilets", "Lift to Level 3", "Mind the Gap", "Staff Only", "Reception / Second Floor",
    "Library / Quiet Please", "Welcome to Springfield", "Green Street Market",
    "Hotel Bellevue", "Post Office", "Bakery", "Florist / Fresh Flowers Daily", "Car Wash",
    "Parking Level 2", "Taxi Rank", "Ticket Office", "Do Not Enter", "Caution / Hot Surface",
    "Hand Wash Only", "Cash Only", "Back in 10 minutes", "Open / Come In", "Sorry We Are Closed",
    "Visitor Parking / Permit Holders Only", "Cycle Lane", "Fire Assembly Point",
    "Museum of Modern Art", "Room 204", "High Street / Town Hall", "Beach Access",
    "Platform 9 / London Kings Cross", "Dentist / Dr Sarah Lee", "Ice Cream 2 scoops 4.00",
    "Pancakes / Maple Syrup 6.50", "Garden Centre / Plants and Trees", "Loading Bay",
    "Slow / Children Playing", "Tram Stop / Opera", "Free Wifi", "Pay Here",
]  # fmt: skip


@dataclass
class SignExample:
    image: Image.Image  # RGB, IMAGE_SIZE
    text: str  # the sign's words, lines joined by " / "
    font: str  # font file name, or "default" for PIL's own


def sign_examples(count: int, seed: int = 0) -> list[SignExample]:
    """`count` rendered signs (every text in turn, then again with other looks)."""
    rng = random.Random(seed)
    fonts = available_fonts()
    order = list(SIGN_TEXTS)
    rng.shuffle(order)
    return [render_sign(order[i % len(order)], rng.choice(fonts), rng) for i in range(count)]


def available_fonts() -> list[Path | None]:
    """The installed fonts of FONT_FILES, or [None] (PIL's default font) when none is."""
    paths = [directory / name for directory in FONT_DIRS for name in FONT_FILES]
    return [path for path in paths if path.is_file()] or [None]


def render_sign(text: str, font_path: Path | None, rng: random.Random) -> SignExample:
    lines = [line.strip() for line in text.split("/")]
    plate_colour, ink = rng.choice(PALETTES)
    plate = draw_plate(lines, font_path, plate_colour, ink, rng)
    plate = plate.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), Image.BICUBIC, expand=True)
    image = cluttered_background(rng)
    x = rng.randint(0, max(0, IMAGE_SIZE[0] - plate.width))
    y = rng.randint(0, max(0, IMAGE_SIZE[1] - plate.height))
    image.paste(plate, (x, y), plate)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, MAX_BLUR)))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 6, (*IMAGE_SIZE[::-1], 3))
    pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
    font = font_path.name if font_path else "default"
    return SignExample(Image.fromarray(pixels, "RGB"), " / ".join(lines), font)


def draw_plate(
    lines: list[str], font_path: Path | None, colour: tuple, ink: tuple, rng: random.Random
) -> Image.Image:
    """The sign alone, RGBA: text centred on a plate 30-85% of the image wide."""
    target_width = rng.uniform(0.3, 0.85) * IMAGE_SIZE[0]
    size = 64
    font = load_font(font_path, size)
    widest = max(font.getlength(line) for line in lines)
    size = max(16, min(int(size * target_width / widest), int(0.6 * IMAGE_SIZE[1] / len(lines))))
    font = load_font(font_path, size)
    line_height = int(size * 1.3)
    width = int(max(font.getlength(line) for line in lines) + size)
    height = line_height * len(lines) + size // 2
    plate = Image.new("RGBA", (width, height), (*colour, 255))
    draw = ImageDraw.Draw(plate)
    for index, line in enumerate(lines):
        left = (width - font.getlength(line)) / 2
        draw.text((left, size // 4 + index * line_height), line, font=font, fill=ink)
    return plate


def load_font(path: Path | None, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size)


def cluttered_background(rng: random.Random) -> Image.Image:
    """A smooth random colour field (a blurred photo's statistics) with shapes over it."""
    width, height = IMAGE_SIZE
    coarse = np.random.default_rng(rng.getrandbits(32)).integers(0, 256, (6, 8, 3), np.uint8)
    image = Image.fromarray(coarse, "RGB").resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(8, 30)):
        colour = tuple(rng.randrange(256) for _ in range(3))
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randint(10, 200), rng.randint(10, 200)
        shape = rng.choice(("rectangle", "ellipse", "line"))
        if shape == "line":
            draw.line((x, y, x + w, y + h - 100), fill=colour, width=rng.randint(1, 8))
        else:
            getattr(draw, shape)((x, y, x + w, y + h), fill=colour)
    return image


def words(text: str) -> list[str]:
    """Lower-case words and numbers, punctuation dropped: "Open 9am-5pm" -> [open, 9am, 5pm]."""
    return re.findall(r"[a-z0-9]+", text.lower())


def reads_every_word(sign_text: str, answer: str) -> bool:
    return set(words(sign_text)) <= set(words(answer))


def evaluate_signs(model: LunettesModel, examples: list[SignExample]) -> float:
    """Share of signs whose answer holds every word of the sign, asked SIGN_QUESTIONS in turn."""
    return sum(
        reads_every_word(example.text, sign_answer(model, example, question))
        for example, question in zip(
            tqdm(examples, desc="eval signs"), itertools.cycle(SIGN_QUESTIONS)
        )
    ) / max(1, len(examples))


def evaluate_reader(read: Callable[[Image.Image], list], examples: list[SignExample]) -> float:
    """OCR alone: share of signs whose every word is among the lines `read` finds."""
    return sum(
        reads_every_word(example.text, " ".join(line.text for line in read(example.image)))
        for example in examples
    ) / max(1, len(examples))


def sign_answer(model: LunettesModel, example: SignExample, question: str = SIGN_QUESTION) -> str:
    messages = [Message("user", question, photos=[Photo(example.image)])]
    return "".join(e.text for e in model.stream(messages, ANSWER) if isinstance(e, Chunk)).strip()
