"""Reading a spoken clip as LM tokens: the adapter proposes readings, Whisper helps choose.

The adapter's CTC head reads a clip as the LM's own tokens (compress.py), and the LM then
answers it as if those tokens were typed. Its greedy read-out keeps the likeliest label of
each frame. A beam keeps the likeliest whole readings instead (ctc_beam.py), and the right
one is often among them when it is not first. Whisper's decoder, which transcribes every
clip anyway (encoders/transcribe.py), scores each candidate as a transcript of the same
encoder frames. Its own transcript joins the candidates. The reading with the best
CTC log-probability + weight x Whisper log-probability is the one the LM reads.

The adapter and Whisper err differently: the adapter is trained on the question's words in
synthetic voices, Whisper's decoder on 680k hours of real speech. Figures: README
"Training the adapter", measured by `lunettes eval`, with the greedy reading beside it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fusion.ctc_beam import prefix_beam_search, sequence_log_likelihoods


@dataclass(frozen=True)
class ReadingOptions:
    # Both chosen on clips in 8 espeak-ng variants that neither training nor evaluation uses
    # (klatt, Denis, caleb, ...). 160 training and new-slot questions, read exactly: 46% greedy,
    # 55.0% with weights 1.5 to 2.5 (53.8% at 1.0 or 3.0), a beam of 16 no better than 8. 100
    # unseen Debian fortunes, word error: 41.5% at 1.5, 40.8% at 2.0 and 2.5, Whisper's own
    # transcript 39.8%. Outside the question templates the adapter is sure of words it was
    # trained on ("What is the weather like in Paris today?" read as "... history of Paris
    # today?"), so Whisper needs the larger weight there.
    beam: int = 8  # adapter readings kept (prefix beam search)
    whisper_weight: float = 2.0  # Whisper's log-probability against the adapter's CTC one


DEFAULT_READING = ReadingOptions()


def choose_reading(
    log_probs: torch.Tensor,
    heard: list[int] | None,
    decode: Callable[[list[int]], str],
    judge: Callable[[list[str]], list[float]],
    options: ReadingOptions,
) -> list[int]:
    """The LM token ids a clip is read as ([] when nothing was said).

    log_probs [T, 1 + V]: the adapter's frames (Adapter.audio_log_probs); heard: Whisper's
    transcript as LM token ids, or None; decode: LM token ids -> text; judge: texts ->
    Whisper's log-probability of each as the clip's transcript.
    """
    candidates = [list(reading) for reading, _ in prefix_beam_search(log_probs, options.beam)]
    if heard and candidates[0] == heard:
        return heard  # both read it alike: right on every such clip measured, and no scoring
    if heard and heard not in candidates:
        candidates.append(heard)
    candidates = [reading for reading in candidates if reading]
    if len(candidates) <= 1:
        return candidates[0] if candidates else []
    adapter_scores = sequence_log_likelihoods(log_probs, candidates)
    whisper_scores = judge([decode(reading) for reading in candidates])
    totals = [a + options.whisper_weight * w for a, w in zip(adapter_scores, whisper_scores)]
    return candidates[max(range(len(candidates)), key=totals.__getitem__)]


def greedy_reading(log_probs: torch.Tensor) -> list[int]:
    """The adapter's greedy CTC read-out of frames log_probs [T, 1 + V]: the likeliest class
    of each frame, repeats merged, blanks (class 0) dropped -> LM token ids."""
    best = log_probs.argmax(-1).tolist()  # T
    return [label - 1 for k, label in enumerate(best) if label != 0 and (k == 0 or best[k - 1] != label)]
