"""Whether a message asks to read the text in view, and which photos it asks about.

Only such messages run OCR (~0.4 s a photo on 2 cores); every other question about a photo
keeps its speed. The test is on words, typed or said: "What does this sign say?", "read it",
"what's written here", "how much is the coffee on the menu", "what brand is this".

A narrower test, asks_for_words, tells a message that asks for the words themselves ("read it
to me", "what does it say", "what is written here") from one that asks about a thing with text
on it ("what colour is this sign?"): for the first, the text read stands for the photo
(model.py, photo_text/prompt.py).
"""

import re
from collections.abc import Callable, Sequence

from fusion.conversation import Message, Photo

READING_PATTERNS = [
    r"\bread(s|ing)?\b",
    r"\b(text|texts|wording|writing|written|inscription|handwriting|caption|captions)\b",
    r"\b(does|do)\b(?!\s+(i|you|we)\b)[^.?!]*\bsay\b",  # "what does it say", not "do you say"
    r"\bsays\b",
    r"\b(sign|signs|signpost|label|labels|menu|menus|poster|banner|headline|title|brand)\b",
    r"\b(word|words|letter|letters|lettering|spell|spelled|spelt|spelling)\b",
    r"\b(price|prices|cost|costs|number|numbers|timetable|schedule|receipt|ticket)\b",
    r"\b(whiteboard|blackboard|chalkboard|noticeboard|screen|page|note)\b",
    r"\btranslat(e|es|ion)\b",
]
READING = re.compile("|".join(READING_PATTERNS), re.IGNORECASE)
WORDS_PATTERNS = [
    r"\bread(s|ing)?\b",
    r"\b(text|wording|written|writing|inscription|caption|lettering)\b",
    r"\b(does|do)\b(?!\s+(i|you|we)\b)[^.?!]*\bsay\b",
    r"\bsays\b",
    r"\b(spell|spelled|spelt|spelling)\b",
    r"\bwhat\b[^.?!]*\b(words?|letters?)\b",
]
WORDS = re.compile("|".join(WORDS_PATTERNS), re.IGNORECASE)


def asks_to_read(words: str) -> bool:
    """Whether a question (typed, or a transcript of what was said) is about text in view."""
    return READING.search(words) is not None


def asks_for_words(words: str) -> bool:
    """Whether a question asks for the words in view themselves, to be said back."""
    return WORDS.search(words) is not None


def question_words(message: Message) -> str:
    """A message's question: its text and what was heard in its clip, if transcribed."""
    said = message.speech.transcript if message.speech and message.speech.transcript else ""
    return f"{message.text}\n{said}"


def photos_to_read(messages: Sequence[Message]) -> dict[int, list[Photo]]:
    """For each user message that asks to read, by index: its own photos, or when it has
    none the photos of the latest earlier message that has some ("what does it say?" about
    the photo before)."""
    return photos_asked_about(messages, asks_to_read)


def photos_asked_about(
    messages: Sequence[Message], asks: Callable[[str], bool]
) -> dict[int, list[Photo]]:
    """For each user message whose question `asks` is true of, by index: its own photos, or
    when it has none the photos of the latest earlier message that has some."""
    found, latest = {}, []
    for index, message in enumerate(messages):
        latest = message.photos or latest
        if message.role == "user" and latest and asks(question_words(message)):
            found[index] = latest
    return found
