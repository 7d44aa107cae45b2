"""Token-by-token decoding from input embeddings, with a KV cache; knows nothing of media.

The prompt is prefilled from `inputs_embeds` (text embeddings with media spliced in); each
following step feeds the last token id. Greedy when temperature is 0, else nucleus sampling
from a seeded generator. A prompt with scoped tokens (prompt_layout.py) brings its own
positions and attention; generated tokens then see what the prompt's last token sees.
"""

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from fusion.decode_step import step_logits
from fusion.prefill import advance, start_prefill
from fusion.prefix_cache import PrefixCache
from fusion.prompt_layout import PromptLayout

MIN_TEMPERATURE = 1e-4  # below this, sampling is greedy decoding


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int = 256  # tokens generated at most
    temperature: float = 0.0  # 0: greedy (deterministic); > 0: sampling
    top_p: float = 1.0  # nucleus sampling mass, used when temperature > 0
    seed: int | None = None  # sampling seed; None: a fresh random seed
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings
    repetition_penalty: float = 1.0  # > 1 discourages tokens already generated; 1 = off
    # the prompt prefilled on the LM's bfloat16 prompt copies, where it has them (prefill.py);
    # LunettesModel.stream sets it for prompts with a photo
    prompt_in_bfloat16: bool = False
    # For a reader that speaks the answer: called with the answer's text so far after each
    # token, in the thread that decodes, until it is True once (the reader's first piece to
    # speak is written). Decoding then waits for the reader's hold (LunettesModel.
    # decoding_held) instead of running a step the voice would wait for (scheduler.py).
    pause_after: Callable[[str], bool] | None = None

    def __post_init__(self):
        if isinstance(self.stop, str):
            raise TypeError(f"stop must be a tuple of strings, not the string {self.stop!r}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature must be in [0, 5], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise ValueError(f"repetition_penalty must be in [1, 2], got {self.repetition_penalty}")


@torch.inference_mode()
def generate_tokens(
    lm: torch.nn.Module,
    inputs_embeds: torch.Tensor,
    options: GenerationOptions,
    stop_ids: set[int],
    layout: PromptLayout | None = None,
    prefixes: PrefixCache | None = None,
    owner: str | None = "",
) -> Iterator[int]:
    """inputs_embeds [1, L, D] -> yields new token ids until a stop id or max_new_tokens.
    prefixes: kept prompt prefixes to start from (the owner's), and to keep this prompt in."""
    seed = (
        options.seed if options.seed is not None else secrets.randbits(63)
    )  # global RNG untouched
    generator = torch.Generator().manual_seed(seed)
    prefill = start_prefill(inputs_embeds, layout, prefixes, owner, options.prompt_in_bfloat16)
    logits = advance(lm, prefill, prefixes=prefixes)  # V
    cache = prefill.cache
    scoped: dict = {}
    if layout is not None:  # seen: [1, L + k] what each new token may attend to
        seen = layout.attention[-1].long()[None].to(inputs_embeds.device)
        position = int(layout.positions[-1])
    generated: list[int] = []
    for _ in range(options.max_new_tokens):
        logits = penalise_repeats(logits, generated, options.repetition_penalty)
        token = pick(logits, options, generator)
        if token in stop_ids:
            return
        generated.append(token)
        yield token
        if len(generated) == options.max_new_tokens:
            return
        if layout is not None:
            seen = torch.cat([seen, seen.new_ones(1, 1)], dim=1)
            position += 1
            scoped = {"attention_mask": seen, "position_ids": torch.tensor([[position]])}
        logits = step_logits(lm, torch.tensor([[token]]), cache, **scoped)[0]


def penalise_repeats(logits: torch.Tensor, generated: list[int], penalty: float) -> torch.Tensor:
    """logits [V] -> logits [V] with already generated tokens made less likely (CTRL's rule:
    positive logits divided by the penalty, negative ones multiplied)."""
    if penalty == 1.0 or not generated:
        return logits
    seen = torch.tensor(sorted(set(generated)))
    values = logits[seen]
    logits = logits.clone()
    logits[seen] = torch.where(values > 0, values / penalty, values * penalty)
    return logits


def pick(logits: torch.Tensor, options: GenerationOptions, generator: torch.Generator) -> int:
    """logits [V] -> next token id."""
    if options.temperature < MIN_TEMPERATURE:  # 0, or so small that logits / t overflows
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= options.top_p  # keeps at least one
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class IncrementalText:
    """Turns a growing list of token ids into text deltas, never splitting a character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return ""
        delta, self.text = text[len(self.text) :], text
        return delta
