"""Inference-only int8 weights for linear layers: torch's dynamically quantized product.

Beam search runs Whisper's decoder over 5 rows per step, so each step streams every weight of
the decoder and of its vocabulary projection (51,865 x 512) for little arithmetic: its speed
is the weights' bytes. Here each layer keeps an int8 copy of its weight (one scale per output
row, symmetric), prepacked by torch's quantized engine (FBGEMM's kernels on x86, AVX2 and
AVX-512), and multiplies as `torch.ao.nn.quantized.dynamic.Linear` does: each call quantizes
its input rows to 8 bits with their own range (7 bits of it: `reduce_range`, which keeps
FBGEMM's 16-bit sums from saturating on CPUs without VNNI), multiplies in integers, and gives
float32 back. A quarter of float32's bytes; CTranslate2 (faster-whisper) runs Whisper in int8
on CPUs by default for the same reason.

`quantize_linears` keeps each layer's float32 weight (training, autograd, other dtypes and
devices still use it) and adds the int8 copy, used only when no gradient is needed, the
input is float32 on the CPU, and not inside `float32_products()`: Whisper's scores of the
readings it heard are made so (encoders/transcribe.py), since they judge between near ties.

torch 2.14 marks its quantized tensors as deprecated (pytorch/pytorch#184982): the warning
is silenced where the copy is made, and torch is pinned (pyproject.toml); a torch without
them fails tests/test_int8_linear.py.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

REDUCE_RANGE = True  # 7-bit inputs: exact on every x86 CPU (see above)


_FLOAT32_ONLY: ContextVar[bool] = ContextVar("float32_only", default=False)


@contextmanager
def float32_products() -> Iterator[None]:
    """Inside (this thread or task only): int8 layers multiply with their float32 weight."""
    token = _FLOAT32_ONLY.set(True)
    try:
        yield
    finally:
        _FLOAT32_ONLY.reset(token)


def int8_available() -> bool:
    """Whether torch has a quantized engine for int8 linear layers here (x86 and ARM builds)."""
    return torch.backends.quantized.engine != "none"


class Int8Linear(nn.Linear):
    """An nn.Linear that may also hold an int8 copy of its weight for inference."""

    int8_weight: object | None = None  # torch's LinearPackedParams; None: nn.Linear's path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.int8_weight is None
            or torch.is_grad_enabled()
            or x.dtype != torch.float32
            or x.device.type != "cpu"
            or _FLOAT32_ONLY.get()
        ):
            return super().forward(x)
        rows = x.reshape(-1, x.shape[-1])  # [..., in] -> [N, in]
        out = torch.ops.quantized.linear_dynamic(rows, self.int8_weight, REDUCE_RANGE)
        return out.reshape(*x.shape[:-1], out.shape[-1])  # -> [..., out] float32


def quantize_linears(module: nn.Module, kinds: tuple[type, ...] = (nn.Linear,)) -> int:
    """Give every float32 CPU linear layer inside `module` an int8 copy; returns how many.
    kinds: the layer classes to quantize (exactly these, not subclasses that may compute
    otherwise); each must be an nn.Linear whose forward is F.linear of its own weight and bias.
    Does nothing (returns 0) where torch has no quantized engine."""
    if not int8_available():
        return 0
    count = 0
    for layer in module.modules():
        if type(layer) in kinds and layer.weight.dtype == torch.float32:
            if layer.weight.device.type != "cpu":
                continue
            layer.int8_weight = _prepacked(layer)
            layer.__class__ = Int8Linear
            count += 1
    return count


def _prepacked(layer: nn.Linear) -> object:
    """layer's weight [out, in] -> int8, one symmetric scale per output row, prepacked."""
    with torch.no_grad():
        weight = layer.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127  # out
        zeros = torch.zeros(weight.shape[0], dtype=torch.long)
        bias = None if layer.bias is None else layer.bias.detach().float()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation.*deprecated")
            quantized = torch.quantize_per_channel(weight, scales.double(), zeros, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(quantized, bias)
