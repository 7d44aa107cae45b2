"""The decode scheduler: answers from many threads share one batch, each gets exactly its
own tokens; a reader that stops frees its row; the KV budget holds answers back."""

import itertools
import threading
import time

import torch

from fusion import scheduler as scheduler_module
from fusion.generate import GenerationOptions
from fusion.scheduler import DecodeScheduler, kv_bytes_per_token
from tests.test_batch_decoder import alone, prompt


def collect(scheduler, embeddings, options, results, name):
    try:
        results[name] = list(scheduler.tokens(embeddings, options, set()))
    except Exception as error:  # noqa: BLE001 - the test looks at it
        results[name] = error


def answer_together(scheduler, prompts, options):
    results = {}
    threads = [
        threading.Thread(target=collect, args=(scheduler, p, options, results, i))
        for i, p in enumerate(prompts)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_answers_share_steps_and_keep_their_tokens(lm):
    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=16)
    prompts = [prompt(lm, 4 + 5 * i, 20 + i) for i in range(4)]
    results = answer_together(scheduler, prompts, options)
    for i, embeddings in enumerate(prompts):
        assert results[i] == alone(lm, embeddings, options)
    assert scheduler.row_steps / scheduler.steps > 1.5  # steps were shared
    assert scheduler.decoder.rows == [] and scheduler.running == 0
    scheduler.close()


def test_a_reader_that_stops_frees_its_row(lm):
    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=200)
    tokens = scheduler.tokens(prompt(lm, 6, 30), options, set())
    taken = [next(tokens) for _ in range(3)]
    assert taken == alone(lm, prompt(lm, 6, 30), options)[:3]
    tokens.close()
    other = list(scheduler.tokens(prompt(lm, 5, 31), GenerationOptions(max_new_tokens=4), set()))
    assert len(other) <= 4 and scheduler.running == 0 and scheduler.decoder.rows == []
    scheduler.close()


def test_the_kv_budget_holds_answers_back_until_there_is_room(lm):
    options = GenerationOptions(max_new_tokens=10)
    one_row = (8 + 10) * kv_bytes_per_token(lm)
    scheduler = DecodeScheduler(lm, kv_budget_bytes=one_row)  # room for one row at a time
    prompts = [prompt(lm, 8, 40 + i) for i in range(3)]
    results = answer_together(scheduler, prompts, options)
    for i, embeddings in enumerate(prompts):
        assert results[i] == alone(lm, embeddings, options)
    assert scheduler.row_steps == scheduler.steps  # never two rows at once
    scheduler.close()


def test_a_broken_prompt_fails_alone(lm):
    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=8)
    good = prompt(lm, 6, 50)
    broken = torch.zeros(1, 4, 3)  # the wrong width
    results = answer_together(scheduler, [good, broken, good], options)
    assert isinstance(results[1], Exception)
    assert results[0] == results[2] == alone(lm, good, options)
    scheduler.close()


def test_a_long_prompt_is_prefilled_in_chunks_between_the_steps_of_running_answers(lm):
    from fusion.scheduler import PREFILL_CHUNK

    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=40)
    running, long = prompt(lm, 6, 40), prompt(lm, 3 * PREFILL_CHUNK + 5, 41)
    seen = []  # (tokens asked for, the running answer's tokens so far) at each advance
    original = scheduler.decoder.advance

    def advance(prefill, options, stop_ids, tokens=None):
        rows = scheduler.decoder.rows
        seen.append((tokens, len(rows[0].generated) if rows else 0))
        return original(prefill, options, stop_ids, tokens)

    scheduler.decoder.advance = advance
    first = scheduler.tokens(running, options, set())
    got = [next(first) for _ in range(3)]  # running before the long prompt arrives
    results = answer_together(scheduler, [long], options)
    got += list(first)
    assert got == alone(lm, running, options) and results[0] == alone(lm, long, options)
    chunked = seen[1:]  # after the running answer's own prefill
    assert [tokens for tokens, _ in chunked] == [PREFILL_CHUNK] * 4
    steps_between = [b - a for (_, a), (_, b) in itertools.pairwise(chunked)]
    assert steps_between == [1, 1, 1]  # one decode step for the running answer per chunk
    scheduler.close()


def test_a_hold_pauses_the_batch_from_the_end_of_the_step_in_flight(lm):
    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=500)
    embeddings = prompt(lm, 6, 60)
    tokens = scheduler.tokens(embeddings, options, set())
    taken = [next(tokens)]
    with scheduler.hold():
        held_at = scheduler.steps
        time.sleep(0.2)  # < MAX_HOLD_S
        assert scheduler.steps == held_at  # not one step while held
    taken += list(tokens)  # then it goes on, to the same tokens as alone
    assert scheduler.steps > held_at and taken == alone(lm, embeddings, options)
    scheduler.close()


def test_a_hold_lasts_at_most_max_hold_s(lm, monkeypatch):
    monkeypatch.setattr(scheduler_module, "MAX_HOLD_S", 0.2)
    scheduler = DecodeScheduler(lm)
    tokens = scheduler.tokens(prompt(lm, 6, 61), GenerationOptions(max_new_tokens=4), set())
    with scheduler.hold():
        start = time.monotonic()
        first = next(tokens)  # its prompt waits for the hold to end by itself
        waited = time.monotonic() - start
        assert len([first, *tokens]) == 4  # and the answer runs to its end, still held
    assert waited >= 0.15
    scheduler.close()


def test_a_pause_stops_the_decoding_at_its_token_until_a_hold_takes_it_over(lm, monkeypatch):
    monkeypatch.setattr(scheduler_module, "MAX_HOLD_S", 5.0)  # a slow machine still holds
    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=500)
    embeddings = prompt(lm, 6, 62)
    seen = []  # the token ids pause_at was shown each time

    def pause_at(ids):
        seen.append(list(ids))
        return len(ids) == 3  # the reader's piece ends with the third token

    tokens = scheduler.tokens(embeddings, options, set(), pause_at=pause_at)
    taken = [next(tokens) for _ in range(3)]
    paused_at = scheduler.steps
    time.sleep(0.2)  # no step runs, not even the one after the third token
    assert scheduler.steps == paused_at == 2  # the first token came with the prefill
    assert seen == [taken[:1], taken[:2], taken]  # and not asked again once True
    with scheduler.hold():  # the reader holds: the pause is over, the hold goes on
        time.sleep(0.1)
        assert scheduler.steps == paused_at
    taken += list(tokens)  # then it goes on, to the same tokens as alone
    assert scheduler.steps > paused_at and taken == alone(lm, embeddings, options)
    scheduler.close()


def test_a_pause_no_hold_takes_over_ends_after_max_hold_s(lm, monkeypatch):
    monkeypatch.setattr(scheduler_module, "MAX_HOLD_S", 0.3)
    scheduler = DecodeScheduler(lm)
    options = GenerationOptions(max_new_tokens=6)
    tokens = scheduler.tokens(prompt(lm, 6, 63), options, set(), pause_at=lambda ids: True)
    first = next(tokens)
    start = time.monotonic()
    rest = list(tokens)  # waits out the pause, then runs to its end
    assert time.monotonic() - start >= 0.25 and len([first, *rest]) == 6
    assert scheduler._holds == [] and scheduler._pauses == []
    scheduler.close()


def test_a_reader_that_leaves_ends_its_pause(lm, monkeypatch):
    monkeypatch.setattr(scheduler_module, "MAX_HOLD_S", 5.0)  # far longer than the answer below
    scheduler = DecodeScheduler(lm)
    paused = scheduler.tokens(prompt(lm, 6, 64), GenerationOptions(max_new_tokens=50), set(),
                              pause_at=lambda ids: True)  # fmt: skip
    next(paused)
    paused.close()  # the reader left before it held: the others go on at once
    start = time.monotonic()
    other = list(scheduler.tokens(prompt(lm, 5, 65), GenerationOptions(max_new_tokens=3), set()))
    assert len(other) == 3 and time.monotonic() - start < scheduler_module.MAX_HOLD_S
    scheduler.close()


def test_every_hold_in_force_holds_even_when_an_older_one_has_run_out(lm, monkeypatch):
    monkeypatch.setattr(scheduler_module, "MAX_HOLD_S", 0.4)
    scheduler = DecodeScheduler(lm)
    tokens = scheduler.tokens(prompt(lm, 6, 66), GenerationOptions(max_new_tokens=500), set())
    next(tokens)
    with scheduler.hold():
        time.sleep(0.3)
        with scheduler.hold():  # in force until 0.7 s, while the first runs out at 0.4 s
            held_at = scheduler.steps
            time.sleep(0.3)
            assert scheduler.steps == held_at
    tokens.close()
    scheduler.close()
