"""The alignment speech set: many voices reading many short sentences, for the CTC objective only.

The question set (speech_data.py) holds few words in few templates, so a CTC head trained on it
alone learns the corpus rather than the sounds ("How does football work?" comes back as "How
does photosynthesis work?"). These clips read other sentences too: Debian's fortunes, the
training questions, and new questions made from new templates and new slot values, in the
~275 ALIGN_VOICES. No text is a held-out question or holds one, so evaluation stays unseen.
Examples carry no LM answer (answer_ids == []).
"""

import random
import re
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import torch
from tqdm import tqdm

from encoders.audio_io import SAMPLE_RATE
from encoders.errors import InputError
from fusion.model import LunettesModel
from fusion.training.questions import SLOTS, TEMPLATES, is_held_out, split_questions
from fusion.training.speech_data import SpeechExample
from fusion.training.voices import ALIGN_VOICES, random_align_delivery, synthesize

FORTUNES_DIR = Path("/usr/share/games/fortunes")  # Debian's fortunes-min (or fortunes)
MIN_WORDS, MAX_WORDS = 3, 16
MAX_CLIP_SECONDS = 10.0  # longer clips are skipped: 500 encoder frames at 50 Hz
FLITE_SHARE = 0.25  # of clips; flite has 3 voices against espeak-ng's 272
# Share of the texts drawn from each source (renormalised when the fortunes are missing).
SOURCE_SHARES = {"fortunes": 0.4, "train questions": 0.25, "new questions": 0.35}

# A sentence we keep: capitalised, ASCII letters and plain punctuation, ending in . ! or ?
PLAIN_SENTENCE = re.compile(r"[A-Z][A-Za-z ,;:'-]*[A-Za-z][.!?]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
SPEAKER_LABEL = re.compile(r"^[A-Za-z ]{1,20}:\t")  # "Q:\t", "A:\t" in the riddles

NEW_TEMPLATES = [
    ("Is there {thing} here?", "thing"),
    ("I can see {thing}.", "thing"),
    ("Where did I put {thing}?", "thing"),
    ("Do you see {thing} in front of me?", "thing"),
    ("Is this {thing} or something else?", "thing"),
    ("My friend gave me {thing} yesterday.", "thing"),
    ("Please help me find {thing}.", "thing"),
    ("I would like to buy {thing}.", "thing"),
    ("I want to learn more about {topic}.", "topic"),
    ("Let us talk about {topic} for a minute.", "topic"),
    ("I read a book about {topic} last week.", "topic"),
    ("Is {topic} interesting to you?", "topic"),
    ("I need to {action} today.", "action"),
    ("Show me how to {action}.", "action"),
    ("Remind me to {action} tomorrow.", "action"),
    ("I forgot how to {action}.", "action"),
    ("Take me to {place}, please.", "place"),
    ("How far is {place} from here?", "place"),
    ("I am going to {place} later.", "place"),
    ("Meet me at {place} at noon.", "place"),
]
NEW_VALUES = {
    "thing": [
        "a pencil", "a spoon", "a fork", "a plate", "a blanket", "a mirror", "a bucket",
        "a ladder", "a scarf", "a basket", "a bench", "a fence", "a penguin", "a parrot",
        "a rabbit", "a carrot", "a potato", "a cucumber", "a jacket", "a pair of shoes",
        "a notebook", "a calculator", "a suitcase", "a bowl of soup", "an envelope",
    ],
    "topic": [
        "the brain", "birds", "bridges", "cheese", "trains", "the planets", "glaciers",
        "tennis", "painting", "poetry", "Germany", "Canada", "Berlin", "medicine", "oxygen",
        "the desert", "jazz", "forests", "butterflies", "the printing press",
    ],
    "action": [
        "fold a shirt", "change a light bulb", "make soup", "feed the cat", "walk the dog",
        "call a taxi", "open a jar", "clean my glasses", "set an alarm", "iron a shirt",
        "sew a button", "paint a wall",
    ],
    "place": [
        "the garden", "the office", "the airport", "a restaurant", "the hospital",
        "the cinema", "the market", "the zoo", "the post office", "the bakery",
    ],
}  # fmt: skip


def alignment_texts(seed: int, count: int, fortunes_dir: Path = FORTUNES_DIR) -> list[str]:
    """`count` short English sentences, a fixed mix of the sources, deterministic for `seed`.

    A source runs through all of its texts (shuffled) before it repeats one.
    """
    pools = {name: pool for name, pool in text_pools(fortunes_dir).items() if pool}
    total_share = sum(SOURCE_SHARES[name] for name in pools)
    rng = random.Random(seed)
    texts, left = [], count
    for index, (name, pool) in enumerate(pools.items()):
        wanted = (
            left if index == len(pools) - 1 else round(count * SOURCE_SHARES[name] / total_share)
        )
        texts += cycled(pool, wanted, rng)
        left -= wanted
    rng.shuffle(texts)
    return texts


def text_pools(fortunes_dir: Path = FORTUNES_DIR) -> dict[str, list[str]]:
    """The distinct texts of each source, in a fixed order, held-out questions left out."""
    return {
        "fortunes": keep_unseen(fortune_sentences(fortunes_dir)),
        "train questions": keep_unseen(sorted(split_questions()[0])),
        "new questions": keep_unseen(new_questions()),
    }


def keep_unseen(texts: Iterable[str]) -> list[str]:
    """`texts` without any held-out question, or any text that holds one, in order, deduplicated."""
    held_out = [q.rstrip(".?!").lower() for q in split_questions()[1]]
    return [
        text
        for text in dict.fromkeys(texts)
        if not is_held_out(text) and not any(q in text.lower() for q in held_out)
    ]


def cycled(pool: list[str], count: int, rng: random.Random) -> list[str]:
    """`count` texts from `pool`: shuffled passes over it, as many as needed."""
    texts = []
    while len(texts) < count:
        texts += rng.sample(pool, len(pool))
    return texts[:count]


def is_plain_sentence(text: str) -> bool:
    """ASCII words and plain punctuation, MIN_WORDS..MAX_WORDS words, no shouted words."""
    words = text.split()
    return (
        PLAIN_SENTENCE.fullmatch(text) is not None
        and MIN_WORDS <= len(words) <= MAX_WORDS
        and "--" not in text
        and not any(len(w.strip(",;:.!?'")) > 1 and w.strip(",;:.!?'").isupper() for w in words)
    )


def new_questions() -> tuple[str, ...]:
    """New templates with every slot value, old templates with the new slot values."""
    values = {slot: SLOTS[slot] + NEW_VALUES[slot] for slot in SLOTS}
    texts = [t.format(**{slot: v}) for t, slot in NEW_TEMPLATES for v in values[slot]]
    texts += [t.format(**{slot: v}) for t, slot in TEMPLATES for v in NEW_VALUES[slot]]
    return tuple(t for t in dict.fromkeys(texts) if is_plain_sentence(t))


@cache  # one read, and one warning, per directory
def fortune_sentences(directory: Path) -> tuple[str, ...]:
    """Plain sentences of every fortune file in `directory` (fortune's own files, not .dat)."""
    if not directory.is_dir():
        print(
            f"note: {directory} is missing (Debian package fortunes-min); the alignment texts"
            " are the questions only",
            file=sys.stderr,
        )
        return ()
    sentences = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.is_symlink() and path.suffix not in {".dat", ".u8"}:
            for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
                sentences += _sentences(fortune)
    return tuple(s for s in dict.fromkeys(sentences) if is_plain_sentence(s))


def _sentences(fortune: str) -> list[str]:
    """One fortune -> its sentences: attributions ("-- Mark Twain") and speaker labels gone."""
    lines = [SPEAKER_LABEL.sub("", line) for line in fortune.splitlines()]
    text = " ".join(line.strip() for line in lines if not line.strip().startswith("--"))
    text = re.sub(r"([.!?])[.!?]+", r"\1", " ".join(text.split()))  # "Or is it?!!" -> "?"
    return SENTENCE_END.split(text)


def build_align_set(
    model: LunettesModel,
    path: Path,
    count: int,
    seed: int = 0,
    texts: list[str] | None = None,
    description: str = "alignment speech",
) -> list[SpeechExample]:
    """Load the cached set at `path`, or synthesize `count` clips, encode and cache them.

    texts: what the clips say (default: alignment_texts(seed, count)), e.g. vocab_data's.
    A clip whose synthesis fails, or that runs over MAX_CLIP_SECONDS, is skipped and counted.
    """
    if path.is_file():
        return [SpeechExample(**item) for item in torch.load(path, weights_only=False)]
    rng = random.Random(seed)
    flite = [v for v in ALIGN_VOICES if v.engine == "flite"]
    espeak = [v for v in ALIGN_VOICES if v.engine != "flite"]
    examples, failed, too_long = [], 0, 0
    texts = alignment_texts(seed, count) if texts is None else texts
    for text in tqdm(texts, desc=description):
        voice = rng.choice(flite if rng.random() < FLITE_SHARE else espeak)
        delivery = random_align_delivery(rng, voice)
        try:
            waveform = synthesize(text, voice, delivery, seed=rng.randrange(2**31))  # S
        except (subprocess.CalledProcessError, InputError) as error:
            failed += 1
            print(f"skipped {voice.name} {text!r}: {error}", file=sys.stderr)
            continue
        if waveform.shape[0] > MAX_CLIP_SECONDS * SAMPLE_RATE:
            too_long += 1
            continue
        features = model.audio.encode(waveform)[0].to(torch.float16)  # T, C
        examples.append(SpeechExample(features, text, [], voice.name))
    print(
        f"{description}: {len(examples)} clips, {failed} failed synthesis,"
        f" {too_long} over {MAX_CLIP_SECONDS:.0f} s",
        file=sys.stderr,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([vars(e) for e in examples], path)
    return examples
