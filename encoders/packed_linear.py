"""Inference-only weight layout for the LM's linear layers: oneDNN's blocked ("packed") format.

Decoding multiplies a few activation rows (one per answer in the batch) by every weight
matrix, so its speed is how fast the weights stream from memory. torch's default float32
product streams them slowly for a few rows: over the LM's 210 layers, one thread, 8 rows took
50 ms with F.linear and 23 ms on weights reordered once into oneDNN's blocked layout for a
batch of 8 (1 row: 32 vs 21 ms; AMD EPYC, 2026-12-03). A single row goes faster still through
the decoding kernel (fusion/row_linear.py), which reads nn.Linear's own weight. Whisper's
decoder, with 5 beams (5 rows), uses them too (whisper_decoder.py).

`pack_linears` keeps each layer's original weight (training, autograd, other dtypes and
devices still use it) and adds the packed copy, used only when no gradient is needed and the
input is float32 on the CPU. Results agree with F.linear to float32 rounding (~1e-5).

The packed copy may be bfloat16 instead (`dtype`, where this CPU has bfloat16 instructions,
`bfloat16_available`): half the bytes to stream, the input rounded to bfloat16 on the way in,
float32 out. Whisper's decoder runs so (whisper_decoder.py).

A layer may also hold a second, bfloat16 copy for prompts (`prompt_dtype`), used only inside
`prompt_pass()`: a prompt's many rows make the product compute-bound, where bfloat16
instructions do twice the work of float32 ones. The LM prefills the prompts of photos so, and
decodes in float32 (fusion/prefill.py). Its 211 layers over a 90-token prompt, 2-core AMD
EPYC (AVX-512 BF16), 2026-12-04: 132 ms float32, 89 ms with the bfloat16 copy.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

BATCH_HINT = 8  # the rows oneDNN lays the weights out for (decode batches of 1 to 8 and more)


def packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_reorder_linear_weight"
    )


def bfloat16_available() -> bool:
    """Whether oneDNN runs packed bfloat16 products with this CPU's own bfloat16 instructions
    (AVX-512 BF16 or AMX). oneDNN would emulate them on other AVX-512 CPUs; that was never
    measured against float32, so those keep float32."""
    native = any(
        getattr(torch.cpu, probe, lambda: False)()
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return native and packing_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


_IN_PROMPT_PASS: ContextVar[bool] = ContextVar("in_prompt_pass", default=False)


@contextmanager
def prompt_pass() -> Iterator[None]:
    """Inside (this thread or task only): layers with a prompt copy multiply with it."""
    token = _IN_PROMPT_PASS.set(True)
    try:
        yield
    finally:
        _IN_PROMPT_PASS.reset(token)


class PackedLinear(nn.Linear):
    """An nn.Linear that may also hold its weight in oneDNN's layout for inference."""

    packed_weight: torch.Tensor | None = None  # None: nn.Linear's own path
    packed_bias: torch.Tensor | None = None  # the bias in a bfloat16 packed weight's dtype
    prompt_weight: torch.Tensor | None = None  # bfloat16, packed, used inside prompt_pass()
    prompt_bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.packed_weight, self.packed_bias
        if self.prompt_weight is not None and _IN_PROMPT_PASS.get():
            weight, bias = self.prompt_weight, self.prompt_bias
        if (
            weight is None
            or torch.is_grad_enabled()
            or x.dtype != torch.float32
            or x.device.type != "cpu"
        ):
            return super().forward(x)
        rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [N, in]
        if weight.dtype == torch.float32:
            out = torch.ops.mkldnn._linear_pointwise(rows, weight, self.bias, "none", [], "")
        else:  # bfloat16 in, float32 out
            out = torch.ops.mkldnn._linear_pointwise(
                rows.to(weight.dtype), weight, bias, "none", [], ""
            ).float()
        return out.reshape(*x.shape[:-1], out.shape[-1])  # -> [..., out]


def pack_linears(
    module: nn.Module,
    kinds: tuple[type, ...] = (nn.Linear,),
    dtype: torch.dtype = torch.float32,
    prompt_dtype: torch.dtype | None = None,
) -> int:
    """Give every float32 CPU linear layer inside `module` a packed copy; returns how many.
    kinds: the layer classes to pack (exactly these, not subclasses that may compute
    otherwise); each must be an nn.Linear whose forward is F.linear of its own weight and bias.
    dtype: the packed copy's, float32 or bfloat16 (float32 where bfloat16_available() is
    False). prompt_dtype: bfloat16 gives each layer a second copy for prompt_pass(), where
    bfloat16_available(); None, float32 or no bfloat16 instructions: none. Does nothing
    (returns 0) where oneDNN is not available, e.g. on ARM builds without it.
    """
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"packed weights are float32 or bfloat16, not {dtype}")
    if prompt_dtype not in (None, torch.float32, torch.bfloat16):
        raise ValueError(f"a prompt copy is bfloat16, not {prompt_dtype}")
    if not packing_available():
        return 0
    if dtype == torch.bfloat16 and not bfloat16_available():
        dtype = torch.float32
    prompt_copy = prompt_dtype == torch.bfloat16 and bfloat16_available()
    count = 0
    for layer in module.modules():
        if type(layer) in kinds and layer.weight.dtype == torch.float32:
            if layer.weight.device.type != "cpu":
                continue
            packed = _reorder(layer, dtype)
            layer.__class__ = PackedLinear
            layer.packed_weight = packed
            if dtype != torch.float32 and layer.bias is not None:
                layer.packed_bias = layer.bias.detach().to(dtype)
            if prompt_copy:
                layer.prompt_weight = (
                    packed if dtype == torch.bfloat16 else _reorder(layer, torch.bfloat16)
                )
                if layer.bias is not None:
                    layer.prompt_bias = layer.bias.detach().to(torch.bfloat16)
            count += 1
    return count


def _reorder(layer: nn.Linear, dtype: torch.dtype) -> torch.Tensor:
    """layer's weight [out, in] -> oneDNN's blocked layout, in dtype."""
    with torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(
            layer.weight.detach().to(dtype), batch_size=BATCH_HINT
        )
