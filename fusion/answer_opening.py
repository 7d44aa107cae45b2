"""How an answer opens when the model is unsure of what a photo shows.

The adapter's name head says how sure it is of a photo's name; below its threshold the LM
is told "This is perhaps a snail." around the photo's tokens (model.py). The small LM mostly
dropped that doubt and answered "This is a snail." (README: of 153 unsure held-out drawings,
16 answers carried it). So when a question asks what a photo shows and the name of one of its
photos is unsure, the answer is made to open with UNSURE_OPENING, written into the
assistant's turn before the LM continues it: the person hears the doubt, and the LM still
names what it thinks it is.
"""

import re
from collections.abc import Sequence

from fusion.conversation import Message
from fusion.name_head import UNSURE_WORD
from fusion.photo_text.request import asks_to_read, question_words

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
