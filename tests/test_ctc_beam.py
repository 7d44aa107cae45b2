"""CTC prefix beam search and sequence likelihoods against brute force over every alignment."""

import itertools
import math

import pytest
import torch

from fusion.ctc_beam import prefix_beam_search, sequence_log_likelihoods


def _brute_force(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Every frame labelling [T] of classes 0..V (0 blank), collapsed -> log P(reading)."""
    frames, classes = log_probs.shape
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(classes), repeat=frames):
        reading, previous = [], 0
        for label in path:
            if label != 0 and label != previous:
                reading.append(label - 1)
            previous = label
        p = math.exp(sum(float(log_probs[t, label]) for t, label in enumerate(path)))
        totals[tuple(reading)] = totals.get(tuple(reading), 0.0) + p
    return {reading: math.log(p) for reading, p in totals.items()}


def _random_log_probs(frames: int, tokens: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(frames, 1 + tokens, generator=generator) * 2).log_softmax(-1)  # T, 1 + V


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unpruned_beam_finds_every_reading_with_its_exact_probability(seed):
    log_probs = _random_log_probs(frames=5, tokens=3, seed=seed)
    truth = _brute_force(log_probs)
    found = prefix_beam_search(log_probs, beam=10_000, per_frame=3, floor=-math.inf)
    assert {reading for reading, _ in found} == set(truth)
    for reading, score in found:
        assert score == pytest.approx(truth[reading], abs=1e-9)
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)


def test_a_narrow_beam_keeps_the_likeliest_readings():
    log_probs = _random_log_probs(frames=5, tokens=3, seed=3)
    truth = sorted(_brute_force(log_probs).items(), key=lambda item: -item[1])
    found = prefix_beam_search(log_probs, beam=3, per_frame=3, floor=-math.inf)
    assert len(found) == 3
    assert found[0][0] == truth[0][0]  # the best reading survives pruning here
    assert all(score <= truth[0][1] + 1e-9 for _, score in found)


def test_tokens_below_the_floor_are_never_read():
    log_probs = torch.full((4, 4), -30.0)
    log_probs[:, 0] = 0.0  # blank everywhere, tokens at e^-30
    assert prefix_beam_search(log_probs, beam=4)[0][0] == ()
    assert [reading for reading, _ in prefix_beam_search(log_probs, beam=4)] == [()]


def test_sequence_likelihoods_match_brute_force():
    log_probs = _random_log_probs(frames=4, tokens=3, seed=4)
    truth = _brute_force(log_probs)
    readings = [[0], [1, 2], [2, 2], [0, 1, 2]]
    scores = sequence_log_likelihoods(log_probs, readings)
    assert scores == pytest.approx([truth[tuple(r)] for r in readings], abs=1e-5)


def test_readings_the_frames_cannot_hold_are_impossible():
    log_probs = _random_log_probs(frames=3, tokens=3, seed=5)
    # [1, 1] needs a blank between its two tokens: 3 frames hold it, 2 tokens + 2 tokens do not
    assert sequence_log_likelihoods(log_probs, [[], [0, 1, 2, 0], [1, 1, 1]]) == [-math.inf] * 3
    assert sequence_log_likelihoods(log_probs, [[1, 1]])[0] > -math.inf


@pytest.mark.parametrize(
    "log_probs, beam", [(torch.zeros(0, 4), 2), (torch.zeros(4), 2), (torch.zeros(3, 4), 0)]
)
def test_bad_arguments_are_refused(log_probs, beam):
    with pytest.raises(ValueError):
        prefix_beam_search(log_probs, beam)
