"""Keys and values of prompts already prefilled, reused by later prompts that begin the same way.

A follow-up turn resends the whole conversation: the system prompt, the earlier photos, clips
and answers, then the new question. Every prompt starts with the same system prompt and chat
template. A prompt's first n tokens have the same keys and values whatever follows them (each
token sees only earlier ones), so a new prompt whose first n input embeddings, positions and
attention rows equal a kept prompt's needs only its remaining tokens prefilled.

Prompts are matched by content (the embeddings themselves, media spliced in), so a web
session's follow-up and an API client resending the same conversation hit alike, but only
among the prompts of the same owner (a browser, a login, an API key and user: as the media
cache): no one can tell from the speed of an answer whether someone else asked the same.
The one exception is PUBLIC: what the model keeps of its own system prompt, before any
message, which every conversation begins with and no one wrote.
A prompt kept whole also keeps the logits of the token after it: the same prompt asked again
(a hands-free question prefilled during its pause, LunettesModel.prefill; an answer
regenerated) needs no prefill at all, and its first token is chosen at once. Otherwise one
token is left to prefill, whose logits start the answer.
Kept prompts are evicted least recently used first, past a budget in bytes. Thread-safe: the
decode thread and an answer decoded alone may both use it.

Letters: L prompt length, P kept prompt length, D LM width, H key/value heads, Dh head width.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from fusion.prompt_layout import PromptLayout

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024
PUBLIC = None  # the owner of what every owner may reuse: the model's own system prompt


@dataclass(eq=False)
class _Kept:
    owner: str | None
    embeddings: torch.Tensor  # [P, D]
    positions: torch.Tensor  # [P] long
    attention: torch.Tensor | None  # [P, P] bool; None: causal
    keys: list[torch.Tensor]  # per layer [1, H, P, Dh]
    values: list[torch.Tensor]
    logits: torch.Tensor | None = None  # [V]: the next token's, after all P tokens

    @property
    def bytes(self) -> int:
        tensors = [self.embeddings, *self.keys, *self.values]
        tensors += [self.logits] if self.logits is not None else []
        return sum(t.numel() * t.element_size() for t in tensors)


class PrefixCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.budget_bytes = budget_bytes
        self._kept: OrderedDict[int, _Kept] = OrderedDict()  # oldest use first
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0  # prompts that reused a kept prefix, and the tokens they reused
        self.reused_tokens = 0

    def find(self, embeddings: torch.Tensor, layout: PromptLayout | None, owner: str | None = ""):
        """embeddings [L, D] -> (n, cache, logits): a GrowingCache holding the keys and values
        of the first n tokens of the owner's kept prompt that shares the most with it, or
        (0, None, None). n = L, with the next token's logits [V], where that very prompt was
        kept whole with them; else n < L (one token left to prefill) and logits None."""
        from fusion.kv_cache import GrowingCache

        length = embeddings.shape[0]
        positions, attention = _positions(layout, length), _attention(layout)
        with self._lock:
            best, found, logits = 0, None, None
            for kept in self._kept.values():
                if kept.owner not in (owner, PUBLIC):
                    continue
                whole = kept.logits is not None and kept.embeddings.shape[0] == length
                limit = length if whole else length - 1  # else one token left to prefill
                n = _common(kept, embeddings, positions, attention, limit)
                if n > best:
                    best, found = n, kept
            if found is None:
                return 0, None, None
            if best == length:
                logits = found.logits.clone()
            self._kept.move_to_end(id(found))
            self.hits += 1
            self.reused_tokens += best
            cache = GrowingCache()
            for index, (keys, values) in enumerate(zip(found.keys, found.values)):
                cache.update(keys[:, :, :best], values[:, :, :best], index)  # copied
            return best, cache, logits

    def keep(
        self,
        embeddings: torch.Tensor,
        layout: PromptLayout | None,
        cache,
        owner: str | None = "",
        logits: torch.Tensor | None = None,
    ) -> None:
        """After a prompt embeddings [L, D] was prefilled into `cache`: keep its keys and
        values (copies) for the owner's prompts that will begin the same way, and logits [V],
        the next token's after all of it, for the same prompt asked again."""
        length = embeddings.shape[0]
        kept = _Kept(
            owner,
            embeddings.detach().clone(),
            _positions(layout, length).clone(),
            None if layout is None else layout.attention.clone(),
            [layer.keys[:, :, :length].clone() for layer in cache.layers],
            [layer.values[:, :, :length].clone() for layer in cache.layers],
            None if logits is None else logits.detach().clone(),
        )
        if kept.bytes > self.budget_bytes:
            return
        positions, attention = kept.positions, kept.attention
        with self._lock:
            for other in list(self._kept.values()):  # a prompt this one extends is redundant
                if (
                    other.owner == owner
                    and other.embeddings.shape[0] <= length
                    and _common(other, kept.embeddings, positions, attention, length)
                    == other.embeddings.shape[0]
                ):
                    self._drop(other)
            self._kept[id(kept)] = kept
            self.bytes += kept.bytes
            while self.bytes > self.budget_bytes:
                self._drop(next(iter(self._kept.values())))

    def holds(self, embeddings: torch.Tensor, owner: str | None = "") -> bool:
        """Whether the owner has a kept prompt that begins with all of embeddings [L, D]
        (plain causal attention)."""
        length = embeddings.shape[0]
        positions = torch.arange(length)
        with self._lock:
            return any(
                kept.owner == owner and _common(kept, embeddings, positions, None, length) == length
                for kept in self._kept.values()
            )

    def forget(self, owner: str | None) -> None:
        """Drop the owner's kept prompts."""
        with self._lock:
            for kept in [k for k in self._kept.values() if k.owner == owner]:
                self._drop(kept)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def _drop(self, kept: _Kept) -> None:
        del self._kept[id(kept)]
        self.bytes -= kept.bytes


def _positions(layout: PromptLayout | None, length: int) -> torch.Tensor:
    return torch.arange(length) if layout is None else layout.positions  # [L]


def _attention(layout: PromptLayout | None) -> torch.Tensor | None:
    return None if layout is None else layout.attention  # [L, L] bool, or None: causal


def _common(kept: _Kept, embeddings, positions, attention, limit: int) -> int:
    """How many first tokens a prompt (embeddings [L, D], positions [L], attention [L, L] or
    None) shares with a kept one, at most `limit`: same input, position and attention row."""
    n = min(kept.embeddings.shape[0], embeddings.shape[0], limit)
    if n <= 0:
        return 0
    differs = (kept.embeddings[:n] != embeddings[:n]).any(dim=1)  # n
    differs |= kept.positions[:n] != positions[:n]
    if kept.attention is not None or attention is not None:
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        mine = causal if kept.attention is None else kept.attention[:n, :n]
        theirs = causal if attention is None else attention[:n, :n]
        differs |= (mine != theirs).any(dim=1)
    first = differs.nonzero()
    return int(first[0]) if len(first) else n
