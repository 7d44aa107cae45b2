"""Inference-only weight layout for the LM's linear layers: oneDNN's blocked ("packed") format.

Decoding one token multiplies a single activation row by every weight matrix (a GEMV), so
its speed is how fast the weights stream from memory. PyTorch's default fp32 path for a
one-row product runs on one thread at ~16 GB/s on this project's 2-core reference machine;
the same product on weights reordered once into oneDNN's blocked layout uses both cores at
~33-39 GB/s (measured over a whole model's worth of matrices, not cache-resident ones).

`pack_linears` keeps each layer's original weight (training, autograd, other dtypes and
devices still use it) and adds the packed copy, used only when no gradient is needed and the
input is float32 on the CPU. Results agree with F.linear to float32 rounding (~1e-5).
"""

import torch
from torch import nn


def packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_reorder_linear_weight"
    )


class PackedLinear(nn.Linear):
    """An nn.Linear that also holds its weight in oneDNN's layout for inference."""

    packed_weight: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.dtype != torch.float32 or x.device.type != "cpu":
            return super().forward(x)
        rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [N, in]
        out = torch.ops.mkldnn._linear_pointwise(
            rows, self.packed_weight, self.bias, "none", [], ""
        )
        return out.reshape(*x.shape[:-1], out.shape[-1])  # -> [..., out]


def pack_linears(module: nn.Module) -> int:
    """Give every float32 CPU nn.Linear inside `module` a packed copy; returns how many.

    Does nothing (returns 0) where oneDNN is not available, e.g. on ARM builds without it.
    """
    if not packing_available():
        return 0
    count = 0
    for layer in module.modules():
        if type(layer) is nn.Linear and layer.weight.dtype == torch.float32:
            if layer.weight.device.type != "cpu":
                continue
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(
                    layer.weight.detach(), batch_size=1
                )
            layer.__class__ = PackedLinear
            layer.packed_weight = packed
            count += 1
    return count
