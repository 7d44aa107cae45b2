"""The embedded LM decoding one row from its GGUF file's own blocks (as it ships), against the
same layers on their float32 weights: the very weights, and the same answers."""

import pytest
import torch

from encoders.cache import default_cache_dir
from encoders.gemv import load_gemv
from fusion.bundle import speed_up_decoding
from fusion.decode_step import DecodeStep, step_logits
from fusion.gguf_layers import gguf_blocks
from fusion.kv_cache import GrowingCache
from fusion.language_model import EMBEDDED, embedded_gguf, load_language_model
from fusion.row_linear import RowLinear

pytestmark = pytest.mark.bundle

QUESTIONS = [
    "What is the capital of Australia?",
    "How long should I boil an egg?",
    "Why do onions make you cry?",
    "What is two plus three?",
]


@pytest.fixture(scope="module")
def loaded():
    """(the embedded LM as the bundle speeds it up, its tokenizer, how)."""
    gemv = load_gemv(default_cache_dir())
    if gemv is None or not gemv.blocks_vectorised:
        pytest.skip("no AVX2, FMA and F16C build of the kernel here: float32 rows are used")
    lm, tokenizer, _ = load_language_model(EMBEDDED, default_cache_dir())
    how = speed_up_decoding(lm, default_cache_dir(), gguf_file=embedded_gguf())
    assert how.startswith("blocks"), how
    return lm, tokenizer, how


def test_every_linear_layer_and_the_output_head_read_the_files_blocks(loaded):
    lm, _, _ = loaded
    layers = {name: m for name, m in lm.named_modules() if isinstance(m, RowLinear)}
    assert len(layers) == 7 * lm.config.num_hidden_layers + 1
    assert all(layer.blocks is not None for layer in layers.values())
    assert layers["lm_head"].blocks.format == "q8_0"  # the token embedding, tied
    assert {layer.blocks.format for n, layer in layers.items() if n != "lm_head"} == {"q4_1"}


def test_the_blocks_are_the_float32_weights_bit_for_bit(loaded, tmp_path):
    lm, _, _ = loaded
    for name, layer in lm.named_modules():
        if isinstance(layer, RowLinear):
            assert torch.equal(layer.blocks.dequantized(), layer.weight), name
    # read from the file itself (not the cache) into a fresh cache entry: the same bytes
    fresh = gguf_blocks(lm, embedded_gguf(), tmp_path / "blocks")
    assert torch.equal(fresh["model.layers.3.self_attn.q_proj"].data,
                       lm.get_submodule("model.layers.3.self_attn.q_proj").blocks.data)  # fmt: skip
    assert (tmp_path / "blocks" / "blocks.safetensors").is_file()


@torch.inference_mode()
def test_greedy_answers_are_those_of_the_float32_rows(loaded):
    lm, tokenizer, _ = loaded
    layers = [m for m in lm.modules() if isinstance(m, RowLinear)]
    kept = {layer: layer.blocks for layer in layers}

    def answer(question: str, from_blocks: bool) -> tuple[list[int], torch.Tensor]:
        for layer in layers:
            layer.blocks = kept[layer] if from_blocks else None
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
        out = lm(ids, use_cache=True)  # the prompt: many rows, the packed float32 path
        cache, tokens, logits = out.past_key_values, [], []
        for _ in range(16):  # one row per step: the kernel
            logits.append(out.logits[0, -1])
            tokens.append(int(logits[-1].argmax()))
            out = lm(torch.tensor([[tokens[-1]]]), past_key_values=cache, use_cache=True)
        return tokens, torch.stack(logits)

    try:
        for question in QUESTIONS:
            tokens, logits = answer(question, from_blocks=True)
            float32_tokens, float32_logits = answer(question, from_blocks=False)
            assert tokens == float32_tokens, question
            torch.testing.assert_close(logits, float32_logits, rtol=1e-3, atol=1e-3)
    finally:
        for layer in layers:
            layer.blocks = kept[layer]


@torch.inference_mode()
def test_the_decode_step_gives_the_forwards_logits_bit_for_bit(loaded):
    """The shipped LM steps through its DecodeStep (fusion/decode_step.py): the same logits as
    transformers' forward, at every step of four answers."""
    lm, tokenizer, _ = loaded
    assert isinstance(lm.decode_step, DecodeStep)
    for question in QUESTIONS:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
        theirs, ours = GrowingCache(), GrowingCache()
        token = lm(ids, cache=theirs, use_cache=True).logits[:, -1].argmax(-1, keepdim=True)
        lm(ids, cache=ours, use_cache=True)
        for _ in range(16):
            expected = lm(token, cache=theirs, use_cache=True).logits[:, -1]
            got = step_logits(lm, token, ours)
            assert torch.equal(got, expected), question
            token = got.argmax(-1, keepdim=True)
