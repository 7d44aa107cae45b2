"""Prompts that begin like a kept one reuse its keys and values and answer exactly as when
prefilled whole; prompts prefilled a chunk at a time too; owners never share; the budget
holds."""

import torch

from fusion.generate import GenerationOptions, generate_tokens
from fusion.prefill import advance, start_prefill
from fusion.prefix_cache import PrefixCache
from fusion.prompt_layout import Scope, layout
from tests.test_batch_decoder import alone, prompt

GREEDY = GenerationOptions(max_new_tokens=10)


def answer(lm, embeddings, prefixes, scoped=None, owner=""):
    return list(generate_tokens(lm, embeddings, GREEDY, set(), scoped, prefixes, owner))


def test_a_follow_up_reuses_the_conversation_so_far_and_answers_the_same(lm):
    first = prompt(lm, 12, 1)
    follow_up = torch.cat([first, prompt(lm, 7, 2)], dim=1)  # the same 12 tokens, then more
    prefixes = PrefixCache()
    assert answer(lm, first, prefixes) == alone(lm, first, GREEDY)
    assert prefixes.hits == 0 and len(prefixes) == 1
    assert answer(lm, follow_up, prefixes) == alone(lm, follow_up, GREEDY)
    assert prefixes.hits == 1 and prefixes.reused_tokens == 12
    assert len(prefixes) == 1  # the follow-up's prompt replaced the one it extends


def test_a_prompt_diverging_mid_way_reuses_only_what_it_shares(lm):
    prefixes = PrefixCache()
    kept = prompt(lm, 15, 3)
    answer(lm, kept, prefixes)
    other = kept.clone()
    other[0, 9:] = prompt(lm, 6, 4)[0]  # the same first 9 tokens, then another question
    assert answer(lm, other, prefixes) == alone(lm, other, GREEDY)
    assert prefixes.reused_tokens == 9
    again = answer(lm, kept, prefixes)  # the very same prompt: reused whole, with its logits
    assert again == alone(lm, kept, GREEDY) and prefixes.reused_tokens == 9 + 15


def test_scoped_prompts_reuse_a_prefix_only_where_positions_and_attention_agree(lm):
    prefixes = PrefixCache()
    embeddings = prompt(lm, 20, 5)
    scoped = layout(20, [Scope(tuple(range(4, 10)), range(10, 13))])  # a clip's cues and text
    answer(
        lm, embeddings[:, :16], prefixes, layout(16, [Scope(tuple(range(4, 10)), range(10, 13))])
    )
    assert answer(lm, embeddings, prefixes, scoped) == alone(lm, embeddings, GREEDY, scoped)
    assert prefixes.reused_tokens == 16  # all of the kept prompt
    plain = PrefixCache()  # the same inputs kept without the layout: rows 10+ attend otherwise
    answer(lm, embeddings[:, :16], plain)
    assert answer(lm, embeddings, plain, scoped) == alone(lm, embeddings, GREEDY, scoped)
    assert plain.reused_tokens == 4  # tokens 0-3 alike; the scoped 4-9 take no position


def test_prefill_in_chunks_gives_the_logits_of_one_pass(lm):
    embeddings = prompt(lm, 23, 6)
    scoped = layout(23, [Scope(tuple(range(3, 11)), range(11, 15))])
    for chosen in (None, scoped):
        whole = advance(lm, start_prefill(embeddings, chosen, None))
        chunked = start_prefill(embeddings, chosen, None)
        outputs = [advance(lm, chunked, 5) for _ in range(5)]
        assert [o is None for o in outputs] == [True, True, True, True, False]
        torch.testing.assert_close(outputs[-1], whole, rtol=1e-4, atol=1e-4)
        assert chunked.cache.get_seq_length() == 23


def test_the_same_prompt_asked_again_runs_no_prefill_and_answers_the_same(lm):
    """A prompt kept whole keeps its next token's logits: asked again by its owner, nothing
    goes through the LM before its first token; a prompt of the same length that ends
    otherwise, or another owner, prefills as before."""
    prefixes = PrefixCache()
    embeddings = prompt(lm, 14, 11)
    first = answer(lm, embeddings, prefixes, owner="browser-a")
    passes = []
    hook = lm.register_forward_hook(lambda module, args, kwargs_or_out: passes.append(1))
    try:
        prefill = start_prefill(embeddings, None, prefixes, "browser-a")
        assert prefill.done == 14 and prefill.kept_logits is not None
        logits = advance(lm, prefill, prefixes=prefixes)
        assert passes == [] and logits.shape == (lm.config.vocab_size,)
        other_end = embeddings.clone()
        other_end[0, -1] = prompt(lm, 1, 12)[0, 0]
        assert start_prefill(other_end, None, prefixes, "browser-a").done == 13
        assert start_prefill(embeddings, None, prefixes, "browser-b").done == 0
    finally:
        hook.remove()
    assert (
        answer(lm, embeddings, prefixes, owner="browser-a")
        == first
        == alone(lm, embeddings, GREEDY)
    )


def test_owners_never_reuse_each_others_prompts(lm):
    prefixes = PrefixCache()
    embeddings = prompt(lm, 12, 7)
    answer(lm, embeddings, prefixes, owner="browser-a")
    answer(lm, embeddings, prefixes, owner="browser-b")
    assert prefixes.hits == 0 and len(prefixes) == 2
    answer(lm, embeddings, prefixes, owner="browser-a")
    assert prefixes.hits == 1


def test_the_budget_evicts_the_least_recently_used_prompt(lm):
    one = PrefixCache()
    answer(lm, prompt(lm, 10, 8), one)
    budget = int(one.bytes * 2.5)  # room for two prompts of this length
    prefixes = PrefixCache(budget_bytes=budget)
    a, b, c = prompt(lm, 10, 8), prompt(lm, 10, 9), prompt(lm, 10, 10)
    answer(lm, a, prefixes)
    answer(lm, b, prefixes)
    answer(lm, a, prefixes)  # a used again: b is now the oldest
    answer(lm, c, prefixes)
    assert len(prefixes) == 2 and prefixes.bytes <= budget
    hits = prefixes.hits
    answer(lm, a, prefixes)
    assert prefixes.hits == hits + 1  # a kept
    answer(lm, b, prefixes)
    assert prefixes.hits == hits + 1  # b evicted


def test_every_conversation_starts_after_the_system_prompt_and_only_its_owner_goes_further(
    model,
):
    from fusion.conversation import Message, user
    from fusion.model import Chunk

    options = GenerationOptions(max_new_tokens=6)

    def ask(messages, owner):
        before = model.prefixes.reused_tokens
        events = model.stream(messages, options, owner)
        text = "".join(e.text for e in events if isinstance(e, Chunk))
        return text, model.prefixes.reused_tokens - before

    answer_a, reused = ask([user("What is the capital of France?")], "browser-a")
    opening = model._opening[1].shape[1]
    assert reused == opening  # the system prompt, kept by this very answer, then reused
    _, reused = ask([user("What is the capital of France?")], "browser-b")
    assert reused == opening  # the same question from someone else: the system prompt only
    follow_up = [user("What is the capital of France?"), Message("assistant", answer_a),
                 user("And of Spain?")]  # fmt: skip
    text, reused = ask(follow_up, "browser-a")
    assert reused > opening  # the owner's own conversation so far
    model.prefixes.clear()
    assert ask(follow_up, "browser-a")[0] == text  # the same answer, prefilled whole


def test_a_question_prefilled_before_it_is_asked_is_answered_from_there_and_the_same(model):
    """LunettesModel.prefill (a hands-free question, during its pause): the answer then
    prefills nothing (the prompt's next-token logits were kept with it), for that owner only,
    and answers as when prefilled whole; its photo and clip are not encoded again."""
    from fusion.conversation import user
    from fusion.model import Chunk, Stats
    from tests.tiny import photo, said

    options = GenerationOptions(max_new_tokens=6)

    def ask(owner):
        question = user("", [photo()], said("What is this?"))  # a fresh message, as asked
        before = model.prefixes.reused_tokens
        events = list(model.stream([question], options, owner))
        stats = next(e for e in events if isinstance(e, Stats))
        text = "".join(e.text for e in events if isinstance(e, Chunk))
        return text, model.prefixes.reused_tokens - before, stats

    whole, _, _ = ask("browser-a")
    model.prefixes.clear()
    model.media_cache.clear()
    length = model.prefill([user("", [photo()], said("What is this?"))], "browser-b")
    assert length > 16  # the photo's 16 tokens and the clip's reading at least
    text, reused, stats = ask("browser-b")
    assert reused == length and text == whole  # no prompt token left: its first token at once
    assert stats.timings_ms["encode_image"] == stats.timings_ms["transcribe"] == 0.0
    _, reused, _ = ask("browser-c")  # someone else: the system prompt at most
    assert reused < length - 1


def test_a_prefill_stops_once_heard_when_told_to(model):
    """heard (the wearer spoke on, app/web_partial.py) is called with the transcript known,
    before the photo, the reading and the prompt: False leaves them for the answer."""
    from fusion.conversation import user
    from tests.tiny import photo, said

    question = user("", [photo()], said("What is this?"))
    transcripts = []

    def heard():
        transcripts.append(question.speech.transcript)
        return False

    assert model.prefill([question], "browser", heard) == 0
    assert transcripts == [question.speech.transcript] and transcripts[0] is not None
    assert question.photos[0].features is None and question.speech.reading is None
    assert len(model.prefixes) == 0


def test_a_conversation_too_long_is_not_prefilled(model, monkeypatch):
    from fusion.conversation import user

    monkeypatch.setattr(model, "context_length", 8)
    kept = len(model.prefixes)
    assert model.prefill([user("What is the capital of France, and why is it there?")]) == 0
    assert len(model.prefixes) == kept
