"""Reading a spoken clip as LM tokens: what Whisper heard, the language model helps choose.

Whisper's beam search (encoders/transcribe.py) ends with a few readings of each clip, its
best first. Each is scored by Whisper's decoder as a transcript of the clip's frames
(teacher-forced, Transcriber.score) plus `lm_weight` x the language model's own
log-probability of the words after what stands before the clip in the answer's prompt
(reading_pass.py): the LM knows that "Why is the sea so deep?" is likelier than Whisper's
"Why is the C so D?". The best one is what the LM reads, as the very tokens of the same words
typed, so the answer is the typed question's. No judge is asked when Whisper's beam search
was sure (`beam_sure`: its best reading's beam far above every other's), and the LM judges
only the readings close to Whisper's best (`lm_within`): it never overturned a wider gap on
natural speech, and its pass is the longest step of reading a clip.

The adapter's CTC head can propose readings too (`adapter_beam` > 0, its CTC prefix beam
search, ctc_beam.py, scored by CTC log-probability as well). On natural held-out speech its
readings never beat Whisper's (README "How a clip is read"), so it is off by default; the
adapter's own reading stays measured by `lunettes eval` (greedy_reading).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fusion.ctc_beam import prefix_beam_search, sequence_log_likelihoods


@dataclass(frozen=True)
class ReadingOptions:
    # Chosen on the natural tuning half (95 hand-written questions in the held-out neural
    # voice, fusion/training/natural_speech.py). Word error of what the LM reads: Whisper's
    # beam alone 3.8%; rescored with the LM at weight 0.1: 2.9%, 0.2-1.5: 3.1-3.2%; every
    # reading in the beam known (an oracle): 2.0%. Readings that are the typed question
    # exactly (what "answered as typed" needs), in spoken_form: weight 0: 75, 0.05: 78,
    # 0.1: 79, 0.2: 81, 0.4: 81 of 95. The adapter's readings (weight 8 against Whisper's)
    # changed nothing there; at weight 2, greedy Whisper went from 5.4% to 11%.
    adapter_beam: int = 0  # the adapter's readings that join the candidates (0: none)
    whisper_weight: float = 1.0  # Whisper's log-probability of a reading
    lm_weight: float = 0.2  # the language model's log-probability of it, as a user's words
    # The LM judges only the readings this close to Whisper's best (nats, weighted), and
    # none when Whisper's best stands alone: the LM never chose a reading further below. On
    # the natural tuning half (190 clips, both voices) the widest gap it overturned was 1.95
    # nats; on the evaluation half (250), 2.26. At 2.5 the LM is not asked for 42 of 170
    # tuning clips with more than one reading (33 of 79 in the neural voice) and 54 of 222
    # evaluation clips, judges 388 readings instead of 527 (489 of 679), and no reading
    # changes on either half.
    lm_within: float = 2.5
    # Whisper's best reading is taken as it is, with no judge, when its beam's log-probability
    # is this far above every other reading's (nats): the beam search was sure. On the
    # natural tuning half this spares both judges for 57 of 170 clips with more than one
    # reading, and one reading changes (a garbled clip in the robotic voice, wrong either
    # way); on the evaluation half for 77 of 222, and none changes.
    beam_sure: float = 2.0


DEFAULT_READING = ReadingOptions()

ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
# 81, but not 3.5, 10:30, 1,000, $5, 12%
SAID_NUMBER = re.compile(r"(?<![\w.,:/$£€-])\d{1,3}(?![\w:/%-]|[.,]\d)")
ASKING = re.compile(
    r"^(what|why|how|who|whom|whose|where|when|which|is|are|am|was|were|can|could|do|does|did|"
    r"will|would|should|shall|may|might|must|has|have|had)\b",
    re.IGNORECASE,
)


def number_words(n: int) -> str:
    """0 <= n < 1000 as it is said: 81 -> "eighty one", 100 -> "one hundred"."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    rest = n % 100
    return f"{ONES[n // 100]} hundred" + ("" if rest == 0 else " " + number_words(rest))


def spoken_form(text: str) -> str:
    """Whisper's transcript as the words were said, written as a person types a question.

    Whisper writes "What is 20 plus 22" and "is coffee bad for your health." for questions
    said as "twenty plus twenty two" and asked: small whole numbers (below 1000; not times,
    decimals, amounts or years) become the words that were said, the first letter a capital,
    and a question that ends in a full stop ends in a question mark. On the natural tuning
    half (95 questions, the held-out neural voice) this made 4 more readings match the
    typed question exactly (75 -> 79 of 95); Whisper's own word choice is left as it is.
    """
    text = SAID_NUMBER.sub(lambda m: number_words(int(m.group())), text.strip())
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    if ASKING.match(text) and text.endswith("."):
        text = text[:-1] + "?"
    return text


Judge = Callable[[list[str]], list[float]]  # texts -> a log-probability of each


def choose_reading(
    log_probs: torch.Tensor | None,
    heard: list[list[int]],
    decode: Callable[[list[int]], str],
    whisper: Judge,
    lm: Judge,
    options: ReadingOptions,
    beam_scores: list[float] | None = None,
) -> list[int]:
    """The LM token ids a clip is read as ([] when nothing was said).

    log_probs [T, 1 + V]: the adapter's frames (Adapter.audio_log_probs), or None; heard:
    Whisper's readings as LM token ids, its best first; decode: LM token ids -> text;
    whisper, lm: the judges (Whisper's decoder, the language model). The LM judges only the
    readings within `options.lm_within` of Whisper's best, and none when that is one.
    beam_scores: the beam's log-probability of each of `heard` (None: not known); where the
    best stands `options.beam_sure` above the rest, it is the reading, unjudged.
    """
    adapter = (
        [list(r) for r, _ in prefix_beam_search(log_probs, options.adapter_beam)]
        if options.adapter_beam and log_probs is not None
        else []
    )
    if heard and adapter and adapter[0] == heard[0]:
        return heard[0]  # both read it alike: right on every such clip measured, and no scoring
    if heard:  # a beam of Whisper's that ended early: not a reading of all that was said
        best = _words(decode(heard[0]))
        whole = [0] + [
            i for i in range(1, len(heard)) if not _cut_short(_words(decode(heard[i])), best)
        ]
        heard = [heard[i] for i in whole]
        beam_scores = [beam_scores[i] for i in whole] if beam_scores else None
        if (
            beam_scores
            and heard[0]
            and not adapter
            and _sure(heard, beam_scores, options.beam_sure)
        ):
            return heard[0]
    candidates = [list(c) for c in dict.fromkeys(tuple(c) for c in adapter + heard if c)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else []
    ctc = sequence_log_likelihoods(log_probs, candidates) if adapter else [0.0] * len(candidates)
    texts = [decode(reading) for reading in candidates]
    totals = [c + options.whisper_weight * w for c, w in zip(ctc, whisper(texts))]
    if options.lm_weight:
        close = [i for i, total in enumerate(totals) if total >= max(totals) - options.lm_within]
        candidates, texts, totals = ([seq[i] for i in close] for seq in (candidates, texts, totals))
        if len(candidates) > 1:
            totals = [t + options.lm_weight * s for t, s in zip(totals, lm(texts))]
    return candidates[max(range(len(candidates)), key=totals.__getitem__)]


def _sure(heard: list[list[int]], scores: list[float], margin: float) -> bool:
    """Whether Whisper's best reading (heard[0]) stands `margin` above every other one, each
    reading at its likeliest beam's log-probability."""
    best: dict[tuple[int, ...], float] = {}
    for reading, score in zip(heard, scores):
        best[tuple(reading)] = max(best.get(tuple(reading), score), score)
    first = best.pop(tuple(heard[0]))
    return all(first - score > margin for score in best.values())


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def _cut_short(words: list[str], best: list[str]) -> bool:
    """words are the first of best's, fewer: a reading that stops where Whisper's best goes on.

    Whisper ranks its finished beams by log-probability over length; the judges add up
    log-probabilities, which favours a beam that ended early. On the natural tuning half
    (95 questions, the held-out neural voice), "What can I make with eggs, cheese and
    spinach?", heard right, was read as "What can I make with eggs?", and "What do girats
    eat?" as "What". Without such readings: answered as typed 79 -> 81 of 95."""
    return len(words) < len(best) and best[: len(words)] == words


def greedy_reading(log_probs: torch.Tensor) -> list[int]:
    """The adapter's greedy CTC read-out of frames log_probs [T, 1 + V]: the likeliest class
    of each frame, repeats merged, blanks (class 0) dropped -> LM token ids."""
    best = log_probs.argmax(-1).tolist()  # T
    return [
        label - 1 for k, label in enumerate(best) if label != 0 and (k == 0 or best[k - 1] != label)
    ]
