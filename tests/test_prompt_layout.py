"""Scoped cue vectors: no position of their own, seen only by the text typed with their clip."""

import dataclasses

import numpy as np
import pytest
import torch

from fusion.adapter import Adapter
from fusion.conversation import Message, Speech
from fusion.generate import GenerationOptions, generate_tokens
from fusion.prompt_layout import Scope, continued_positions, extended_attention, layout
from fusion.training.train import scoped_batch


def test_a_plain_prompt_has_no_layout():
    assert layout(5, []) is None


def test_scoped_tokens_take_no_position_and_only_their_rows_see_them():
    # 0 1 [2] 3 4 [5] 6 7 | 8: cues at 2 and 5 around words 3-4, typed text 6-7, then 8
    result = layout(9, [Scope((2, 5), range(6, 8))])
    assert result.positions.tolist() == [0, 1, 1, 2, 3, 3, 4, 5, 6]
    seen = result.attention
    assert not seen[3, 2] and not seen[4, 2]  # the words do not see the start cue
    assert seen[5, 2] and seen[5, 3] and seen[5, 4]  # the end cue sees its start and the words
    assert seen[6, 2] and seen[6, 5] and seen[7, 5]  # the typed text sees both cues
    assert not seen[8, 2] and not seen[8, 5] and seen[8, 7]  # later tokens do not
    assert not seen.triu(1).any()  # still causal


def test_generated_tokens_see_what_the_last_prompt_token_sees():
    prompt = layout(6, [Scope((1, 3), range(4, 5))])
    full = extended_attention(prompt, 8)
    assert torch.equal(full[:6, :6], prompt.attention)
    assert torch.equal(full[6, :6], prompt.attention[-1]) and torch.equal(full[7, :6], full[6, :6])
    assert full[7, 6] and full[6, 6] and not full[6, 7]
    assert continued_positions(prompt, 8).tolist() == [0, 0, 1, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "scope", [Scope((0, 9), range(9, 9)), Scope((2, 4), range(3, 5)), Scope((), range(0))]
)
def test_a_scope_outside_the_prompt_or_before_its_cues_is_refused(scope):
    with pytest.raises(ValueError):
        layout(6, [scope])


def test_padding_rows_of_a_scoped_batch_see_only_themselves():
    prompt = layout(4, [Scope((1, 2), range(3, 4))])
    batch = scoped_batch([prompt, None], [6, 3], 6, "cpu")
    attention, positions = batch["attention_mask"][:, 0], batch["position_ids"]
    assert torch.equal(attention[0], extended_attention(prompt, 6))
    assert torch.equal(attention[1, :3, :3], torch.ones(3, 3, dtype=torch.bool).tril())
    assert not attention[1, :3, 3:].any() and attention[1, 4, 4] and not attention[1, 4, :4].any()
    assert positions[0].tolist() == [0, 0, 0, 1, 2, 3] and positions[1, :3].tolist() == [0, 1, 2]


def _cued(model, typed: str, seed: int):
    """The model with a cue adapter whose audio projection is exactly the typed words."""
    config = dataclasses.replace(model.adapter.config, audio_cues=True, audio_snap=0.0)
    adapter = Adapter.untrained(config, model.adapter.info.identities, seed=seed)
    with torch.no_grad():
        adapter.audio_cues.copy_(torch.randn(2, config.lm_dim) * 3)
    embed = model.lm.get_input_embeddings()
    words = embed(torch.tensor(model.tokenizer.encode(typed, add_special_tokens=False)))
    start, end = adapter.audio_cues.unbind(0)
    adapter.project = lambda kind, features, vocabulary: torch.cat([start[None], words, end[None]])
    return adapter


def _inputs(model, adapter, messages):
    """model.build_inputs(messages) with `adapter` in place of the model's own; clips are its
    projection (speech_reading off: the tests' adapters project fixed words)."""
    saved = model.adapter, model.speech_reading
    model.adapter, model.speech_reading = adapter, None
    try:
        return model.build_inputs(messages)
    finally:
        model.adapter, model.speech_reading = saved


def _greedy(model, adapter, messages):
    inputs = _inputs(model, adapter, messages)
    options = GenerationOptions(max_new_tokens=8)
    return list(generate_tokens(model.lm, inputs.embeddings, options, set(), inputs.layout))


def _speech():
    return Speech(np.zeros(0, np.float32), features=torch.zeros(1, 8, 4))


def test_a_clip_alone_is_answered_exactly_as_its_words_typed(model):
    typed = "a b c d"
    adapter = _cued(model, typed, seed=1)
    spoken = _greedy(model, adapter, [Message("user", speech=_speech())])
    assert spoken == _greedy(model, adapter, [Message("user", typed)])
    inputs = model.build_inputs([Message("user", typed)])
    assert inputs.layout is None


def _next_token_logits(model, adapter, messages) -> torch.Tensor:
    inputs = _inputs(model, adapter, messages)
    scoped = {}
    if inputs.layout is not None:
        scoped = {
            "attention_mask": inputs.layout.attention[None, None],
            "position_ids": inputs.layout.positions[None],
        }
    with torch.no_grad():
        return model.lm(inputs_embeds=inputs.embeddings, **scoped).logits[0, -1]  # V


def test_only_text_typed_with_a_clip_feels_its_cues(model):
    cued, other = _cued(model, "a b c d", seed=1), _cued(model, "a b c d", seed=1)
    with torch.no_grad():
        other.audio_cues.mul_(-1)
    repeat = [Message("user", "say it again", speech=_speech())]
    first = _next_token_logits(model, cued, repeat)
    assert not torch.allclose(_next_token_logits(model, other, repeat), first)
    alone = [Message("user", speech=_speech())]
    torch.testing.assert_close(
        _next_token_logits(model, other, alone), _next_token_logits(model, cued, alone)
    )
