"""Batched decoding gives each answer exactly the tokens it gets alone: prompts of other
lengths, with scoped layouts, joining mid-way, sampling with seeds, cancelled rows."""

import torch

from fusion.batch_decoder import BatchDecoder
from fusion.generate import GenerationOptions, generate_tokens
from fusion.prompt_layout import Scope, layout

GREEDY = GenerationOptions(max_new_tokens=12)


def prompt(lm, length: int, seed: int) -> torch.Tensor:
    """[1, L, D] random prompt embeddings at the scale of the LM's own."""
    weight = lm.get_input_embeddings().weight
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, weight.shape[0], (length,), generator=generator)
    return weight[ids][None].detach().clone()


def alone(lm, embeddings, options, scoped=None):
    return list(generate_tokens(lm, embeddings, options, set(), scoped))


def run(decoder: BatchDecoder, joins: dict[int, list], cancel: dict[int, int] | None = None):
    """joins: step -> [(name, embeddings, options, layout)]; cancel: name -> step. Returns
    name -> tokens and the widest cache seen."""
    rows, widest, step = {}, 0, 0
    while step in joins or any(not r.finished for r in rows.values()) or step < max(joins):
        for name, embeddings, options, scoped in joins.get(step, []):
            rows[name] = decoder.prefill(embeddings, options, set(), scoped)
        for name, at in (cancel or {}).items():
            if at == step:
                decoder.drop([rows[name]])
        decoder.step()
        widest = max(widest, decoder.columns)
        step += 1
    return {name: row.generated for name, row in rows.items()}, widest


def test_rows_joining_mid_way_decode_as_they_would_alone(lm):
    a, b, c = prompt(lm, 7, 1), prompt(lm, 19, 2), prompt(lm, 3, 3)
    scoped = layout(19, [Scope(tuple(range(2, 14)), range(14, 16))])  # 2-13: seen by 14, 15
    got, _ = run(BatchDecoder(lm), {0: [("a", a, GREEDY, None)], 3: [("b", b, GREEDY, scoped)],
                                   4: [("c", c, GREEDY, None)]})  # fmt: skip
    assert got["a"] == alone(lm, a, GREEDY)
    assert got["b"] == alone(lm, b, GREEDY, scoped)
    assert got["c"] == alone(lm, c, GREEDY)
    assert got["b"] != alone(lm, b, GREEDY)  # the layout mattered


def test_sampling_rows_keep_their_own_seeds(lm):
    hot = GenerationOptions(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=7)
    warm = GenerationOptions(max_new_tokens=10, temperature=0.7, seed=8, repetition_penalty=1.3)
    a, b = prompt(lm, 5, 4), prompt(lm, 9, 5)
    got, _ = run(BatchDecoder(lm), {0: [("a", a, hot, None), ("b", b, warm, None)]})
    assert got["a"] == alone(lm, a, hot) and got["b"] == alone(lm, b, warm)


def test_a_cancelled_row_leaves_and_its_columns_go(lm):
    long, short = prompt(lm, 40, 6), prompt(lm, 4, 7)
    options = GenerationOptions(max_new_tokens=20)
    decoder = BatchDecoder(lm)
    got, widest = run(decoder, {0: [("long", long, options, None), ("short", short, options, None)]},
                      cancel={"long": 2})  # fmt: skip
    assert len(got["long"]) == 3 and got["long"] == alone(lm, long, options)[:3]
    assert got["short"] == alone(lm, short, options)
    assert widest >= 40
    assert decoder.rows == [] and decoder.cache is None  # all finished: nothing held


def test_the_cache_is_cropped_to_what_rows_attend(lm):
    decoder = BatchDecoder(lm)
    options = GenerationOptions(max_new_tokens=30)
    long = decoder.prefill(prompt(lm, 50, 8), options, set())
    short = decoder.prefill(prompt(lm, 5, 9), options, set())
    decoder.step()
    assert decoder.columns == 51
    decoder.drop([long])
    assert decoder.columns == 6 and decoder.rows == [short]
    assert all(
        layer.keys.shape[0] == 1 and layer.keys.shape[2] == 6 for layer in decoder.cache.layers
    )


def test_a_stop_id_or_max_tokens_finishes_a_row(lm):
    a = prompt(lm, 6, 10)
    first = alone(lm, a, GREEDY)[0]
    decoder = BatchDecoder(lm)
    row = decoder.prefill(a, GREEDY, {first})
    assert row.finished and row.generated == [] and decoder.rows == []
    one = decoder.prefill(a, GenerationOptions(max_new_tokens=1), set())
    assert one.finished and one.generated == [first] and decoder.rows == []
