"""A clip's readings scored where its answer reads them, and the chosen one kept prefilled.

The language model judges Whisper's readings of a clip (speech_reading.py) by its
log-probability of each as the words that follow everything before the clip in the answer's
own prompt (ReadingContext): the system prompt, the conversation so far, the message's photos.
The readings share their beginnings, so they run as one prefix tree (encoders/transcribe.py
PrefixTree) after that context, in one pass with the clip's start cue.

In the answer's prompt a clip's reading neither sees its cue nor gives it a position
(prompt_layout.py), so the chosen reading's keys and values in that pass are the ones the
answer's prefill would make, position for position: `keep` hands them to the prefix cache
(prefix_cache.py), and the answer's prefill starts at the reading's last word. Before 2026-12-05 the
readings were scored after a message opening of their own (the chat template's default system
prompt, no photo), and the answer then prefilled the reading again.

The pass runs as the answer's prompt is prefilled: on the layers' bfloat16 prompt copies when
the prompt has a photo and the CPU has bfloat16 instructions (prefill.py, LunettesModel.
stream), else in float32 (before 2026-12-06, always in float32). Hands-free with the camera
on, every question has a photo. The natural spoken questions in the neural voice, each asked
with a photo (an Intel Xeon with AMX, a one-off script): the same reading for every one of
the 95 tuning and 125 evaluation questions either way; the pass 89 -> 67 ms and 91 -> 67 ms
(medians over the 36 and 48 clips judged, 2 threads).

Letters: P context length, N tree positions, Q positions in the pass, D LM width, V vocabulary.
"""

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from encoders.packed_linear import prompt_pass
from encoders.transcribe import PrefixTree
from fusion.prefix_cache import PrefixCache
from fusion.prompt_layout import PromptLayout


@dataclass(frozen=True)
class ReadingContext:
    """What stands before a clip in its answer's prompt."""

    embeddings: torch.Tensor  # [1, P, D]
    layout: PromptLayout | None  # its positions and attention; None: plain causal
    cue: torch.Tensor | None  # [D] the clip's start cue (adapter.audio_cues), or None
    owner: str | None = ""  # whose kept prompts the pass starts from, and who keeps the reading
    bfloat16: bool = False  # run on the layers' bfloat16 prompt copies, where they have them

    @property
    def length(self) -> int:
        return self.embeddings.shape[1]

    def positions(self) -> torch.Tensor:
        """[P] long."""
        if self.layout is None:
            return torch.arange(self.length)
        return self.layout.positions

    def attention(self) -> torch.Tensor:
        """[P, P] bool."""
        if self.layout is None:
            return torch.ones(self.length, self.length, dtype=torch.bool).tril()
        return self.layout.attention


class ReadingPass:
    """The LM's pass over one clip's readings after their context; `keep` the chosen one."""

    def __init__(
        self,
        lm: torch.nn.Module,
        context: ReadingContext,
        vocabulary: torch.Tensor,
        prefixes: PrefixCache | None = None,
    ):
        self.lm, self.context, self.vocabulary, self.prefixes = lm, context, vocabulary, prefixes
        self._tree: PrefixTree | None = None
        self._rows: set[tuple[int, ...]] = set()  # the rows scored
        self._cache = None  # after scores(): keys and values of context, cue, tree [P + c + N]

    @torch.inference_mode()
    def scores(self, rows: list[list[int]]) -> list[float]:
        """The LM's log-probability of each row of token ids as what follows the context
        (an empty row: 0.0). Runs the pass: what the owner's kept prompts give of the context
        is not run again."""
        from fusion.kv_cache import GrowingCache  # transformers, imported when first used

        context, device = self.context, self.vocabulary.device
        found = (0, None, None)
        if self.prefixes is not None:
            found = self.prefixes.find(context.embeddings[0], context.layout, context.owner)
        done, cache, kept_logits = found
        cache = cache if cache is not None else GrowingCache()
        tree = PrefixTree([row for row in rows if row])  # a row's last token predicts nothing
        cued = context.cue is not None
        rest = context.length - done  # context positions still to run (0: kept whole)
        inputs = self._embeddings(done, tree.tokens).to(device)[None]  # 1, Q, D
        positions, attention = self._layout(done, tree.sees(), tree.depths)  # [Q], [Q, P + c + N]
        first = rest - 1 if rest else None  # the row whose logits predict a reading's first token
        keep = ([first] if first is not None else []) + [
            rest + cued + node for node in range(len(tree.tokens))
        ]
        log_probs = torch.zeros(0, self.vocabulary.shape[0])  # len(keep), V
        if inputs.shape[1]:  # (nothing to run: the context kept whole, one-token rows, no cue)
            with prompt_pass() if context.bfloat16 else nullcontext():
                output = self.lm(
                    inputs_embeds=inputs,
                    attention_mask=attention[None, None].to(device),  # 1, 1, Q, P + c + N
                    position_ids=positions[None].to(device),  # 1, Q
                    cache=cache,
                    use_cache=True,
                    logits_to_keep=torch.tensor(keep, device=device),
                )
            logits = output.logits[0]  # len(keep), V
            log_probs = logits.float().log_softmax(-1).cpu()
        if first is None:
            opening = kept_logits.float().log_softmax(-1).cpu()  # V
            nodes = log_probs
        else:
            opening, nodes = log_probs[0], log_probs[1:]  # V; N, V
        self._tree, self._cache, self._rows = tree, cache, {tuple(row) for row in rows}
        scores = []
        for row in rows:
            if not row:
                scores.append(0.0)
                continue
            total = float(opening[row[0]])
            for end in range(1, len(row)):  # row[:end] predicts row[end]
                total += float(nodes[tree.nodes[tuple(row[:end])], row[end]])
            scores.append(total)
        return scores

    def keep(self, reading: list[int]) -> bool:
        """Keep the context, the cue and `reading` (a row scored) but its last token as a
        prompt prefilled for the context's owner: the answer's prefill starts there. (The
        pass has no position for a row's last token, which predicts nothing; with the clip's
        end cue and the template's end of the turn, the answer's prefill is then ~7 rows, few
        enough for the layers' block products.) False when there is nothing to keep (no pass
        yet, no prefix cache, a row not scored)."""
        tree, cache, context = self._tree, self._cache, self.context
        if tree is None or self.prefixes is None or not reading or tuple(reading) not in self._rows:
            return False
        from fusion.kv_cache import GrowingCache

        words = reading[:-1]
        nodes = [tree.nodes[tuple(reading[: end + 1])] for end in range(len(words))]
        cued = context.cue is not None
        before = context.length + cued
        index = torch.tensor(list(range(before)) + [before + node for node in nodes])  # K
        kept = GrowingCache()
        for layer, cached in enumerate(cache.layers):
            keys, values = cached.keys, cached.values  # 1, H, P + c + N, Dh
            kept.update(
                keys[:, :, index.to(keys.device)], values[:, :, index.to(values.device)], layer
            )
        chain = torch.ones(len(words), len(words), dtype=torch.bool).tril()  # the words in a row
        layout = PromptLayout(*self._layout(0, chain, range(len(words))))  # [K], [K, K]
        self.prefixes.keep(self._embeddings(0, words), layout, kept, context.owner)
        return True

    def _embeddings(self, done: int, tokens: list[int]) -> torch.Tensor:
        """The context from `done` on, the cue, and `tokens` (LM ids) -> [Q, D]."""
        context = self.context
        parts = [context.embeddings[0, done:]]  # P - done, D
        if context.cue is not None:
            parts.append(context.cue.to(self.vocabulary.dtype)[None])  # 1, D
        parts.append(self.vocabulary[torch.tensor(tokens, dtype=torch.long)])  # M, D
        return torch.cat(parts)

    def _layout(
        self, done: int, sees: torch.Tensor, depths: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions [Q] and attention [Q, P + c + M] of the context's tokens from `done` on,
        the cue and M reading tokens (sees [M, M]: which of them each sees; depths: each one's
        place in its reading), as the answer's prompt has them: the cue sees the context and
        itself, at the position of the token before it; the readings see the context, not the
        cue. done = 0 and one reading in a row: the kept prompt's own layout."""
        context = self.context
        length, cued, count = context.length, context.cue is not None, len(depths)
        positions, attention = context.positions(), context.attention()  # [P], [P, P]
        after = attention[-1]  # [P]: what a token after the context sees of it
        last = int(positions[-1])
        rows = torch.zeros(length - done + cued + count, length + cued + count, dtype=torch.bool)
        rows[: length - done, :length] = attention[done:]
        row = length - done
        if cued:
            rows[row, :length] = after
            rows[row, length] = True
            row += 1
        rows[row:, :length] = after
        rows[row:, length + cued :] = sees
        added = ([last] if cued else []) + [last + 1 + depth for depth in depths]
        positions = torch.cat([positions[done:], torch.tensor(added, dtype=torch.long)])
        return positions.long(), rows
