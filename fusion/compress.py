"""CTC compression of speech tokens: one LM embedding per spoken token instead of ~4.

The audio projector is trained (besides the LM's own loss) with a CTC objective whose
classes are a learned "blank" plus the LM's own token embeddings, compared by cosine
similarity. Each projected frame is then either blank (silence, or between tokens) or close
to the embedding of the token being said. Compression drops the blank frames and averages
each run of frames that point at the same token, so the LM reads a short sequence of
continuous vectors near the embeddings of the words spoken (as Speech-LLaMA's CTC compressor
does). Prompts get ~4x shorter, and the LM sees speech the way it sees typed text.

Letters: T frames, D LM width, V vocabulary, N tokens after compression.
"""

import torch
from torch import nn

BLANK = -1  # frame label of a blank frame


class CtcHead(nn.Module):
    """The CTC classes' geometry: a blank direction and a similarity scale."""

    def __init__(self, width: int):
        super().__init__()
        self.blank = nn.Parameter(torch.randn(width) * 0.02)  # D
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # softmax temperature: exp(2.3) ~ 10

    def logits(
        self,
        frames: torch.Tensor,
        classes: torch.Tensor,
        unit_classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """frames [..., T, D], classes [V', D] -> [..., T, 1 + V'] (class 0 is blank).

        unit_classes: `classes` already scaled to unit length, when the caller has them.
        """
        if unit_classes is None:
            unit_classes = nn.functional.normalize(classes, dim=-1)
        unit_frames = nn.functional.normalize(frames, dim=-1)
        blank = unit_frames @ nn.functional.normalize(self.blank, dim=0)  # ..., T
        tokens = unit_frames @ unit_classes.T  # ..., T, V'
        return self.log_scale.exp() * torch.cat([blank[..., None], tokens], dim=-1)

    @torch.no_grad()
    def log_probs(self, frames: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
        """frames [T, D], vocabulary [V, D] -> log-probabilities [T, 1 + V] (class 0: blank)."""
        unit = self._unit_vocabulary(vocabulary)
        return self.logits(frames, vocabulary, unit).float().log_softmax(-1)

    @torch.no_grad()
    def frame_labels(self, frames: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
        """frames [T, D], vocabulary [V, D] -> [T] token id per frame, or BLANK."""
        return self.read_frames(frames, vocabulary)[0]

    @torch.no_grad()
    def read_frames(
        self, frames: torch.Tensor, vocabulary: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [T, D], vocabulary [V, D] -> (labels [T]: token id or BLANK,
        confidence [T]: the softmax probability of that label, over blank + all V tokens)."""
        unit = self._unit_vocabulary(vocabulary)
        probabilities = self.logits(frames, vocabulary, unit).float().softmax(-1)  # T, 1 + V
        confidence, best = probabilities.max(-1)  # T, T in 0 .. V
        return best - 1, confidence  # blank (0) -> BLANK (-1), token v + 1 -> v

    def _unit_vocabulary(self, vocabulary: torch.Tensor) -> torch.Tensor:
        """The (frozen) LM embedding table at unit length, computed once: normalising 49k rows
        took ~70 of the ~83 ms each spoken clip spent here, on every turn."""
        key = (vocabulary.data_ptr(), tuple(vocabulary.shape), vocabulary._version)
        cached = getattr(self, "_unit_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, nn.functional.normalize(vocabulary.detach(), dim=-1))
            self._unit_cache = cached
        return cached[1]


def compress(
    frames: torch.Tensor,
    labels: torch.Tensor,
    vocabulary: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    snap_above: float | None = None,
) -> torch.Tensor:
    """frames [T, D], labels [T] -> [N, D]: blanks dropped, each run of one label averaged.

    With the LM's embedding table `vocabulary` [V, D], each averaged vector also takes the
    length (L2 norm) of the embedding of the token its run names: CTC trains only the
    direction, and a frozen LM reads a vector of the wrong length very differently (the
    adapter's vectors had drifted to ~60x the embeddings' length before this).
    A clip with no non-blank frame keeps the mean of all its frames (one token), so a medium
    never disappears from the prompt.

    Snapping: with `confidence` [T] (read_frames) and `snap_above`, a run whose mean
    confidence is at least `snap_above` becomes exactly the embedding of the token it names,
    a vector quantisation onto the LM's own vocabulary. A frozen 135M LM answers a spoken
    question the way it answers the typed one only if it reads the very same vectors (its
    greedy answer flips on small offsets); runs the head is unsure of keep their continuous
    vector, so doubt is passed on rather than turned into a confident wrong word.
    """
    if frames.shape[0] == 0:
        raise ValueError("no speech frames to compress")
    keep = labels != BLANK
    if not bool(keep.any()):
        return frames.mean(0, keepdim=True)
    kept, kept_labels = frames[keep], labels[keep]
    # a new run starts where the label differs from the previous kept frame's,
    # or where blanks separated two runs of the same token ("a a" said twice)
    positions = torch.nonzero(keep).squeeze(1)
    starts = torch.ones_like(kept_labels, dtype=torch.bool)
    starts[1:] = (kept_labels[1:] != kept_labels[:-1]) | (positions[1:] != positions[:-1] + 1)
    run = torch.cumsum(starts.long(), 0) - 1  # N runs, index per kept frame
    count = int(run[-1]) + 1
    sums = torch.zeros(count, frames.shape[1], dtype=frames.dtype, device=frames.device)
    sums = sums.index_add(0, run, kept)
    sizes = torch.bincount(run, minlength=count).to(frames.dtype)[:, None]
    means = sums / sizes  # N, D
    if vocabulary is None:
        return means
    run_labels = kept_labels[starts]  # N
    named = vocabulary[run_labels]  # N, D
    lengths = named.norm(dim=-1, keepdim=True)  # N, 1
    tokens = means / means.norm(dim=-1, keepdim=True).clamp_min(1e-6) * lengths
    if confidence is None or snap_above is None:
        return tokens
    run_confidence = torch.zeros(count, dtype=confidence.dtype, device=confidence.device)
    run_confidence = run_confidence.index_add(0, run, confidence[keep]) / sizes[:, 0]  # N
    sure = (run_confidence >= snap_above)[:, None]  # N, 1
    return torch.where(sure, named.to(tokens.dtype), tokens)
