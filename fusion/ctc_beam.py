"""CTC prefix beam search and sequence scores over the adapter's speech frames.

Greedy CTC read-out (compress.py) keeps only the likeliest label of each frame; a beam keeps
the likeliest few whole readings, so that another judge (speech_reading.py) can choose
among them. Log-probabilities throughout; class 0 is blank, class v + 1 is token v.

Letters: T frames, V vocabulary.
"""

import math

import torch

NEG_INF = -math.inf


def prefix_beam_search(
    log_probs: torch.Tensor, beam: int, per_frame: int = 8, floor: float = -12.0
) -> list[tuple[tuple[int, ...], float]]:
    """log_probs [T, 1 + V] -> up to `beam` (token ids, log-probability), likeliest first.

    Each frame extends the readings only by its `per_frame` likeliest tokens, and only those
    above `floor` (log-probability): a reading needs at least one frame that names each token.
    A reading's probability sums over all its frame alignments (blank and repeat paths), as in
    the CTC objective; the readings left are exact up to that pruning.
    """
    if log_probs.ndim != 2 or log_probs.shape[0] == 0:
        raise ValueError(
            f"expected log-probabilities [T, 1 + V] with T > 0, got {tuple(log_probs.shape)}"
        )
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    per_frame = min(per_frame, log_probs.shape[1] - 1)
    top_values, top_tokens = log_probs[:, 1:].topk(per_frame, dim=-1)  # T, k
    blank = log_probs[:, 0].tolist()
    # reading -> (log P(ending in blank), log P(ending in its last token))
    readings: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for t in range(log_probs.shape[0]):
        frame = log_probs[t]
        extensions = [
            (token, value)
            for token, value in zip(top_tokens[t].tolist(), top_values[t].tolist())
            if value > floor
        ]
        following: dict[tuple[int, ...], list[float]] = {}
        add = _adder(following)
        for reading, (ends_blank, ends_token) in readings.items():
            total = _log_add(ends_blank, ends_token)
            add(reading, total + blank[t], NEG_INF)  # a blank frame
            if reading:  # the last token goes on
                add(reading, NEG_INF, ends_token + float(frame[reading[-1] + 1]))
            for token, value in extensions:
                if reading and token == reading[-1]:  # the same token again needs a blank between
                    add((*reading, token), NEG_INF, ends_blank + value)
                else:
                    add((*reading, token), NEG_INF, total + value)
        ranked = sorted(following.items(), key=lambda item: -_log_add(*item[1]))
        readings = {reading: (scores[0], scores[1]) for reading, scores in ranked[:beam]}
    results = [(reading, _log_add(*scores)) for reading, scores in readings.items()]
    return sorted(results, key=lambda item: -item[1])


def sequence_log_likelihoods(log_probs: torch.Tensor, readings: list[list[int]]) -> list[float]:
    """log P(reading | frames) under CTC for each reading (-inf where the frames are too few,
    or the reading is empty: a clip always says something)."""
    scores = [NEG_INF] * len(readings)
    rows = [i for i, reading in enumerate(readings) if reading]
    if not rows:
        return scores
    frames = log_probs.shape[0]
    losses = torch.nn.functional.ctc_loss(
        log_probs.float()[:, None].expand(-1, len(rows), -1),  # T, B, 1 + V
        torch.tensor([token + 1 for i in rows for token in readings[i]]),
        torch.full((len(rows),), frames),
        torch.tensor([len(readings[i]) for i in rows]),
        blank=0,
        reduction="none",
        zero_infinity=False,
    )
    for i, loss in zip(rows, losses.tolist()):
        scores[i] = -loss
    return scores


def _adder(readings: dict[tuple[int, ...], list[float]]):
    """add(reading, log P(ending in blank), log P(ending in a token)) into `readings`."""

    def add(reading: tuple[int, ...], ends_blank: float, ends_token: float) -> None:
        if ends_blank == NEG_INF and ends_token == NEG_INF:
            return  # impossible (a repeat with no blank before it)
        entry = readings.setdefault(reading, [NEG_INF, NEG_INF])
        entry[0] = _log_add(entry[0], ends_blank)
        entry[1] = _log_add(entry[1], ends_token)

    return add


def _log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))
