"""An answer opens with doubt when the name of the photo it is asked about is unsure."""

from dataclasses import replace

import pytest
import torch

from fusion.adapter import Adapter
from fusion.answer_opening import UNSURE_OPENING, asks_what_it_is, unsure_answer
from fusion.conversation import Message, Photo
from fusion.generate import GenerationOptions
from fusion.model import Chunk, LunettesModel
from tests.tiny import adapter_config, identities, photo

ASKS_WHAT = [
    "What is in this picture?", "What is this?", "what's that", "What do you see?",
    "What am I looking at?", "Describe what you see.", "Can you tell me what this is?",
    "What kind of bird is it?", "Which animal is this? What animal is this?",
    "Identify this, please.",
]  # fmt: skip
ASKS_ELSE = [
    "How many legs does a spider have?", "Is it going to rain?", "Thanks!", "Hello there",
    "What time is it in Tokyo?",
]  # fmt: skip


@pytest.mark.parametrize("question", ASKS_WHAT)
def test_questions_about_what_is_shown_are_told_apart(question):
    assert asks_what_it_is(question)


@pytest.mark.parametrize("question", ASKS_ELSE)
def test_other_questions_are_not(question):
    assert not asks_what_it_is(question)


def asked(text: str, photos: int = 1) -> list[Message]:
    return [Message("user", text, photos=[Photo(photo(seed=k)) for k in range(photos)])]


def test_the_answer_opens_with_doubt_only_when_asked_what_an_unsure_photo_shows():
    unsure, sure = ["perhaps a snail"], ["a snail"]
    assert unsure_answer(asked("What is in this picture?"), unsure)
    assert unsure_answer(asked(""), unsure)  # a photo alone asks what it shows
    assert unsure_answer(asked("What is this?", photos=2), ["a cat", "perhaps a dog"])
    assert not unsure_answer(asked("What is in this picture?"), sure)
    assert not unsure_answer(asked("What does this sign say?"), unsure)  # reading: OCR's text
    assert not unsure_answer(asked("Is it going to rain?"), unsure)
    assert not unsure_answer(asked("What is this?", photos=0), [])
    follow_up = [*asked("What is this?"), Message("assistant", "A snail."), Message("user", "Ok")]
    assert not unsure_answer(follow_up, unsure)  # the last message has no photo


@pytest.fixture
def named(model: LunettesModel):
    """The tiny model with an adapter whose name head names photos; sure_above set per test."""
    config = replace(
        adapter_config(model.vision, model.audio), image_label=True, image_names=["snail", "cat"]
    )
    adapter = Adapter.untrained(config, identities(model.vision, model.audio, model.lm), seed=0)
    shipped, model.adapter = model.adapter, adapter
    yield model
    model.adapter = shipped


def answer(model: LunettesModel, messages: list[Message]) -> tuple[str, list[str]]:
    chunks = [e.text for e in model.stream(messages, GenerationOptions(max_new_tokens=6))
              if isinstance(e, Chunk)]  # fmt: skip
    return "".join(chunks), chunks


def test_an_unsure_name_opens_the_streamed_answer_and_the_lm_goes_on_from_it(named):
    named.adapter.image_names.sure_above = 1.01  # no name is that sure: every one unsure
    messages = asked("What is in this picture?")
    text, chunks = answer(named, messages)
    assert chunks[0] == UNSURE_OPENING and text.startswith(UNSURE_OPENING)
    inputs = named.build_inputs(messages, named.answer_opening(messages))  # it ends the prompt
    ids = named.tokenizer.encode(UNSURE_OPENING, add_special_tokens=False)
    embed = named.lm.get_input_embeddings().weight
    assert inputs.opening == UNSURE_OPENING
    assert named.build_inputs(messages).opening == ""  # training's prompts: none
    assert torch.equal(inputs.embeddings[0, -len(ids) :], embed[ids])


def test_a_sure_name_or_another_question_leaves_the_answer_to_the_lm(named):
    named.adapter.image_names.sure_above = 0.0  # every name sure
    text, _ = answer(named, asked("What is in this picture?"))
    assert not text.startswith(UNSURE_OPENING)
    assert opening(named, asked("What is in this picture?")) == ""
    named.adapter.image_names.sure_above = 1.01
    assert opening(named, asked("How many legs does a spider have?")) == ""


def opening(model: LunettesModel, messages: list[Message]) -> str:
    model.encode_media(messages)
    return model.answer_opening(messages)


def plate(colour: tuple[int, int, int], background=(235, 235, 230), size: int = 96):
    """A coloured square held up against a plain wall: RGB size x size."""
    from PIL import Image

    image = Image.new("RGB", (size, size), background)
    image.paste(Image.new("RGB", (size // 3, size // 3), colour), (10, 50))  # off-centre
    return image


def test_the_subjects_colours_are_named_from_pixels():
    from PIL import Image

    from fusion.photo_colours import main_colour, main_colours

    assert main_colours(plate((200, 30, 30))) == ["red"]  # against a plain wall: the thing
    halves = Image.new("RGB", (80, 80), (30, 60, 200))
    halves.paste(Image.new("RGB", (48, 80), (240, 220, 40)), (0, 0))  # 70% of the middle
    assert main_colours(halves) == ["yellow", "blue"]  # no plain border: the middle, both
    cut_out = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    cut_out.paste(Image.new("RGBA", (10, 10), (40, 160, 60, 255)), (0, 0))
    assert main_colours(cut_out) == ["green"]  # a cut-out: its opaque pixels only
    assert main_colour(plate((200, 30, 30))) == "white"  # the training label: the middle


def test_a_colour_question_opens_with_the_photos_colours():
    from fusion.answer_opening import colour_opening
    from fusion.photo_colours import asks_colour

    assert asks_colour("What colour is it?") and asks_colour("what color are my shoes")
    assert not asks_colour("What is in this picture?")
    red = [Message("user", "What colour is it?", photos=[Photo(plate((200, 30, 30)))])]
    assert colour_opening(red) == "Its main colour is red"
    follow_up = [
        Message("user", "What is this?", photos=[Photo(plate((30, 60, 200)))]),
        Message("assistant", "A square."),
        Message("user", "And what colour is it?"),
    ]
    assert colour_opening(follow_up) == "Its main colour is blue"  # the photo before
    assert colour_opening(follow_up[:1]) == ""  # not asked
    assert colour_opening([Message("user", "What colour is the sky?")]) == ""  # no photo


def test_the_answer_to_a_colour_question_streams_from_its_opening(model):
    messages = [Message("user", "What colour is it?", photos=[Photo(plate((200, 30, 30)))])]
    text, chunks = answer(model, messages)
    assert chunks[0] == "Its main colour is red" and text.startswith("Its main colour is red")
