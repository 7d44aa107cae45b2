"""Scoped prompt tokens: vectors that only some later tokens may see, and that take no position.

A spoken clip's tokens are the LM's own word embeddings (compress.py), so the LM reads a spoken
question exactly as the typed one and answers it the same way. What tells it the words were
*heard* are the adapter's two cue vectors around the clip (adapter.py). They are scoped: only
the typed text of the same message (e.g. "Repeat exactly what I said.") and the cues themselves
attend to them, and they take no position of their own. A clip alone therefore reads, position
for position and value for value, like the typed words; the text that talks about the clip
learns that it was heard, and the answer reads that from the text (as Flamingo's text attends
only to its own image).

Rules, for a prompt of L tokens:
- positions: ordinary tokens count 0, 1, 2, ... as if the scoped ones were absent; a scoped
  token shares the position of the ordinary token before it;
- attention: causal, except that a scoped column is seen only by the later scoped tokens of
  its scope and by its scope's rows; tokens generated after the prompt see what its last token sees.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scope:
    columns: tuple[int, ...]  # prompt indices of scoped tokens
    rows: range  # prompt indices of the tokens allowed to see them (after them)


@dataclass(frozen=True)
class PromptLayout:
    positions: torch.Tensor  # [L] long, RoPE positions
    attention: torch.Tensor  # [L, L] bool, True where row may attend column


def layout(length: int, scopes: Sequence[Scope]) -> PromptLayout | None:
    """The layout of a prompt of `length` tokens, or None for a plain causal prompt."""
    if not scopes:
        return None
    scoped = torch.zeros(length, dtype=torch.bool)
    for scope in scopes:
        if not scope.columns or min(scope.columns) < 0 or max(scope.columns) >= length:
            raise ValueError(f"scope columns {scope.columns} fall outside a {length}-token prompt")
        if scope.rows and (scope.rows.start <= max(scope.columns) or scope.rows.stop > length):
            raise ValueError(f"scope rows {scope.rows} must follow its columns and fit the prompt")
        scoped[list(scope.columns)] = True
    positions = (torch.cumsum((~scoped).long(), 0) - 1).clamp_min(0)  # L
    attention = torch.ones(length, length, dtype=torch.bool).tril()  # L, L
    attention[:, scoped] = False
    for scope in scopes:
        columns = torch.tensor(scope.columns)
        rows = torch.arange(scope.rows.start, scope.rows.stop)
        attention[columns[:, None], columns[None, :]] = True  # a scope's cues see each other
        attention[rows[:, None], columns[None, :]] = True
    return PromptLayout(positions, attention.tril())


def extended_attention(prompt: PromptLayout, total: int) -> torch.Tensor:
    """[total, total] bool: the prompt's attention, then `total - L` generated (or target)
    tokens that see what the prompt's last token sees, and each other causally."""
    length = prompt.attention.shape[0]
    attention = torch.ones(total, total, dtype=torch.bool).tril()
    attention[:length, :length] = prompt.attention
    attention[length:, :length] = prompt.attention[-1]
    return attention


def continued_positions(prompt: PromptLayout, total: int) -> torch.Tensor:
    """[total] long: the prompt's positions, then one more per generated (or target) token."""
    length = prompt.positions.shape[0]
    after = int(prompt.positions[-1]) + 1 + torch.arange(total - length)
    return torch.cat([prompt.positions, after])
