"""Inference speed-ups that must not change results: packed linear layers, skipped init."""

import copy

import pytest
import torch
from PIL import Image
from torch import nn

import encoders.packed_linear
from encoders.packed_linear import (
    PackedLinear,
    bfloat16_available,
    pack_linears,
    packing_available,
    prompt_pass,
)
from encoders.skip_init import skipped_init
from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.model import Chunk
from fusion.prefill import advance, start_prefill
from fusion.reading_pass import ReadingPass
from tests.tiny import tone

needs_onednn = pytest.mark.skipif(not packing_available(), reason="no oneDNN in this torch")


@needs_onednn
def test_packed_linears_match_f_linear_and_keep_autograd():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 40), nn.GELU(), nn.Linear(40, 8, bias=False))
    reference = copy.deepcopy(net)
    assert pack_linears(net) == 2 and all(isinstance(m, PackedLinear) for m in net[::2])
    x = torch.randn(3, 5, 16)  # any leading shape
    with torch.inference_mode():
        torch.testing.assert_close(net(x), reference(x), rtol=1e-5, atol=1e-5)
    x.requires_grad_(True)
    net(x).sum().backward()  # with gradients the original weights are used
    assert x.grad is not None and net[0].weight.grad is not None


@needs_onednn
@pytest.mark.skipif(not bfloat16_available(), reason="no bfloat16 instructions on this CPU")
def test_bfloat16_packed_linears_round_the_product_and_give_float32():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 96), nn.GELU(), nn.Linear(96, 8))
    reference = copy.deepcopy(net)
    assert pack_linears(net, dtype=torch.bfloat16) == 2
    assert net[0].packed_weight.dtype == torch.bfloat16
    x = torch.randn(5, 64)
    with torch.inference_mode():
        mine, theirs = net(x), reference(x)
    assert mine.dtype == torch.float32
    error = (mine - theirs).abs().max() / theirs.abs().max()
    assert 0 < error < 0.02  # bfloat16's rounding, no more


@needs_onednn
def test_bfloat16_packing_falls_back_to_float32_where_the_cpu_has_none(monkeypatch):
    monkeypatch.setattr(encoders.packed_linear, "bfloat16_available", lambda: False)
    net = nn.Sequential(nn.Linear(8, 8))
    assert pack_linears(net, dtype=torch.bfloat16) == 1
    assert net[0].packed_weight.dtype == torch.float32
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        pack_linears(nn.Linear(8, 8), dtype=torch.float16)


def relative_error(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((mine - theirs).abs().max() / theirs.abs().max())


@needs_onednn
@pytest.mark.skipif(not bfloat16_available(), reason="no bfloat16 instructions on this CPU")
def test_a_prompt_copy_multiplies_only_inside_a_prompt_pass():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 96), nn.GELU(), nn.Linear(96, 8, bias=False))
    reference = copy.deepcopy(net)
    assert pack_linears(net, prompt_dtype=torch.bfloat16) == 2
    assert net[0].packed_weight.dtype == torch.float32
    assert net[0].prompt_weight.dtype == torch.bfloat16 and net[2].prompt_bias is None
    x = torch.randn(7, 64)
    with torch.inference_mode():
        before = net(x)
        with prompt_pass():
            inside = net(x)
        after = net(x)
    torch.testing.assert_close(before, reference(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, before, rtol=0, atol=0)  # left behind on the way out
    assert inside.dtype == torch.float32
    assert 0 < relative_error(inside, before) < 0.02  # bfloat16's rounding, no more


@needs_onednn
def test_no_prompt_copy_without_bfloat16_instructions(monkeypatch):
    monkeypatch.setattr(encoders.packed_linear, "bfloat16_available", lambda: False)
    net = nn.Sequential(nn.Linear(8, 8))
    assert pack_linears(net, prompt_dtype=torch.bfloat16) == 1
    assert net[0].prompt_weight is None
    x = torch.randn(3, 8)
    with torch.inference_mode():
        outside = net(x)
        with prompt_pass():
            torch.testing.assert_close(net(x), outside, rtol=0, atol=0)
    with pytest.raises(ValueError, match="bfloat16"):
        pack_linears(nn.Linear(8, 8), prompt_dtype=torch.float16)


@needs_onednn
@pytest.mark.skipif(not bfloat16_available(), reason="no bfloat16 instructions on this CPU")
def test_a_prefill_asked_in_bfloat16_runs_on_the_prompt_copy_and_nothing_else_does(
    model, tokenizer
):
    """The LM with prompt copies: a prefill asked in bfloat16, and the scores of the readings
    of a clip asked with a photo (its answer's prompt is so prefilled), differ from float32's
    by bfloat16's rounding; a prefill not asked so, the scores of a clip asked without a
    photo and one row (a decode step) are float32's exactly."""
    mixed_lm = copy.deepcopy(model.lm)
    assert pack_linears(mixed_lm, prompt_dtype=torch.bfloat16) > 0
    torch.manual_seed(0)
    embeddings = torch.randn(1, 9, model.lm.get_input_embeddings().embedding_dim)  # 1, L, D
    float32 = advance(model.lm, start_prefill(embeddings, None, None))  # V
    mixed = advance(mixed_lm, start_prefill(embeddings, None, None, bfloat16=True))
    assert 0 < relative_error(mixed, float32) < 0.05
    plain = advance(mixed_lm, start_prefill(embeddings, None, None))
    torch.testing.assert_close(plain, float32, rtol=1e-5, atol=1e-5)
    rows = [tokenizer.encode(text, add_special_tokens=False) for text in ["a b c", "a b d e"]]
    messages = [user(speech=tone(0.5))]
    context = model.reading_context(messages, messages[0].speech)
    vocabulary = model.lm.get_input_embeddings().weight
    assert ReadingPass(mixed_lm, context, vocabulary).scores(rows) == pytest.approx(
        ReadingPass(model.lm, context, vocabulary).scores(rows), rel=1e-5
    )
    messages = [user(photos=[Image.new("RGB", (64, 48), "orange")], speech=tone(0.5))]
    model.encode_media(messages)
    context = model.reading_context(messages, messages[0].speech)
    mixed = ReadingPass(mixed_lm, context, vocabulary).scores(rows)
    float32 = ReadingPass(model.lm, context, vocabulary).scores(rows)
    assert mixed != pytest.approx(float32, rel=1e-5)  # on the prompt copies
    assert mixed == pytest.approx(float32, rel=0.05, abs=0.5)  # bfloat16's rounding, no more
    with torch.inference_mode():
        one_row = embeddings[:, :1]  # 1, 1, D
        torch.testing.assert_close(
            mixed_lm(inputs_embeds=one_row).logits,
            model.lm(inputs_embeds=one_row).logits,
            rtol=1e-5,
            atol=1e-5,
        )


def test_only_a_conversation_with_a_photo_asks_for_a_bfloat16_prefill_and_reading(
    model, monkeypatch
):
    asked = []
    decode_alone = model._decode_alone

    def noting(embeddings, options, *rest):
        asked.append(options.prompt_in_bfloat16)
        return decode_alone(embeddings, options, *rest)

    monkeypatch.setattr(model, "_decode_alone", noting)
    options = GenerationOptions(max_new_tokens=2)
    photo = Image.new("RGB", (64, 48), "orange")
    for question in ([user("What is this?", photos=[photo])], [user("Hello there.")]):
        asked.clear()
        list(model.stream(question, options))
        assert asked[-1] == bool(question[0].photos)  # the last: the question, after the opening
    for spoken in ([user(photos=[photo], speech=tone(0.5))], [user(speech=tone(0.5))]):
        model.encode_media(spoken)  # its readings are scored as its prompt is prefilled
        assert model.reading_context(spoken, spoken[0].speech).bfloat16 == bool(spoken[0].photos)


@needs_onednn
def test_packing_skips_other_dtypes():
    net = nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16))
    assert pack_linears(net) == 0 and type(net[0]) is nn.Linear


@needs_onednn
def test_packed_language_model_answers_identically(model):
    options = GenerationOptions(max_new_tokens=12)
    question = [user("Tell me something.")]

    def answer():
        return "".join(e.text for e in model.stream(question, options) if isinstance(e, Chunk))

    before = answer()
    saved = copy.deepcopy(model.lm)
    try:
        assert pack_linears(model.lm) > 0
        assert answer() == before
    finally:
        model.lm = saved


def test_skipped_init_builds_without_filling_then_restores_init():
    torch.manual_seed(0)
    with skipped_init():
        layer = nn.Linear(64, 64)
        layer.weight.fill_(0.5)  # what a loader would do next; tensors stay writable
    assert torch.all(layer.weight == 0.5)
    fresh = nn.Linear(64, 64)  # outside: normal random init again
    assert fresh.weight.std() > 0.01 and nn.init.normal_.__name__ == "normal_"


def test_skipped_init_restores_init_after_an_error():
    with pytest.raises(RuntimeError, match="boom"), skipped_init():
        raise RuntimeError("boom")
    assert nn.Linear(32, 32).weight.std() > 0.01
