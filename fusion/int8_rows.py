"""Storing chosen weight matrices as int8, one scale per row, in a saved adapter.

A matrix W [R, C] is kept as Q [R, C] int8 = round(W / s) with s [R] = max|W[r]| / 127, and
read back as Q * s (each weight within s / 2 of its value). It halves a float16 matrix. The
shipped adapter stores its audio projector this way (adapter.py, INT8_STORED): the default
reading of a clip (Whisper's words, speech_reading.py) never runs that projector.
"""

import torch

SCALE_SUFFIX = ".int8_row_scale"  # the scales of tensor `name` are saved as name + this
MIN_ELEMENTS = 65_536  # smaller tensors (biases, norms, small matrices) are left as they are


def to_int8_rows(tensors: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict:
    """{name: tensor} -> the same, with every matrix whose name starts with one of `prefixes`
    (and that has at least MIN_ELEMENTS) as int8 [R, C] beside its float32 scales [R]."""
    stored = {}
    for name, tensor in tensors.items():
        if name.startswith(prefixes) and tensor.ndim == 2 and tensor.numel() >= MIN_ELEMENTS:
            weight = tensor.detach().float()
            scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127
            stored[name] = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
            stored[name + SCALE_SUFFIX] = scale
        else:
            stored[name] = tensor
    return stored


def from_int8_rows(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of to_int8_rows: int8 matrices back to float32 [R, C], scales dropped."""
    tensors = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if tensor.dtype == torch.int8:
            scale = stored.get(name + SCALE_SUFFIX)
            if scale is None:
                raise ValueError(f"{name} is stored as int8 without its row scales")
            tensor = tensor.float() * scale.float()[:, None]
        tensors[name] = tensor
    return tensors
