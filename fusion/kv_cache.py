"""A KV cache that grows in place: each layer's keys and values are views of buffers with
room for more columns, so a decode step writes its one new column instead of copying the
whole cache.

transformers' DynamicCache concatenates every layer's keys and values with each new token:
60 copies of the whole cache per step, each into a fresh allocation one column larger, which
glibc cannot take from the block just freed. With 8 rows of a few hundred columns that was
~0.6 ms per copy, two thirds of a decode step (AMD EPYC, 1 thread, 2026-12-03). Here room is
made ROOM columns at a time, so a copy happens once every ROOM tokens.

Letters: B rows, H key/value heads, T columns in use, C columns allocated, Dh head width.
"""

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

ROOM = 128  # spare columns allocated at a time


class _Columns:
    """A [B, H, T, Dh] tensor kept inside a [B, H, C, Dh] buffer, C >= T."""

    def __init__(self):
        self.buffer: torch.Tensor | None = None
        self.length = 0

    def view(self) -> torch.Tensor | None:
        return None if self.buffer is None else self.buffer[:, :, : self.length]

    def replace(self, tensor: torch.Tensor | None) -> None:
        """Hold a copy of `tensor` [B, H, T, Dh] (an empty or missing tensor: nothing)."""
        if tensor is None or tensor.dim() != 4:
            self.buffer, self.length = None, 0
            return
        self.buffer, self.length = None, 0
        self.append(tensor)

    def append(self, new: torch.Tensor) -> None:
        """new [B, H, n, Dh] -> written after the T columns in use, making room if needed."""
        needed = self.length + new.shape[2]
        if self.buffer is None or needed > self.buffer.shape[2]:
            shape = (*new.shape[:2], needed + ROOM, new.shape[3])
            buffer = new.new_empty(shape)
            if self.buffer is not None:
                buffer[:, :, : self.length] = self.buffer[:, :, : self.length]
            self.buffer = buffer
        self.buffer[:, :, self.length : needed] = new
        self.length = needed


class GrowingLayer(DynamicLayer):
    """DynamicLayer's behaviour, with keys and values [B, H, T, Dh] kept in roomy buffers.
    Setting `keys` or `values` (a cache's rows reordered, joined or cropped) copies the
    tensor into a new buffer."""

    def __init__(self, *args, **kwargs):
        self._keys, self._values = _Columns(), _Columns()
        super().__init__(*args, **kwargs)

    @property
    def keys(self) -> torch.Tensor | None:
        return self._keys.view()

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._keys.replace(tensor)

    @property
    def values(self) -> torch.Tensor | None:
        return self._values.view()

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:
        self._values.replace(tensor)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """key_states, value_states [B, H, n, Dh] -> all keys and values [B, H, T + n, Dh]."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._keys.append(key_states)
        self._values.append(value_states)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._keys.length if self.is_initialized else 0


class GrowingCache(DynamicCache):
    """A DynamicCache (the same API, what transformers' models take) of GrowingLayers."""

    def __init__(self):
        super().__init__()
        self.layer_class_to_replicate = GrowingLayer
