"""Decoding: deterministic when greedy, seeded when sampling, bounded, cut at stops, UTF-8 safe."""

import math
import time

import pytest
import torch

from encoders.errors import InputError
from fusion.conversation import user
from fusion.generate import (
    GenerationOptions,
    IncrementalText,
    generate_tokens,
    penalise_repeats,
    pick,
)
from fusion.model import Chunk, Stats

QUESTION = [user("Hello there, how are you today?")]


def answer(model, options: GenerationOptions, messages=QUESTION) -> tuple[str, Stats]:
    events = list(model.stream(messages, options))
    assert isinstance(events[-1], Stats) and all(isinstance(e, Chunk) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), events[-1]


def test_greedy_is_deterministic(model):
    first, stats = answer(model, GenerationOptions(max_new_tokens=24))
    second, _ = answer(model, GenerationOptions(max_new_tokens=24))
    assert first == second and first
    assert stats.new_tokens == 24


def test_stream_text_is_the_decoded_tokens(model):
    options = GenerationOptions(max_new_tokens=24)
    ids = list(
        generate_tokens(model.lm, model.build_inputs(QUESTION).embeddings, options, model.stop_ids)
    )
    text, _ = answer(model, options)
    assert text == model.tokenizer.decode(ids, skip_special_tokens=True).removesuffix("\ufffd")


def test_sampling_repeats_with_the_same_seed(model):
    options = GenerationOptions(max_new_tokens=24, temperature=1.0, seed=7)
    assert answer(model, options)[0] == answer(model, options)[0]
    other = GenerationOptions(max_new_tokens=24, temperature=1.0, seed=8)
    assert answer(model, other)[0] != answer(model, options)[0]


def test_tiny_nucleus_is_greedy(model):
    greedy, _ = answer(model, GenerationOptions(max_new_tokens=16))
    nucleus, _ = answer(
        model, GenerationOptions(max_new_tokens=16, temperature=1.5, top_p=1e-6, seed=3)
    )
    assert nucleus == greedy


@pytest.mark.parametrize("limit", [1, 5, 17])
def test_max_new_tokens_is_respected(model, limit):
    _, stats = answer(model, GenerationOptions(max_new_tokens=limit))
    assert stats.new_tokens == limit
    assert stats.finish_reason == "length"


def test_stop_string_cuts_the_answer(model):
    full, _ = answer(model, GenerationOptions(max_new_tokens=32))
    stop = full[6:10]  # likely spans several tokens: the partial stop must be held back
    cut, stats = answer(model, GenerationOptions(max_new_tokens=32, stop=(stop,)))
    assert cut == full[: full.find(stop)]
    assert stats.finish_reason == "stop"
    assert stats.new_tokens < 32


def test_earliest_of_several_stops_wins(model):
    full, _ = answer(model, GenerationOptions(max_new_tokens=32))
    late, early = full[20:23], full[8:11]
    cut, _ = answer(model, GenerationOptions(max_new_tokens=32, stop=(late, early)))
    assert cut == full[: min(full.find(late), full.find(early))]


def test_stop_token_ends_the_answer(model, monkeypatch):
    ids = list(
        generate_tokens(
            model.lm,
            model.build_inputs(QUESTION).embeddings,
            GenerationOptions(max_new_tokens=8),
            set(),
        )
    )
    stop_at = next(
        i for i in range(1, len(ids)) if ids[i] not in ids[:i]
    )  # first new token after the first
    monkeypatch.setattr(model, "stop_ids", {ids[stop_at]})
    text, stats = answer(model, GenerationOptions(max_new_tokens=8))
    assert stats.new_tokens == stop_at and stats.finish_reason == "stop"
    assert text == model.tokenizer.decode(ids[:stop_at]).removesuffix("\ufffd")


def test_too_long_a_conversation_is_refused(model):
    with pytest.raises(InputError, match="exceeds the model's 512"):
        list(model.stream(QUESTION, GenerationOptions(max_new_tokens=500)))


def test_stats_timings_and_counts(model):
    _, stats = answer(model, GenerationOptions(max_new_tokens=4))
    assert {"encode_image", "encode_audio", "first_token", "total"} <= stats.timings_ms.keys()
    assert 0 <= stats.timings_ms["first_token"] <= stats.timings_ms["total"]
    assert stats.prompt_tokens["image"] == stats.prompt_tokens["audio"] == 0
    assert stats.prompt_tokens["text"] > 0 and stats.transcripts == []


def test_cached_decoding_equals_full_recomputation(model):
    embeddings = model.build_inputs(QUESTION).embeddings  # 1, L, D
    cached = list(
        generate_tokens(model.lm, embeddings, GenerationOptions(max_new_tokens=12), set())
    )
    sequence, table = embeddings, model.lm.get_input_embeddings()
    with torch.inference_mode():
        for token in cached:
            assert int(model.lm(inputs_embeds=sequence).logits[0, -1].argmax()) == token
            sequence = torch.cat([sequence, table(torch.tensor([[token]]))], dim=1)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": -3},
        {"temperature": -0.1},
        {"temperature": 5.5},
        {"temperature": math.nan},
        {"top_p": 0.0},
        {"top_p": 1.01},
        {"top_p": math.nan},
        {"repetition_penalty": 0.9},
        {"repetition_penalty": 2.5},
    ],
)
def test_options_reject_bad_values(bad):
    (field,) = bad
    with pytest.raises(ValueError, match=field):
        GenerationOptions(**bad)


def test_options_reject_a_bare_stop_string():
    with pytest.raises((TypeError, ValueError)):
        GenerationOptions(stop="User:")


def test_unseeded_sampling_leaves_the_global_rng_alone(model):
    embeddings = model.build_inputs(QUESTION).embeddings
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    list(
        generate_tokens(
            model.lm, embeddings, GenerationOptions(max_new_tokens=2, temperature=1.0), set()
        )
    )
    assert torch.equal(torch.rand(3), expected)


def test_penalise_repeats_follows_ctrl():
    logits = torch.tensor([2.0, -2.0, 1.0, -1.0])
    penalised = penalise_repeats(logits, [0, 1, 0], 2.0)
    assert penalised.tolist() == [1.0, -4.0, 1.0, -1.0]  # positive divided, negative multiplied
    assert logits.tolist() == [2.0, -2.0, 1.0, -1.0]  # the model's logits are not modified
    assert penalise_repeats(logits, [0, 1], 1.0).equal(logits)
    assert penalise_repeats(logits, [], 2.0).equal(logits)


def test_repetition_penalty_breaks_a_greedy_loop(model):
    embeddings = model.build_inputs(QUESTION).embeddings

    def distinct(penalty: float) -> int:
        options = GenerationOptions(max_new_tokens=24, repetition_penalty=penalty)
        return len(set(generate_tokens(model.lm, embeddings, options, set())))

    assert distinct(2.0) > distinct(1.0)  # the tiny LM loops on a few tokens when unpenalised


def test_pick_keeps_at_least_the_top_token():
    logits = torch.tensor([0.0, 5.0, 1.0])
    generator = torch.Generator().manual_seed(0)
    for top_p in (1e-9, 0.5):
        options = GenerationOptions(temperature=1.0, top_p=top_p)
        assert {pick(logits, options, generator) for _ in range(20)} == {1}


def test_incremental_text_never_splits_a_character(tokenizer):
    text = "Bonjour 👋 à tous — 日本 ok"
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = IncrementalText(tokenizer)
    deltas = [stream.push(i) for i in ids]
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)
    assert "" in deltas  # the emoji's bytes did arrive in several tokens


def test_incremental_text_skips_special_tokens(tokenizer):
    stream = IncrementalText(tokenizer)
    assert stream.push(tokenizer.eos_token_id) == ""
    assert "".join(stream.push(i) for i in tokenizer.encode("ok", add_special_tokens=False)) == "ok"


def test_a_vanishing_temperature_decodes_greedily(model):
    embeddings = model.build_inputs(QUESTION).embeddings
    greedy = list(generate_tokens(model.lm, embeddings, GenerationOptions(max_new_tokens=6), set()))
    tiny = GenerationOptions(max_new_tokens=6, temperature=1e-302, seed=1)
    assert list(generate_tokens(model.lm, embeddings, tiny, set())) == greedy


def test_pause_after_sees_the_readers_text_and_pauses_the_shared_decoding(model, monkeypatch):
    """A spoken answer's reader pauses the decoding once its first piece is written
    (scheduler.py): pause_after is shown the text the reader gets, token by token."""
    from fusion import scheduler

    monkeypatch.setattr(scheduler, "MAX_HOLD_S", 5.0)  # a slow machine's reader still takes it
    plain, _ = answer(model, GenerationOptions(max_new_tokens=24))
    seen = []

    def pause_after(text: str) -> bool:
        seen.append(text)
        return len(text) >= 10

    model.share()
    events = model.stream(QUESTION, GenerationOptions(max_new_tokens=24, pause_after=pause_after))
    read = ""
    while len(read) < 10:
        event = next(events)
        read += event.text if isinstance(event, Chunk) else ""
    steps = model.decoder.steps
    time.sleep(0.2)  # paused: no step runs while the reader makes its voice
    assert model.decoder.steps == steps
    with model.decoding_held():  # the reader's hold takes the pause over
        pass
    rest = list(events)
    read += "".join(e.text for e in rest if isinstance(e, Chunk))
    assert read == plain  # the same answer
    assert seen[-1] == plain[: len(seen[-1])] and len(seen[-1]) >= 10 > len(seen[-2])
    assert all(plain.startswith(text) for text in seen)  # the reader's text as it grew
