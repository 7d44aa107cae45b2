"""A decode step in a plain loop over the layers (fusion/decode_step.py): the logits of
transformers' own forward, bit for bit, for one row and for a decode batch, from joined blocks."""

import pytest
import torch
from torch import nn

from encoders.gemv import load_gemv, random_blocks
from fusion.batch_decoder import BatchDecoder
from fusion.decode_step import DecodeStep, fuse_blocks, step_logits
from fusion.generate import GenerationOptions, generate_tokens
from fusion.kv_cache import GrowingCache
from fusion.row_linear import RowLinear, use_blocks, use_row_kernel
from tests.tiny import tiny_lm

VOCAB = 96


@pytest.fixture(scope="module")
def gemv(tmp_path_factory):
    built = load_gemv(tmp_path_factory.mktemp("cache"))
    if built is None or not built.blocks_vectorised:
        pytest.skip("no AVX2, FMA and F16C build of the kernel here: no layer reads blocks")
    return built


def blocked_lm(gemv, seed: int = 0, head_format: str = "q8_0"):
    """The tiny Llama, every linear layer reading random blocks that are its very weight."""
    lm = tiny_lm(VOCAB, eos_id=VOCAB - 1, seed=seed).eval()
    lm.lm_head.weight = nn.Parameter(lm.lm_head.weight.detach().clone())  # untied
    use_row_kernel(lm, gemv)
    generator = torch.Generator().manual_seed(seed)
    found = {}
    for name, layer in lm.named_modules():
        if isinstance(layer, RowLinear):
            kind = head_format if name == "lm_head" else "q4_1"
            found[name] = random_blocks(kind, *layer.weight.shape, generator)
            with torch.no_grad():
                layer.weight.copy_(found[name].dequantized())
    assert use_blocks(lm, found) == len(found)
    return lm


def prefilled(lm, prompt: torch.Tensor) -> GrowingCache:
    cache = GrowingCache()
    with torch.inference_mode():
        lm(input_ids=prompt, cache=cache, use_cache=True)
    return cache


def test_layers_share_the_joined_blocks(gemv):
    lm = blocked_lm(gemv)
    before = {n: m.blocks.dequantized() for n, m in lm.named_modules() if isinstance(m, RowLinear)}
    step = fuse_blocks(lm)
    assert isinstance(step, DecodeStep) and lm.decode_step is step
    for index, layer in enumerate(lm.model.layers):
        qkv, gate_up = step.joined[index]
        attention = layer.self_attn
        assert qkv.sizes == tuple(
            m.out_features for m in (attention.q_proj, attention.k_proj, attention.v_proj)
        )
        # no second copy: each layer's blocks lie inside the joined ones, in order
        assert attention.q_proj.blocks.data.data_ptr() == qkv.blocks.data.data_ptr()
        assert layer.mlp.up_proj.blocks.data.data_ptr() > gate_up.blocks.data.data_ptr()
    for name, layer in lm.named_modules():
        if isinstance(layer, RowLinear):  # and they still hold the same weights
            assert torch.equal(layer.blocks.dequantized(), before[name]), name


@torch.inference_mode()
def test_one_row_gives_the_forwards_logits_bit_for_bit(gemv):
    lm = blocked_lm(gemv, seed=1)
    prompt = torch.randint(0, VOCAB - 1, (1, 9), generator=torch.Generator().manual_seed(1))
    theirs, ours = prefilled(lm, prompt), prefilled(lm, prompt)
    fuse_blocks(lm)
    token = torch.tensor([[5]])
    for _ in range(6):  # positions from the cache's length, no mask: as generate_tokens steps
        expected = lm(input_ids=token, cache=theirs, use_cache=True).logits[:, -1]
        got = step_logits(lm, token, ours)
        assert torch.equal(got, expected)
        token = got.argmax(-1, keepdim=True)


@torch.inference_mode()
def test_a_padded_batch_gives_the_forwards_logits_bit_for_bit(gemv):
    """3 rows whose prompts had 9, 6 and 4 tokens, left-padded, with their own positions."""
    lm = blocked_lm(gemv, seed=2)
    lengths = [9, 6, 4]
    prompt = torch.randint(0, VOCAB - 1, (3, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[0] * (9 - n) + [1] * n for n in lengths])  # 3, 9
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # 3, 9

    def prefill() -> GrowingCache:
        cache = GrowingCache()
        lm(input_ids=prompt, cache=cache, use_cache=True, attention_mask=mask,
           position_ids=positions)  # fmt: skip
        return cache

    theirs, ours = prefill(), prefill()
    fuse_blocks(lm)
    tokens, step_mask = torch.tensor([[3], [7], [11]]), mask
    at = torch.tensor([[n - 1] for n in lengths])
    for _ in range(5):
        step_mask = torch.cat([step_mask, step_mask.new_ones(3, 1)], dim=1)
        at = at + 1
        expected = lm(input_ids=tokens, cache=theirs, use_cache=True, attention_mask=step_mask,
                      position_ids=at).logits[:, -1]  # fmt: skip
        got = step_logits(lm, tokens, ours, step_mask, at)
        assert got.shape == (3, VOCAB)
        assert torch.equal(got, expected)
        tokens = got.argmax(-1, keepdim=True)


def test_answers_are_the_same_through_generate_and_a_decode_batch(gemv):
    lm = blocked_lm(gemv, seed=3)
    prompts = [torch.randn(1, n, lm.config.hidden_size) for n in (7, 3)]
    options = GenerationOptions(max_new_tokens=12)

    def answers() -> tuple[list, list]:
        alone = [list(generate_tokens(lm, p, options, stop_ids=set())) for p in prompts]
        batch = BatchDecoder(lm)
        rows = [batch.prefill(p, options, stop_ids=set()) for p in prompts]
        while batch.rows:
            batch.step()
        return alone, [row.generated for row in rows]

    before = answers()
    fuse_blocks(lm)
    assert answers() == before
    assert before[0] == before[1]  # and a row of a batch answers as it does alone


def test_other_lms_and_unblocked_layers_keep_their_own_forward(gemv):
    lm = tiny_lm(VOCAB, eos_id=VOCAB - 1).eval()
    use_row_kernel(lm, gemv)  # float32 rows, no blocks
    assert fuse_blocks(lm) is None and not hasattr(lm, "decode_step")
    mixed = blocked_lm(gemv, seed=4)
    layer = mixed.model.layers[1].mlp.up_proj
    layer.blocks = random_blocks("q8_0", *layer.weight.shape, torch.Generator().manual_seed(4))
    assert fuse_blocks(mixed) is None  # gate and up would join blocks of two formats
    assert fuse_blocks(nn.Sequential(nn.Linear(32, 32))) is None


@torch.inference_mode()
def test_more_rows_than_the_kernel_takes_go_through_the_forward(gemv):
    lm = blocked_lm(gemv, seed=5)
    step = fuse_blocks(lm)
    calls = []
    lm.decode_step = lambda *args: calls.append(args) or step(*args)
    prompt = torch.randint(0, VOCAB - 1, (9, 4), generator=torch.Generator().manual_seed(5))
    cache = prefilled(lm, prompt)
    logits = step_logits(lm, prompt[:, -1:], cache)  # 9 rows: the LM's own forward
    assert logits.shape == (9, VOCAB) and not calls
    step_logits(lm, prompt[:1, -1:], prefilled(lm, prompt[:1]))
    assert len(calls) == 1
