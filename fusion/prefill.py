"""Prefilling a prompt into a KV cache: from where a kept prefix ends, a chunk at a time.

A prompt that begins like one prefilled before starts from that prefix's keys and values
(prefix_cache.py). The rest is run through the LM in one pass, or in chunks so that the
decode scheduler can step its running answers between two chunks of a long prompt. A chunk's
tokens see the cache and each other as the whole prompt's would: its rows of the prompt's
scoped attention (prompt_layout.py) and its positions, or plain causal attention. A prefill
asked in bfloat16 (the prompts of photos, LunettesModel.stream) runs on the layers' bfloat16
prompt copies where they have them (encoders/packed_linear.py); decoding stays float32.

Letters: L prompt length, D LM width, V vocabulary.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from encoders.packed_linear import prompt_pass
from fusion.prefix_cache import PrefixCache
from fusion.prompt_layout import PromptLayout


@dataclass(eq=False)
class Prefill:
    """A prompt on its way into a KV cache."""

    embeddings: torch.Tensor  # [1, L, D]
    layout: PromptLayout | None
    cache: object  # kv_cache.GrowingCache
    done: int = 0  # prompt tokens whose keys and values are in the cache
    owner: str | None = ""  # whose kept prefixes it may start from, and who keeps it
    bfloat16: bool = False  # run on the layers' bfloat16 prompt copies, where they have them
    kept_logits: torch.Tensor | None = None  # [V]: the prompt was kept whole, with these

    @property
    def length(self) -> int:
        return self.embeddings.shape[1]


def start_prefill(
    embeddings: torch.Tensor,
    layout: PromptLayout | None,
    prefixes: PrefixCache | None,
    owner: str | None = "",
    bfloat16: bool = False,
) -> Prefill:
    """embeddings [1, L, D] -> a Prefill starting after the longest prefix the owner's kept
    prompts give, if any. bfloat16: prefill on the layers' bfloat16 prompt copies."""
    from fusion.kv_cache import GrowingCache  # transformers, imported when first used

    found = (0, None, None) if prefixes is None else prefixes.find(embeddings[0], layout, owner)
    reused, cache, logits = found
    return Prefill(embeddings, layout, cache or GrowingCache(), reused, owner, bfloat16, logits)


@torch.inference_mode()
def advance(
    lm: torch.nn.Module,
    prefill: Prefill,
    tokens: int | None = None,
    prefixes: PrefixCache | None = None,
) -> torch.Tensor | None:
    """Run the next `tokens` prompt tokens (all that are left when None) -> the last prompt
    token's logits [V] once the whole prompt is in the cache (kept in `prefixes`, with those
    logits), else None. A prompt found kept whole runs nothing: its kept logits."""
    start, length = prefill.done, prefill.length
    if start == length and prefill.kept_logits is not None:
        return prefill.kept_logits
    end = length if tokens is None else min(length, start + tokens)
    scoped = {}
    if prefill.layout is not None:
        device = prefill.embeddings.device
        scoped = {
            "attention_mask": prefill.layout.attention[None, None, start:end, :end].to(device),
            "position_ids": prefill.layout.positions[None, start:end].to(device),
        }  # [1, 1, n, end] and [1, n]; without a layout the cache's length gives both
    with prompt_pass() if prefill.bfloat16 else nullcontext():
        output = lm(
            inputs_embeds=prefill.embeddings[:, start:end],
            cache=prefill.cache,
            use_cache=True,
            logits_to_keep=1,
            **scoped,
        )
    prefill.done = end
    if end < length:
        return None
    logits = output.logits[0, -1]  # V
    if prefixes is not None:
        prefixes.keep(prefill.embeddings[0], prefill.layout, prefill.cache, prefill.owner, logits)
    return logits
