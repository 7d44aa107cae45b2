"""Decoding several answers at once: one batched KV cache, a row per answer.

Each answer's prompt is prefilled alone (its own length, positions and scoped attention,
prompt_layout.py; after the prefix it shares with a kept prompt, whole or a chunk at a time:
prefill.py), then its KV cache joins the batch as a new row, left-padded with columns it
never attends to. Each decode step then feeds every row's last token in one forward pass
[B, 1], with each row's own positions and attention mask [B, T]. On a CPU the weights are
read once per step whatever the number of rows, so B answers cost little more than one.
A finished or cancelled row leaves at once, and the columns no row attends to any more are
cropped. Tokens are chosen per row exactly as generate.generate_tokens chooses them (greedy
or seeded sampling, the repetition penalty, stop ids, max_new_tokens).

The transformers library has its own continuous batching (generate_batch, paged attention),
but it takes token ids only: a prompt whose photo and clip are spliced in as embeddings,
with scoped attention, cannot go through it.

No threads here: scheduler.py calls begin, advance and step from the one thread that owns
the model.

Letters: B rows, T cache columns, L prompt length, D LM width, V vocabulary.
"""

import secrets
from dataclasses import dataclass, field

import torch

from fusion.decode_step import step_logits
from fusion.generate import GenerationOptions, penalise_repeats, pick
from fusion.prefill import Prefill, advance, start_prefill
from fusion.prefix_cache import PrefixCache
from fusion.prompt_layout import PromptLayout


@dataclass(eq=False)
class Row:
    """One answer being decoded."""

    options: GenerationOptions
    stop_ids: set[int]
    generator: torch.Generator
    position: int  # the position of the last token fed (or of the prompt's last)
    generated: list[int] = field(default_factory=list)  # tokens chosen so far
    pending: int | None = None  # the token chosen last, to feed at the next step
    finished: bool = False  # a stop id, max_new_tokens, or cancelled


class BatchDecoder:
    def __init__(self, lm: torch.nn.Module, prefixes: PrefixCache | None = None):
        self.lm = lm
        self.prefixes = prefixes  # kept prompt prefixes: start from them, keep each prompt
        self.rows: list[Row] = []  # in the cache's batch order
        self.cache = None  # kv_cache.GrowingCache [B, H, T, Dh] per layer, None when empty
        self.mask: torch.Tensor | None = None  # [B, T] long: 1 where a row attends

    @property
    def columns(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def begin(
        self,
        embeddings: torch.Tensor,
        layout: PromptLayout | None = None,
        owner: str | None = "",
        bfloat16: bool = False,
    ) -> Prefill:
        """embeddings [1, L, D] -> its prefill, after the longest prefix it shares with the
        owner's kept prompts (bfloat16: on the layers' bfloat16 prompt copies)."""
        return start_prefill(embeddings, layout, self.prefixes, owner, bfloat16)

    @torch.inference_mode()
    def advance(
        self,
        prefill: Prefill,
        options: GenerationOptions,
        stop_ids: set[int],
        tokens: int | None = None,
    ) -> Row | None:
        """Prefill the next `tokens` of the prompt (all when None) -> None while some are
        left; then a new row with its first token chosen (row.generated), in the batch unless
        it finished at once."""
        logits = advance(self.lm, prefill, tokens, self.prefixes)  # V, or None
        if logits is None:
            return None
        seed = options.seed if options.seed is not None else secrets.randbits(63)
        layout = prefill.layout
        if layout is None:
            seen = torch.ones(prefill.length, dtype=torch.long)  # L
            position = prefill.length - 1
        else:
            seen = layout.attention[-1].long()  # L: what the prompt's last token sees
            position = int(layout.positions[-1])
        row = Row(options, stop_ids, torch.Generator().manual_seed(seed), position)
        self._choose(row, logits)
        if not row.finished:
            self._join(row, prefill.cache, seen.to(prefill.embeddings.device))
        return row

    def prefill(
        self,
        embeddings: torch.Tensor,
        options: GenerationOptions,
        stop_ids: set[int],
        layout: PromptLayout | None = None,
    ) -> Row:
        """embeddings [1, L, D] -> a new row, the whole prompt prefilled at once (advance)."""
        return self.advance(
            self.begin(embeddings, layout, bfloat16=options.prompt_in_bfloat16), options, stop_ids
        )

    @torch.inference_mode()
    def step(self) -> list[Row]:
        """Feed every row its pending token, choose the next -> the rows (each has one more
        token in `generated`, or is finished). Finished rows leave the batch."""
        self.drop([row for row in self.rows if row.finished])
        if not self.rows:
            return []
        device = self.mask.device
        tokens = torch.tensor([[row.pending] for row in self.rows], device=device)  # B, 1
        positions = torch.tensor([[row.position + 1] for row in self.rows], device=device)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)  # B, T+1
        logits = step_logits(self.lm, tokens, self.cache, self.mask, positions)  # B, V
        stepped = list(self.rows)
        for index, row in enumerate(stepped):
            row.position += 1
            self._choose(row, logits[index])
        self.drop([row for row in stepped if row.finished])
        return stepped

    def drop(self, rows: list[Row]) -> None:
        """Take rows out of the batch (finished, or cancelled: marked finished)."""
        gone = {id(row) for row in rows}
        for row in rows:
            row.finished = True
        keep = [i for i, row in enumerate(self.rows) if id(row) not in gone]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[index]
        attended = self.mask.any(dim=0).nonzero()
        first = int(attended[0]) if len(attended) else 0  # columns no row attends: cropped
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]

    def _choose(self, row: Row, logits: torch.Tensor) -> None:
        """logits [V] -> the row's next token, or finished (a stop id, or the last token)."""
        logits = penalise_repeats(logits, row.generated, row.options.repetition_penalty)
        token = pick(logits, row.options, row.generator)
        if token in row.stop_ids:
            row.finished, row.pending = True, None
            return
        row.generated.append(token)
        row.pending = token
        if len(row.generated) >= row.options.max_new_tokens:
            row.finished = True

    def _join(self, row: Row, cache, seen: torch.Tensor) -> None:
        """Add a prefilled row's cache [1, H, L, Dh] per layer, left-padding the shorter side."""
        if self.cache is None:
            self.cache, self.mask, self.rows = cache, seen[None], [row]
            return
        length, columns = seen.shape[0], self.columns
        width = max(length, columns)
        self.mask = torch.cat(
            [_left_pad(self.mask, width), _left_pad(seen[None], width)], dim=0
        )  # B+1, T'
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat(
                [_left_pad(mine.values, width), _left_pad(theirs.values, width)]
            )
        self.rows.append(row)


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """[B, T] or [B, H, T, Dh] -> the same with zero columns on the left up to T == width."""
    axis = 1 if tensor.dim() == 2 else 2
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)
