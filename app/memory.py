"""Remember and recall, as a person asks: "Remember that my car is on level 3", then "Where
did I park?".

A message that starts by asking to remember ("Remember this", "Remember that ...", "Don't
forget ...", and not a question) is kept as a moment (app/store/moments.py), with what was seen
in its photo (the words naming it, the text read in it) and what was said; the answer says
what was kept. A question about the person's own past ("where did I ...", "what was my ...")
that shares words with their moments is answered from those moments: they go to the language
model in the system message, each with when it was kept, and the model answers from them.
"""

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from app.store.moments import FoundMoment
from fusion.conversation import Message, Photo
from fusion.generate import GenerationOptions
from fusion.model import LunettesModel
from fusion.speech_reading import spoken_form

REMEMBER = re.compile(
    r"^\s*(?:(?:please|hey|ok|okay|lunettes)[\s,]+)*"
    r"(?:remember|note|keep in mind|don'?t forget|do not forget|save)\b"
    r"(?:\s+(?:this|that|this one|it))?\b\s*[:,.!-]?\s*(?P<note>.*?)\s*[.!]*\s*$",
    re.IGNORECASE | re.DOTALL,
)
FIRST_PERSON = re.compile(
    r"\b(?:i|i'm|i've|i'd|me|my|mine|myself|we|our|us)\b|\bdo you remember\b|\bremind me\b",
    re.IGNORECASE,
)
SECOND_PERSON = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "i'm": "you're", "i've": "you've", "i'd": "you'd", "we": "you", "our": "your", "us": "you",
}  # fmt: skip
ASKING = re.compile(
    r"\?\s*$|^\s*(?:where|what|when|which|who|how|did|do|have|was|is|are)\b", re.IGNORECASE
)
RECALLED = 3  # moments given to the model for one question at most, the best matches
COVERED = 0.6  # a question that is not in the first person recalls only moments holding
# at least this share of its content words (more than half) ("when is Anna's birthday" and "Anna's birthday
# is on the ninth of May"), so that "what is the capital of France?" is not answered from a
# note that mentions France
SUFFIXES = ("ing", "ed", "es", "s")
RECALL_STOP = ("\n\n",)  # a recall is answered in one paragraph (this small model goes on)


@dataclass
class Remember:
    note: str  # what to remember in the person's words ("my car is on level 3"), may be ""


def remember_request(text: str) -> Remember | None:
    """The message asks to remember something (not a question): what, else None."""
    match = REMEMBER.match(text or "")
    if match is None or text.strip().endswith("?"):
        return None
    return Remember(match.group("note").strip())


def stem(word: str) -> str:
    """A rough stem, for counting the words a question and a moment share."""
    word = word.removesuffix("'s")
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def coverage(question: str, moment: FoundMoment) -> float:
    """The share of the question's content words that the moment holds (0..1)."""
    from app.store.moments import WORD, search_words

    asked = {stem(w) for w in search_words(question)}
    kept = f"{moment.note} {moment.transcript} {moment.seen} {moment.text_read}".lower()
    held = {stem(w) for w in WORD.findall(kept)}
    return len(asked & held) / max(1, len(asked))


def second_person(text: str) -> str:
    """The person's words as the assistant says them back: "my car" -> "your car"."""
    return re.sub(
        r"\b(?:i'm|i've|i'd|i|me|my|mine|myself|we|our|us)\b",
        lambda m: SECOND_PERSON[m.group().lower()],
        text,
        flags=re.IGNORECASE,
    )


def seen_in(model: LunettesModel, image: Image.Image, media_owner: str = "") -> tuple[str, str]:
    """(words naming what the photo shows, the text read in it), kept with a moment.
    media_owner: whose media cache entries the encoding may use (LunettesModel.encode_media)."""
    photo = Photo(image)
    model.encode_media([Message("user", photos=[photo])], media_owner)
    named = model.photo_phrase(photo) or ""
    text = " / ".join(line.text for line in model.text_reader.read(image))
    return named, text


def when(moment_at: datetime, now: datetime | None = None) -> str:
    """A stored UTC time said as a person says it, in this machine's time zone."""
    local = moment_at.replace(tzinfo=UTC).astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    days = (today - local.date()).days
    clock = f"{local:%H:%M}"
    if days == 0:
        return f"today at {clock}"
    if days == 1:
        return f"yesterday at {clock}"
    if 1 < days < 7:
        return f"on {local:%A} at {clock}"
    return f"on {local:%A} {local.day} {local:%B %Y} at {clock}"


def described(moment: FoundMoment, now: datetime | None = None) -> str:
    """One moment as the model reads it: when, and what was kept, said back to the person."""
    parts = [second_person(moment.note)] if moment.note else []
    if moment.transcript and moment.transcript != moment.note:
        parts.append(f'you said "{moment.transcript}"')
    if moment.seen:
        parts.append(f"the photo showed {moment.seen}")
    if moment.text_read:
        parts.append(f'the text in view read "{moment.text_read}"')
    return f"{when(moment.created_at, now).capitalize()} you noted: " + "; ".join(
        parts or ["a photo"]
    )


def recall_question(question: str, moments: list[FoundMoment], now=None) -> str:
    """The question as the model reads it, after the moments it recalls (oldest first).

    The notes go in the person's message, said back in the second person ("Today at 14:02
    you noted: your car is on level 3."), then "Question: ...". Chosen on the 16 tuning
    pairs (assets/eval/recall_tune.jsonl, the right moment given): notes in the message 16
    right, in the system message 15, quoted as "I told you" 13, replayed as an earlier
    "Remember: ..." turn 10; then "Question: q" 15, the bare question 15, "From these
    notes: q" 14 (with search). The held-out pairs were not used to choose.
    """
    lines = [described(m, now) + "." for m in sorted(moments, key=lambda m: m.created_at)]
    return "\n".join(lines) + f"\n\nQuestion: {question.strip()}"


def kept_answer(remember: Remember, seen: str, text_read: str) -> str:
    """What the assistant says when a moment was kept."""
    what = second_person(remember.note) if remember.note else (f"this: {seen}" if seen else "this")
    if text_read and not remember.note:
        what += f' (the text reads "{text_read}")'
    return f"Okay, I'll remember: {what}."


def with_moments(
    store, owner: str, model: LunettesModel, messages: list[Message], media_owner: str = ""
) -> tuple[list[Message], list[FoundMoment]]:
    """The conversation to answer, its last question preceded by the owner's moments that it
    recalls (and those moments; none found: the conversation unchanged).

    A spoken question is transcribed first (its transcript is what is searched), and asks
    as its transcript's words when moments are found."""
    from app.store import moments

    question = messages[-1]
    if question.speech is not None and question.speech.transcript is None:
        model.encode_media([question], media_owner)
    said = spoken_form(question.speech.transcript or "") if question.speech else ""
    asked = " ".join(part for part in (question.text, said) if part)
    if not ASKING.search(asked):
        return list(messages), []
    found = moments.search(store, owner, asked, limit=RECALLED)
    if not FIRST_PERSON.search(asked):
        found = [m for m in found if coverage(asked, m) >= COVERED]
    if not found:
        return list(messages), []
    best = max(coverage(asked, m) for m in found)
    found = [m for m in found if coverage(asked, m) >= best]  # the closest, ties all given
    recalled = Message("user", recall_question(asked, found), photos=question.photos)
    return [*messages[:-1], recalled], found


def recall_options(options: GenerationOptions) -> GenerationOptions:
    """The person's answer settings, ending at the first blank line (one paragraph)."""
    return replace(options, stop=tuple(options.stop) + RECALL_STOP)


def remember_or_recall(
    store,
    owner: str,
    model: LunettesModel,
    conversation: list[Message],
    typed: str,
    photo_files: list[Path] = (),
    audio_file: Path | None = None,
    media_owner: str = "",
) -> tuple[list[Message], str | None, bool]:
    """(the conversation to answer, what the assistant says it kept or None, whether the
    question recalls moments) for the conversation's last question, typed as `typed`, its
    photos and clip kept as `photo_files` and `audio_file`.

    A "remember ..." question keeps a moment (with what its photos show and say) and is
    answered with what was kept; a question recalling the person's moments gets them.
    media_owner: whose media cache entries its clip and photos may come from (as the answer's
    own LunettesModel.encode_media): a web session's question prepared during its pause is
    found there, not encoded again.
    """
    from app.store import moments
    from app.store.files import StoreFull

    question = conversation[-1]
    if question.speech is not None and question.speech.transcript is None:
        model.encode_media([question], media_owner)  # what was said decides
    said = question.speech.transcript if question.speech else ""
    request = remember_request(typed or said or "")
    if request is None:
        recalled, found = with_moments(store, owner, model, conversation, media_owner)
        return recalled, None, bool(found)
    seen, text_read = [], []
    for photo in question.photos:
        named, text = seen_in(model, photo.image, media_owner)
        seen.append(named)
        text_read.append(text)
    seen_words, read_words = "; ".join(filter(None, seen)), " / ".join(filter(None, text_read))
    try:
        moments.remember(
            store, owner, request.note, list(photo_files), audio_file, transcript=said or "",
            seen=seen_words, text_read=read_words,
        )  # fmt: skip
    except StoreFull as error:
        return conversation, f"I could not remember this: {error.strerror}.", False
    return conversation, kept_answer(request, seen_words, read_words), False
