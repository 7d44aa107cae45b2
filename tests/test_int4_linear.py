"""4-bit weights from a GGUF's Q4_1 blocks on torch's int4 CPU kernel, against gguf's own
dequantization (the reference), on random weights quantized by gguf itself."""

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize, quantize

from fusion.gguf_layers import unpermute
from fusion.int4_linear import Int4Linear, q4_1_blocks

Q4_1 = gguf.GGMLQuantizationType.Q4_1


def q4_1(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random float weights [N, K] -> (their Q4_1 bytes, gguf's dequantization of them)."""
    raw = quantize(weight.astype(np.float32), Q4_1)
    return raw, dequantize(raw, Q4_1)


def test_q4_1_blocks_are_read_as_gguf_reads_them():
    rng = np.random.default_rng(0)
    raw, reference = q4_1(rng.normal(size=(48, 96)))
    codes, scale, minimum = q4_1_blocks(raw, 96)
    assert codes.shape == (48, 96) and int(codes.max()) <= 15 and scale.shape == (48, 3)
    rebuilt = codes.float() * scale.repeat_interleave(32, 1) + minimum.repeat_interleave(32, 1)
    np.testing.assert_allclose(rebuilt.numpy(), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 5])
def test_the_int4_product_matches_the_dequantized_weights(rows):
    rng = np.random.default_rng(1)
    raw, reference = q4_1(rng.normal(scale=0.05, size=(64, 128)))
    bias = torch.randn(64)
    layer = Int4Linear.from_q4_1(*q4_1_blocks(raw, 128), bias=bias)
    x = torch.randn(2, rows, 128)  # B, T, K
    expected = x @ torch.from_numpy(reference).t() + bias  # B, T, N
    got = layer(x)
    assert got.shape == (2, rows, 64) and got.dtype == torch.float32
    # bf16 activations, scales and zeros: errors of bf16 rounding, not of a wrong layout
    assert (got - expected).abs().max() < 0.02 * expected.abs().max()
    dequantized = layer.dequantized()
    assert (dequantized - torch.from_numpy(reference)).abs().max() < 0.01 * abs(reference).max()


def test_rows_unpermuted_per_head_as_transformers_does():
    heads, half = 3, 2
    rows = torch.arange(heads * half * 2).reshape(-1, 1)  # llama.cpp's interleaved rotary rows
    undone = unpermute(rows, heads).flatten().tolist()
    assert undone == [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11]


def test_a_width_off_the_group_is_refused():
    with pytest.raises(ValueError, match="multiple of 32"):
        Int4Linear.from_q4_1(
            torch.zeros(4, 40, dtype=torch.uint8), torch.ones(4, 1), torch.zeros(4, 1)
        )


def test_a_gguf_file_runs_a_model_as_its_dequantized_weights(tokenizer, tmp_path):
    """A tiny llama's linear layers written to a GGUF file as Q4_1 (q/k rows in llama.cpp's
    rotary order, as its converter writes them), then loaded as int4: the model's logits are
    those of the same model holding gguf's dequantization of the file, to bf16 rounding; a
    second load reads the packed weights kept on the first."""
    from fusion.gguf_layers import GGUF_NAMES
    from fusion.int4_linear import int4_linears
    from tests.tiny import tiny_lm

    lm = tiny_lm(len(tokenizer), tokenizer.eos_token_id, seed=3)
    reference = tiny_lm(len(tokenizer), tokenizer.eos_token_id, seed=3)
    heads = {"q_proj": lm.config.num_attention_heads, "k_proj": lm.config.num_key_value_heads}
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    for index in range(lm.config.num_hidden_layers):
        for short, name in GGUF_NAMES.items():
            module = f"model.layers.{index}.{name}"
            weight = lm.get_submodule(module).weight.numpy()
            child = name.rpartition(".")[2]
            stored = _permute(weight, heads[child]) if child in heads else weight
            raw, dequantized = q4_1(stored)
            if child in heads:
                dequantized = unpermute(torch.from_numpy(dequantized), heads[child]).numpy()
            reference.get_submodule(module).weight.copy_(torch.from_numpy(dequantized))
            writer.add_tensor(f"blk.{index}.{short}.weight", raw, raw_dtype=Q4_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    packed = tmp_path / "packed"
    assert int4_linears(lm, path, packed) == 14 and (packed / "int4.safetensors").is_file()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    expected = reference(ids).logits
    got = lm(ids).logits
    assert (got - expected).abs().max() < 0.03 * expected.abs().max()
    again = tiny_lm(len(tokenizer), tokenizer.eos_token_id, seed=3)
    assert int4_linears(again, path.with_name("absent.gguf"), packed) == 14  # the kept file
    assert torch.equal(again(ids).logits, got)


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter's rotary row order (what unpermute undoes)."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
