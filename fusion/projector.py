"""The adapter's projector: encoder tokens -> language-model embeddings.

Letters: B batch, T encoder tokens, k frames stacked into one token, C encoder width,
D language-model width.
"""

import math

import torch
from torch import nn


class Projector(nn.Module):
    """[B, T, C] -> [B, ceil(T / k), D]: stack k neighbouring frames, then a 2-layer MLP.

    Stacking (k > 1) shortens long audio sequences (Whisper's 50 Hz -> 12.5 Hz with k = 4);
    the last group is zero-padded when T is not a multiple of k.
    """

    def __init__(self, in_dim: int, out_dim: int, stack: int = 1, hidden_dim: int | None = None):
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        self.stack = stack
        hidden_dim = hidden_dim or out_dim
        self.norm = nn.LayerNorm(in_dim * stack)
        self.up = nn.Linear(in_dim * stack, hidden_dim)
        self.down = nn.Linear(hidden_dim, out_dim)

    def num_output_tokens(self, num_input_tokens: int) -> int:
        return math.ceil(num_input_tokens / self.stack)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, length, width = features.shape
        padding = (-length) % self.stack
        if padding:
            features = nn.functional.pad(features, (0, 0, 0, padding))  # B, T, C -> B, T + pad, C
        stacked = features.reshape(
            batch, (length + padding) // self.stack, width * self.stack
        )  # -> B, T/k, C*k
        return self.down(nn.functional.gelu(self.up(self.norm(stacked))))  # -> B, T/k, D
