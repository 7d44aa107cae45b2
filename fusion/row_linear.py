"""Linear layers that send single-row inference through the compiled kernel (gemv.py).

Decoding one answer runs one row per step through every linear layer; several rows (a decode
batch, a prefill), training, autograd, other dtypes or devices keep the layer's own path:
PackedLinear's oneDNN layout when pack_linears gave it one, else nn.Linear's. The kernel
reads nn.Linear's own weight, or, once `use_blocks` gave the layer the blocks of a GGUF file
that hold that very weight, those blocks (4-5x fewer bytes, the same float32 products); then
a decode batch of up to 8 rows reads them too, each weight made once for all its rows.
"""

import logging

import torch
from torch import nn

from encoders.gemv import HALF_ROWS, Blocks, Gemv
from encoders.packed_linear import PackedLinear

log = logging.getLogger(__name__)


class RowLinear(PackedLinear):
    gemv: Gemv
    blocks: Blocks | None = None  # the weight as a GGUF file's blocks, for up to 8 rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
        on_cpu = x.device.type == "cpu" and self.weight.device.type == "cpu"
        float32 = x.dtype == torch.float32 and self.weight.dtype == torch.float32
        # checked here and in use_row_kernel (the bias follows the weight's dtype and device)
        fits = on_cpu and float32 and self.weight.is_contiguous() and not torch.is_grad_enabled()
        blocks = self.blocks
        if fits and rows == 1:
            row = x.reshape(-1).contiguous()  # [1, .., 1, in] -> [in]
            if blocks is not None:
                out = self.gemv.blocks_unchecked(blocks, row, self.bias)  # out
            else:
                out = self.gemv.unchecked(self.weight, row, self.bias)  # out
        elif fits and blocks is not None and self.gemv.blocks_vectorised and 1 < rows <= HALF_ROWS:
            flat = x.reshape(rows, x.shape[-1]).contiguous()  # [..., in] -> [R, in], a batch
            out = self.gemv.blocks_rows_unchecked(blocks, flat, self.bias)  # R, out
        else:
            return super().forward(x)
        return out.reshape(*x.shape[:-1], self.out_features)


def use_row_kernel(module: nn.Module, gemv: Gemv) -> int:
    """Route single rows through every float32 CPU linear layer inside `module` (nn.Linear,
    or PackedLinear, which keeps its packed weight for more rows) to `gemv`; returns how many."""
    count = 0
    for layer in module.modules():
        weight = layer.weight if type(layer) in (nn.Linear, PackedLinear) else None
        if weight is None or weight.dtype != torch.float32 or weight.device.type != "cpu":
            continue
        if not weight.is_contiguous() or (
            layer.bias is not None and not layer.bias.is_contiguous()
        ):
            continue
        layer.__class__ = RowLinear
        layer.gemv = gemv
        count += 1
    return count


def use_blocks(module: nn.Module, blocks: dict[str, Blocks]) -> int:
    """Give each RowLinear of `module` named in `blocks` those blocks for its single rows,
    where they hold the layer's own weight (checked on its first, middle and last rows:
    dequantized, they must equal the weight bit for bit); returns how many layers took them."""
    count = 0
    for name, layer_blocks in blocks.items():
        try:
            layer = module.get_submodule(name)
        except AttributeError:
            continue
        if not isinstance(layer, RowLinear):
            continue
        rows = sorted({0, layer_blocks.out_features // 2, layer_blocks.out_features - 1})
        shape = (layer_blocks.out_features, layer_blocks.in_features)
        sample = Blocks(layer_blocks.format, layer_blocks.data[rows], layer_blocks.in_features)
        if shape != tuple(layer.weight.shape) or not torch.equal(
            sample.dequantized(), layer.weight[rows]
        ):
            log.warning("%s: its GGUF blocks are not its weight; it keeps float32", name)
            continue
        layer.blocks = layer_blocks
        count += 1
    return count
