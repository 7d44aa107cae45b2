"""Writing projected media features into the slots of the LM's input embeddings.

The sequence length never changes: slots were laid out by `expand_placeholders`, and one
boolean mask says where the features go (nanoVLM's way, not LLaVA's split-and-concatenate).
"""

import torch


class SpliceError(ValueError):
    """The number of media slots and of feature tokens differ."""


def splice(embeddings: torch.Tensor, slots: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Write features into the slot positions.

    embeddings: [B, L, D] the LM's token embeddings; slots: [B, L] bool;
    features: [N, D] all media tokens in prompt order, N == slots.sum().
    Returns a new [B, L, D] tensor; raises SpliceError naming both counts on a mismatch.
    """
    expected = int(slots.sum())
    if features.shape[0] != expected:
        raise SpliceError(f"expected {expected} media tokens, got {features.shape[0]}")
    if features.shape[-1] != embeddings.shape[-1]:
        raise SpliceError(
            f"media tokens have width {features.shape[-1]}, the LM expects {embeddings.shape[-1]}"
        )
    mask = slots.unsqueeze(-1).expand_as(embeddings)  # B, L -> B, L, D
    return embeddings.masked_scatter(mask, features.to(embeddings.dtype))
