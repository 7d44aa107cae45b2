"""Linear layers whose float32 weights are float16 values, run from a float16 copy for a few
rows at once (gemv.py's `half_rows`): Whisper's decoder, whose weights ship as float16, over
the 5 beams of each step of its beam search.

Each weight is read as 2 bytes instead of 4 and converted to the float32 it exactly is, so
the products are those of the float32 weights, the sums in another order. More rows (the
audio frames' keys and values, a teacher-forced transcript), training, autograd, other
dtypes or devices keep the layer's own path: PackedLinear's oneDNN layout where
pack_linears gave it one, else nn.Linear's.
"""

import torch
from torch import nn

from encoders.gemv import HALF_ROWS, Gemv
from encoders.packed_linear import PackedLinear


class HalfRowsLinear(PackedLinear):
    gemv: Gemv
    half_weight: torch.Tensor  # [out, in] float16: the weight's own values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
        if (
            torch.is_grad_enabled()
            or x.dtype != torch.float32
            or x.device.type != "cpu"
            or not 1 <= rows <= HALF_ROWS
        ):
            return super().forward(x)
        flat = x.reshape(rows, x.shape[-1]).contiguous()  # [..., in] -> [R, in]
        out = self.gemv.half_rows_unchecked(self.half_weight, flat, self.bias)  # R, out
        return out.reshape(*x.shape[:-1], self.out_features)


def use_half_rows(module: nn.Module, gemv: Gemv) -> int:
    """Route a few rows through a float16 copy of each PackedLinear (or nn.Linear) inside
    `module` whose float32 CPU weight holds only float16 values (all checked) and whose bias,
    if any, is float32; returns how many layers (none where the kernel has no float16 product)."""
    if not gemv.half_vectorised:
        return 0
    count = 0
    for layer in module.modules():
        if type(layer) not in (nn.Linear, PackedLinear):
            continue
        weight, bias = layer.weight, layer.bias
        if weight.dtype != torch.float32 or weight.device.type != "cpu":
            continue
        if bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()):
            continue
        half = weight.detach().half().contiguous()
        if not torch.equal(half.float(), weight):  # a value float16 cannot hold exactly
            continue
        layer.__class__ = HalfRowsLinear
        layer.half_weight = half
        layer.gemv = gemv
        count += 1
    return count
