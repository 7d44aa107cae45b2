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
"""

import torch
from torch import nn

BATCH_HINT = 8  # the rows oneDNN lays the weights out for (decode batches of 1 to 8 and more)


def packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_reorder_linear_weight"
    )


class PackedLinear(nn.Linear):
    """An nn.Linear that may also hold its weight in oneDNN's layout for inference."""

    packed_weight: torch.Tensor | None = None  # None: nn.Linear's own path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.packed_weight is None
            or torch.is_grad_enabled()
            or x.dtype != torch.float32
            or x.device.type != "cpu"
        ):
            return super().forward(x)
        rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [N, in]
        out = torch.ops.mkldnn._linear_pointwise(
            rows, self.packed_weight, self.bias, "none", [], ""
        )
        return out.reshape(*x.shape[:-1], out.shape[-1])  # -> [..., out]


def pack_linears(module: nn.Module, kinds: tuple[type, ...] = (nn.Linear,)) -> int:
    """Give every float32 CPU linear layer inside `module` a packed copy; returns how many.
    kinds: the layer classes to pack (exactly these, not subclasses that may compute
    otherwise); each must be an nn.Linear whose forward is F.linear of its own weight and bias.
    Does nothing (returns 0) where oneDNN is not available, e.g. on ARM builds without it.
    """
    if not packing_available():
        return 0
    count = 0
    for layer in module.modules():
        if type(layer) in kinds and layer.weight.dtype == torch.float32:
            if layer.weight.device.type != "cpu":
                continue
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(
                    layer.weight.detach(), batch_size=BATCH_HINT
                )
            layer.__class__ = PackedLinear
            layer.packed_weight = packed
            count += 1
    return count
