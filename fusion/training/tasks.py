"""Training tasks: (conversation with media, target answer ids) pairs built from cached examples.

- speech "answer": the spoken question alone -> the LM's answer to the same words typed;
- speech "repeat": the spoken question + "Repeat exactly what I said." -> the words;
- vision "what": a photo + a question about it -> "This is a <top-1 ImageNet class>.";
- vision "colour": a photo + "What colour is it?" (alone, or as a follow-up) -> "It is mostly <colour>."
"""

import random

import numpy as np

from encoders.vision_labels import imagenet_names as class_names
from encoders.vision_labels import with_article
from fusion.conversation import Message, Photo, Speech
from fusion.training.speech_data import SpeechExample
from fusion.training.vision_data import VisionExample

REPEAT_PROMPT = "Repeat exactly what I said."
# Typed alongside a spoken question: the LM should answer the question as it would typed
# (train.py's cue stage), so the cues mean "this was said", not "repeat it".
FOLLOW_UPS = [
    "Please answer that.", "Answer in one sentence.", "Answer briefly.",
    "Can you help me with this?", "What do you think?",
]  # fmt: skip
WHAT_QUESTIONS = [
    "What is in this picture?", "What is this?", "What do you see?", "What am I looking at?",
    "Describe what you see.", "Can you tell me what this is?",
]  # fmt: skip
EVAL_WHAT_QUESTION = "What is in this picture?"
COLOUR_QUESTION = "What colour is it?"


def speech_media(example: SpeechExample) -> Speech:
    return Speech(waveform=np.zeros(0, np.float32), features=example.features.float().unsqueeze(0))


def photo_media(example: VisionExample) -> Photo:
    return Photo(image=None, features=example.features.float().unsqueeze(0))


def what_answer(example: VisionExample) -> str:
    return f"This is {with_article(class_names()[example.top5[0]])}."


def colour_answer(example: VisionExample) -> str:
    return f"It is mostly {example.colour}."


def speech_task(
    example: SpeechExample, rng: random.Random, encode
) -> tuple[list[Message], list[int]]:
    if rng.random() < 0.5:
        return [Message("user", speech=speech_media(example))], list(example.answer_ids)
    return [Message("user", REPEAT_PROMPT, speech=speech_media(example))], encode(example.text)


def vision_task(
    example: VisionExample, rng: random.Random, encode
) -> tuple[list[Message], list[int]]:
    photo = photo_media(example)
    roll = rng.random()
    if roll < 0.6:
        return [Message("user", rng.choice(WHAT_QUESTIONS), photos=[photo])], encode(
            what_answer(example)
        )
    if roll < 0.8:
        return [Message("user", COLOUR_QUESTION, photos=[photo])], encode(colour_answer(example))
    first = [
        Message("user", rng.choice(WHAT_QUESTIONS), photos=[photo]),
        Message("assistant", what_answer(example)),
    ]
    return [*first, Message("user", COLOUR_QUESTION)], encode(colour_answer(example))
