"""Text in view: which questions read, OCR's reading order, and where the text goes in the prompt."""

import math
import socket

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import fusion.model
from encoders.text_reader import TextLine, TextPiece, TextReader, reading_order
from fusion.conversation import Message, Speech, user
from fusion.photo_text.prompt import NOTHING_READ, text_in_photos
from fusion.photo_text.request import asks_for_words, asks_to_read, photos_to_read
from fusion.training.sign_data import available_fonts
from tests.tiny import photo

SIGN = [
    TextLine("PLATFORM 4", 0.99, (10, 10, 200, 40)),
    TextLine("Trains to Lyon", 0.98, (10, 50, 250, 80)),
]


class FakeReader:
    """Stands in for TextReader: the same lines for every photo, counting its calls."""

    def __init__(self, lines: list[TextLine]):
        self.lines, self.calls = lines, 0

    def read(self, image: Image.Image) -> list[TextLine]:
        self.calls += 1
        return list(self.lines)


@pytest.fixture
def reader(model, monkeypatch) -> FakeReader:
    fake = FakeReader(SIGN)
    monkeypatch.setattr(model, "text_reader", fake)
    return fake


# --- which questions read --------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "What does this sign say?", "what does it say", "Can you read this for me?",
        "What's written on the door?", "Read the menu please", "What is the text here?",
        "What does the label on the bottle say?", "How much is the coffee?  Check the price.",
        "What brand is this?", "Which platform number is it?", "translate this", "Spell it out",
    ],
)  # fmt: skip
def test_reading_questions_are_recognised(question):
    assert asks_to_read(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is in this picture?", "What colour is it?", "Describe what you see.",
        "Is this a cat or a dog?", "What do you say we go?", "Repeat exactly what I said.",
        "How many people are there?", "",
    ],
)  # fmt: skip
def test_other_questions_do_not_read(question):
    assert not asks_to_read(question)


@pytest.mark.parametrize(
    "question, for_words",
    [
        ("What does this sign say?", True), ("Can you read this for me?", True),
        ("What is written here?", True), ("Read it out to me, please.", True),
        ("What words are on the banner?", True), ("Spell it out", True),
        ("What colour is this sign?", False), ("How much is the coffee on the menu?", False),
        ("What brand is this?", False), ("Which platform number is it?", False),
    ],
)  # fmt: skip
def test_questions_for_the_words_themselves(question, for_words):
    assert asks_to_read(question)  # every one runs OCR
    assert asks_for_words(question) == for_words  # only these get the text in place of the photo


def test_a_follow_up_reads_the_photo_before_and_speech_asks_too():
    first = user("What is this?", photos=[photo(seed=1)])
    spoken = Message("user", speech=Speech(np.zeros(0, np.float32), transcript="Read it to me."))
    found = photos_to_read([first, Message("assistant", "A sign."), spoken])
    assert found == {2: first.photos}
    assert photos_to_read([user("What does it say?")]) == {}  # no photo to read


# --- reading order ---------------------------------------------------------------------------


def box(left: float, top: float, width: float, height: float, degrees: float) -> np.ndarray:
    """[4, 2] corners of a width x height box at (left, top), turned about the origin."""
    corners = np.array(
        [[left, top], [left + width, top], [left + width, top + height], [left, top + height]]
    )
    turn = math.radians(degrees)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    return (corners @ rotation.T).astype(np.float32)


def test_reading_order_follows_the_slant_and_merges_a_line():
    # A 10-degree sign: "Coffee 2.50" over "Tea 1.80", each line two pieces with a wide gap;
    # turned, the right end of the first line sits lower than the left end of the second.
    pieces = [
        TextPiece("1.80", 0.9, box(300, 200, 80, 30, 10)),
        TextPiece("Coffee", 0.9, box(100, 150, 120, 30, 10)),
        TextPiece("Tea", 0.8, box(100, 200, 60, 30, 10)),
        TextPiece("2.50", 0.95, box(300, 150, 80, 30, 10)),
    ]
    lines = reading_order(pieces)
    assert [line.text for line in lines] == ["Coffee 2.50", "Tea 1.80"]
    assert lines[1].confidence == 0.8
    left, top, right, bottom = lines[0].box
    assert left < right and top < bottom


def test_reading_order_of_nothing_is_empty():
    assert reading_order([]) == []


def sign_image(lines: list[str], degrees: float) -> Image.Image:
    font_path = available_fonts()[0]
    font = ImageFont.truetype(str(font_path), 40) if font_path else ImageFont.load_default(40)
    image = Image.new("RGB", (480, 320), (0, 70, 160))
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((40, 60 + 70 * index), line, font=font, fill="white")
    return image.rotate(degrees, Image.BICUBIC, fillcolor=(90, 120, 60))


def test_real_ocr_reads_a_turned_sign_in_order_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("OCR tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    reader = TextReader()
    lines = reader.read(sign_image(["PLATFORM 4", "Trains to Lyon", "Exit left"], 7))
    assert [line.text for line in lines] == ["PLATFORM 4", "Trains to Lyon", "Exit left"]
    assert all(0.6 <= line.confidence <= 1 for line in lines)
    assert reader.read(Image.new("RGB", (200, 100), "white")) == []


# --- the prompt ------------------------------------------------------------------------------


def prompt_of(model, messages, monkeypatch) -> tuple[str, str]:
    """(the rendered prompt, its media marker) that build_inputs expands."""
    seen = {}
    expand = fusion.model.expand_placeholders

    def spy(prompt, marker, *args, **kwargs):
        seen["prompt"], seen["marker"] = prompt, marker
        return expand(prompt, marker, *args, **kwargs)

    monkeypatch.setattr(fusion.model, "expand_placeholders", spy)
    model.build_inputs(messages)
    return seen["prompt"], seen["marker"]


def test_read_lines_follow_the_photo_tokens_before_the_question(model, reader, monkeypatch):
    question = "How much is the coffee on this menu?"  # about a thing with text on it
    message = user(question, photos=[photo(seed=5)])
    timings = model.encode_media([message])
    assert reader.calls == 1 and timings["ocr"] > 0
    prompt, marker = prompt_of(model, [message], monkeypatch)
    expected = 'The text in the photo says: "PLATFORM 4 Trains to Lyon"'
    assert f"{marker}\n{expected}\n{question}" in prompt
    plain = model.build_inputs([Message("user", "What is in this picture?", message.photos)])
    with_text = model.build_inputs([message]).prompt_tokens
    assert with_text["image"] == plain.prompt_tokens["image"] > 0  # the text counts as text
    assert with_text["text"] > plain.prompt_tokens["text"]


def test_asked_for_the_words_the_text_stands_for_the_photo(model, reader, monkeypatch):
    message = user("Can you read this for me?", photos=[photo(seed=9)])
    model.encode_media([message])
    prompt, marker = prompt_of(model, [message], monkeypatch)
    assert marker not in prompt  # no photo tokens, no name: the text read alone
    assert (
        'The text in the photo says: "PLATFORM 4 Trains to Lyon"\nCan you read this for me?'
        in prompt
    )
    assert model.build_inputs([message]).prompt_tokens["image"] == 0
    follow_up = [message, Message("assistant", "It says PLATFORM 4."), user("What colour is it?")]
    assert model.build_inputs(follow_up).prompt_tokens["image"] == model.vision.num_tokens


def test_other_questions_never_run_ocr(model, reader, monkeypatch):
    message = user("What is in this picture?", photos=[photo(seed=6)])
    timings = model.encode_media([message])
    assert reader.calls == 0 and timings["ocr"] == 0.0
    assert message.photos[0].text_lines is None
    prompt, _ = prompt_of(model, [message], monkeypatch)
    assert "The text in" not in prompt and NOTHING_READ not in prompt


def test_a_photo_is_read_once_across_follow_ups(model, reader):
    conversation = [user("What does it say?", photos=[photo(seed=7)])]
    model.encode_media(conversation)
    conversation += [Message("assistant", "PLATFORM 4."), user("Read it again, slowly.")]
    assert model.encode_media(conversation)["ocr"] == 0.0
    assert reader.calls == 1
    assert model.build_inputs(conversation).prompt_tokens["image"] == model.vision.num_tokens


def test_no_text_is_said_so(model, monkeypatch):
    monkeypatch.setattr(model, "text_reader", FakeReader([]))
    message = user("What does this sign say?", photos=[photo(seed=8)])
    model.encode_media([message])
    prompt, marker = prompt_of(model, [message], monkeypatch)
    assert f"{marker}\n{NOTHING_READ}\nWhat does this sign say?" in prompt


def test_several_photos_are_named_in_turn():
    first, second = user(photos=[photo(seed=1), photo(seed=2)]).photos
    first.text_lines, second.text_lines = SIGN[:1], []
    assert text_in_photos([first, second]) == (
        'The text in photo 1 says: "PLATFORM 4"\nNo text could be read in photo 2.'
    )
    second.text_lines = None
    assert text_in_photos([first, second]) == ""  # not read yet: nothing is said
