"""How an answer opens, written into the assistant's turn before the LM goes on from it.

- **A colour question** ("What colour is it?", "what color is my shirt?") about a photo
  opens with the photo's colours named from its pixels (photo_colours.py): "Its main colours
  are orange and brown". The adapter's tokens do not bring colour to this small LM ("What
  colour is the cat?" was answered "The cat is likely to be a cat."), and the colours said as
  a sentence in the question were not used either; as the answer's first words, they are
  what it says.
- **An unsure name.** The adapter's name head says how sure it is of a photo's name; below
  its threshold the LM is told "This is perhaps a snail." around the photo's tokens
  (model.py). The small LM mostly dropped that doubt and answered "This is a snail." (README:
  of 102 unsure held-out drawings, 25 answers carried it). So when a question asks what a
  photo shows and the name of one of its photos is unsure, the answer opens with
  UNSURE_OPENING: the person hears the doubt, and the LM still names what it thinks it is.
"""

import re
from collections.abc import Sequence

from fusion.conversation import Message
from fusion.name_head import UNSURE_WORD
from fusion.photo_colours import asks_colour, main_colours
from fusion.photo_text.request import asks_to_read, photos_asked_about, question_words

UNSURE_OPENING = "I'm not sure, but it might be"
WHAT_IT_IS_PATTERNS = [
    (
        r"\bwhat(?:'s| is| are)\b[^.?!]*\b(?:this|that|it|these|those|here|picture|photo|"
        r"image|shown|showing|holding|in front of me)\b"
    ),
    r"\bwhat (?:do|can) you see\b",
    r"\bwhat am i (?:looking at|seeing|holding)\b",
    r"\bwhat (?:kind|sort|type) of\b",
    r"\b(?:describe|identify|recogni[sz]e)\b",
    r"\b(?:tell|show) me what\b",
    r"\bwhat (?:animal|thing|object|plant|flower|food|fruit|bird|car|vehicle)\b",
]
WHAT_IT_IS = re.compile("|".join(WHAT_IT_IS_PATTERNS), re.IGNORECASE)


def asks_what_it_is(words: str) -> bool:
    """Whether a question (typed, or a transcript of what was said) asks what something in
    view is: "What is in this picture?", "What am I looking at?", "Describe what you see."."""
    return WHAT_IT_IS.search(words) is not None


def unsure_answer(messages: Sequence[Message], phrases: Sequence[str | None]) -> bool:
    """Whether the answer to the last message opens with UNSURE_OPENING: it is a person's
    message with photos, it asks what they show (or says nothing: a photo alone asks that) and
    not to read their text, and the name of one of them is unsure. phrases: what names each
    of its photos for the LM (LunettesModel.photo_phrase), in order."""
    if not messages or messages[-1].role != "user" or not messages[-1].photos:
        return False
    words = question_words(messages[-1])
    asked = asks_what_it_is(words) or not words.strip()
    if not asked or asks_to_read(words):
        return False
    return any(phrase is not None and phrase.startswith(f"{UNSURE_WORD} ") for phrase in phrases)


def colour_opening(messages: Sequence[Message]) -> str:
    """The opening of the answer to the last message when it asks about colour: the colours
    of its first photo, or of the latest earlier message's ("What colour is it?" after a
    photo); else ""."""
    asked = photos_asked_about(messages, asks_colour).get(len(messages) - 1)
    if not asked or asked[0].image is None:
        return ""
    names = main_colours(asked[0].image)
    return f"Its main {'colour is' if len(names) == 1 else 'colours are'} {' and '.join(names)}"
