"""Vocabulary sentences: every common English word the LM has a token for, said a few times.

A CTC head can only read out a token whose sound it has heard: LM embeddings carry meaning,
not sound, so an unheard word comes back as a heard one that fits the sentence ("Is a hammer
dangerous?" -> "Is a lamp dangerous?"). The question and fortune texts (align_data.py) hold
a few thousand distinct words; these texts hold every whole-word token of the LM's
vocabulary that is also an English dictionary word (Debian's wamerican), ~17.7k words, each
said in 2-3 short carrier sentences. The words are chosen by that rule alone, not from any
evaluation set, and texts holding a held-out question are dropped as everywhere else.

Slot sentences (`slot_texts`) fill the question templates with those words instead of the
templates' own slot values. The question set pairs each template with ~40-70 values, so a
head trained on it learns the pairs: a held-out pair ("Is a hammer dangerous?", when "Is a
lamp dangerous?" and "How big is a hammer?" were heard) comes back as a heard one. With any
word in any slot, the words must be heard, not guessed from the sentence.
"""

import random
import re
import sys
from functools import cache
from pathlib import Path

from fusion.training.align_data import NEW_TEMPLATES, keep_unseen
from fusion.training.questions import TEMPLATES

WORDS_FILE = Path("/usr/share/dict/words")  # Debian's wamerican
DICTIONARY_WORD = re.compile(r"[a-z]{2,}")  # lower-case, no apostrophes or names

# Carrier sentences: word lists and either-or questions, so each word is said mid-sentence
# (" word", the token typed questions use) in both statement and question intonation.
FRAMES = [
    "I said {}, {}, {}, {} and {}.",
    "The next words are {}, {}, {} and {}.",
    "Write down {} {} {} {} {}.",
    "Is it {}, {} or {}?",
    "What about {}, {}, {} and {}?",
    "Say {} {} {} {} {} {}.",
    "Did you hear {}, {} or {}?",
    "My list says {}, {}, {}, {}, {} and {}.",
]


@cache
def dictionary_words(words_file: Path = WORDS_FILE) -> frozenset[str]:
    """The lower-case words of the system word list (empty, with a note, when it is missing)."""
    if not words_file.is_file():
        print(
            f"note: {words_file} is missing (Debian package wamerican); the alignment set gets"
            " no vocabulary sentences",
            file=sys.stderr,
        )
        return frozenset()
    lines = words_file.read_text(encoding="utf-8", errors="replace").split()
    return frozenset(w for w in lines if DICTIONARY_WORD.fullmatch(w))


def token_words(tokenizer, words_file: Path = WORDS_FILE) -> list[str]:
    """Dictionary words the LM spells as one token after a space, in token-id order (BPE merge
    order: roughly most frequent first)."""
    words = dictionary_words(words_file)
    found = []
    for token, token_id in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        if text.startswith(" ") and text[1:] in words:
            found.append((token_id, text[1:]))
    return [word for _, word in sorted(found)]


def vocabulary_texts(tokenizer, seed: int, count: int, words_file: Path = WORDS_FILE) -> list[str]:
    """`count` carrier sentences, deterministic for `seed`; shuffled passes over all the token
    words, so every word is said before any is said again (keep_unseen's hash rule drops some
    sentences; their words are said later)."""
    words = token_words(tokenizer, words_file)
    if not words:
        return []
    rng = random.Random(seed)
    queue: list[str] = []
    texts: list[str] = []
    while len(texts) < count:
        frame = rng.choice(FRAMES)
        slots = frame.count("{}")
        while len(queue) < slots:
            queue += rng.sample(words, len(words))
        chosen, queue = queue[:slots], queue[slots:]
        kept = keep_unseen([frame.format(*chosen)])
        texts += kept
        if not kept:  # its words are said later in this pass
            queue += chosen
    return texts


def slot_texts(tokenizer, seed: int, count: int, words_file: Path = WORDS_FILE) -> list[str]:
    """`count` question-template sentences with random token words in their slots,
    deterministic for `seed` (none is, or holds, a held-out question)."""
    words = token_words(tokenizer, words_file)
    if not words:
        return []
    rng = random.Random(seed)
    templates = TEMPLATES + NEW_TEMPLATES
    texts: list[str] = []
    while len(texts) < count:
        template, slot = rng.choice(templates)
        texts += keep_unseen([template.format(**{slot: _slot_value(slot, words, rng)})])
    return texts


def _slot_value(slot: str, words: list[str], rng: random.Random) -> str:
    """A random filler shaped like the slot's own values ("a spoon", "the desert", "fold a
    shirt")."""
    word = rng.choice(words)
    if slot == "thing":
        return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
    if slot == "topic":
        return word if rng.random() < 0.5 else f"the {word}"
    if slot == "action":
        return f"{word} {rng.choice(['a', 'the', 'my'])} {rng.choice(words)}"
    return f"{rng.choice(['the', 'a'])} {word}"  # place
