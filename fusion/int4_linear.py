"""4-bit weights on torch's own CPU kernel: the GGUF's Q4_1 blocks as int4 groups of 32.

A Q4_1 block holds 32 weights of one row as 4-bit codes q (0..15) with a scale d and a minimum
m: w = q * d + m. torch's int4 CPU kernel (`_weight_int4pack_mm_for_cpu`, bf16 activations)
reads groups of 32 codes along a row as w = (q - 8) * scale + zero, so a block maps exactly:
scale = d, zero = m + 8 d (up to the bf16 rounding of scale and zero). Nothing is
re-quantized: the int4 weights are the file's own.

`Int4Linear` is an inference-only nn.Module: no gradient, CPU only. `int4_linears` swaps a
model's nn.Linear layers for those its GGUF file holds in Q4_1.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.cache import cached_dir
from fusion.gguf_layers import module_name, rotary_heads, unpermute

GROUP = 32  # weights per Q4_1 block, and per int4 group
BLOCK_BYTES = 20  # d (fp16), m (fp16), 16 bytes of two 4-bit codes each
PACKED_FILE = "int4.safetensors"  # inside the cache entry int4_linears is given
INNER_K_TILES = 2  # the packing's tile of the input dimension (torch accepts 2, 4 or 8)


class Int4Linear(nn.Module):
    """y = x W^T (+ b) with W in packed int4 groups; x [..., K] float -> y [..., N] float."""

    def __init__(self, packed: torch.Tensor, scales_and_zeros: torch.Tensor, bias=None):
        """packed: torch's int4 CPU packing [N, K / 2] uint8; scales_and_zeros [K / G, N, 2]."""
        super().__init__()
        self.out_features, self.in_features = packed.shape[0], packed.shape[1] * 2
        self.register_buffer("packed", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros.to(torch.bfloat16).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_q4_1(cls, codes: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, bias=None):
        """codes [N, K] integers 0..15; scale, minimum [N, K / GROUP]: w = codes * scale + minimum."""
        if codes.shape[1] % GROUP:
            raise ValueError(f"in_features {codes.shape[1]} is not a multiple of {GROUP}")
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            codes.to(torch.int32).contiguous(), INNER_K_TILES
        )  # N, K/2
        zero = minimum.float() + 8 * scale.float()
        scales_and_zeros = torch.stack([scale.float().t(), zero.t()], dim=-1)  # K/G, N, 2
        return cls(packed, scales_and_zeros, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)  # [..., K] -> [M, K]
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows, self.packed, GROUP, self.scales_and_zeros
        )  # M, N
        out = out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def dequantized(self) -> torch.Tensor:
        """The weight [N, K] as float32 (for checks): the int4 product with the identity."""
        eye = torch.eye(self.in_features, dtype=torch.bfloat16)
        return (
            torch.ops.aten._weight_int4pack_mm_for_cpu(
                eye, self.packed, GROUP, self.scales_and_zeros
            )
            .float()
            .t()
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4 g{GROUP}"


def q4_1_blocks(raw: np.ndarray, columns: int) -> tuple[torch.Tensor, ...]:
    """A Q4_1 tensor's bytes [N, K / 32 * 20] -> (codes [N, K] uint8, scale, minimum [N, K / 32])."""
    rows = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(rows, columns // GROUP, BLOCK_BYTES)
    scale = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    minimum = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    packed = blocks[..., 4:]  # N, K/32, 16: byte j holds code j (low) and code j + 16 (high)
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).reshape(rows, columns)
    return torch.from_numpy(codes), torch.from_numpy(scale), torch.from_numpy(minimum)


def int4_linears(lm: nn.Module, gguf_file: Path, packed_dir: Path) -> int:
    """Swap each of a llama-style transformers LM's nn.Linear layers that `gguf_file` holds in
    Q4_1 for an Int4Linear of those blocks; returns how many were swapped. The packed weights
    are kept in the cache entry `packed_dir` (safetensors, ~70 MB) on the first call (~7 s),
    read from it on later ones (well under a second)."""
    from safetensors.torch import load_file, save_file

    def pack(out: Path) -> None:
        layers = dict(_q4_1_layers(lm, gguf_file))
        packed = {
            f"{name}.{key}": t for name, layer in layers.items() for key, t in _buffers(layer)
        }
        save_file(packed, out / PACKED_FILE)

    packed_file = cached_dir(packed_dir, pack) / PACKED_FILE  # whole or not at all
    tensors = load_file(packed_file)
    names = sorted({key.rpartition(".")[0] for key in tensors})
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = lm.get_submodule(parent)
        linear = getattr(owner, child)
        layer = Int4Linear(
            tensors[f"{name}.packed"], tensors[f"{name}.scales_and_zeros"], linear.bias
        )
        if (layer.out_features, layer.in_features) != (linear.out_features, linear.in_features):
            raise ValueError(f"{packed_file}: {name} does not fit {linear}; remove its folder")
        setattr(owner, child, layer)
    return len(names)


def _buffers(layer: Int4Linear):
    return [("packed", layer.packed), ("scales_and_zeros", layer.scales_and_zeros)]


def _q4_1_layers(lm: nn.Module, gguf_file: Path):
    """(module name, Int4Linear) for each Q4_1 weight of `gguf_file` that names a layer of lm."""
    import gguf

    heads = rotary_heads(lm)
    for tensor in gguf.GGUFReader(gguf_file).tensors:
        name = module_name(tensor.name)
        if tensor.tensor_type != gguf.GGMLQuantizationType.Q4_1 or name is None:
            continue
        columns = int(tensor.shape[0])  # GGUF lists dimensions innermost first: [K, N]
        codes, scale, minimum = q4_1_blocks(np.asarray(tensor.data), columns)
        child = name.rpartition(".")[2]
        if child in heads:  # llama.cpp interleaves q/k rows for its rotary layout; undo it
            codes, scale, minimum = (unpermute(t, heads[child]) for t in (codes, scale, minimum))
        yield name, Int4Linear.from_q4_1(codes, scale, minimum)
