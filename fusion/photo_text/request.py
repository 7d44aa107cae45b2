"""Whether a message asks to read the text in view, and which photos it asks about.

Only such messages run OCR (~0.4 s a photo on 2 cores); every other question about a photo
keeps its speed. The test is on words, typed or said: "What does this sign say?", "read it",
"what's written here", "how much is the coffee on the menu", "what brand is this".
"""

import re
from collections.abc import Sequence

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


def asks_to_read(words: str) -> bool:
    """Whether a question (typed, or a transcript of what was said) is about text in view."""
    return READING.search(words) is not None


def photos_to_read(messages: Sequence[Message]) -> dict[int, list[Photo]]:
    """For each user message that asks to read, by index: its own photos, or when it has
    none the photos of the latest earlier message that has some ("what does it say?" about
    the photo before)."""
    found, latest = {}, []
    for index, message in enumerate(messages):
        latest = message.photos or latest
        said = message.speech.transcript if message.speech and message.speech.transcript else ""
        if message.role == "user" and latest and asks_to_read(f"{message.text}\n{said}"):
            found[index] = latest
    return found
