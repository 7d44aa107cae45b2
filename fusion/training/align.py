"""The speech alignment objective: CTC from projected audio frames to the spoken tokens.

The classes are a learned blank plus LM token embeddings (compress.CtcHead). Scoring every
frame against the whole 49k vocabulary would cost more than the LM step itself, so each
batch scores the tokens of its own targets plus a fresh random sample of other tokens
(sampled-softmax negatives), which keeps frames away from the rest of the vocabulary too.

Letters: B batch, T frames, C encoder width, D LM width, K classes scored this batch.
"""

import torch
from torch import nn

from fusion.adapter import Adapter
from fusion.compress import BLANK, compress

NEGATIVES = 2048  # random other vocabulary tokens scored per batch


def spoken_token_ids(tokenizer, text: str) -> list[int]:
    """The tokens of `text` as they appear in a typed user message (no leading space)."""
    return tokenizer.encode(text.strip(), add_special_tokens=False)


def pad_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[T_i, C] each -> (features [B, T, C] zero-padded, float32; lengths [B])."""
    lengths = torch.tensor([f.shape[0] for f in features])
    batch = torch.zeros(len(features), int(lengths.max()), features[0].shape[1])
    for row, f in enumerate(features):
        batch[row, : f.shape[0]] = f.float()
    return batch, lengths


def ctc_loss(
    adapter: Adapter,
    features: list[torch.Tensor],
    targets: list[list[int]],
    vocabulary: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean CTC loss of the audio projector's frames against the spoken token ids.

    features: Whisper frames [T_i, C] per clip; targets: token ids per clip; vocabulary: the
    LM's (frozen) input embeddings [V, D].
    """
    return alignment_losses(adapter, features, targets, vocabulary, generator, embedding=False)[0]


def alignment_losses(
    adapter: Adapter,
    features: list[torch.Tensor],
    targets: list[list[int]],
    vocabulary: torch.Tensor,
    generator: torch.Generator,
    embedding: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(CTC loss, embedding loss) of one batch of clips.

    The embedding loss pulls each compressed token (compress.py) onto the LM's own embedding
    of the token said, for the clips whose compressed tokens already name exactly the words
    said: relative squared error |c - e|^2 / |e|^2, averaged (= 2 - 2 cos, since compression
    gives c the length of e). Where it holds, the LM reads a
    spoken question almost exactly as the typed one, and so answers it the same way; CTC alone
    only makes the direction close (cosine), and the LM is sensitive to the rest.
    """
    if adapter.audio_ctc is None:
        raise ValueError("this adapter has no CTC head (audio_compress is off)")
    batch, lengths = pad_features(features)
    projector = adapter.projectors["audio"]
    frames = projector(batch.to(vocabulary.device), lengths.to(vocabulary.device))  # B, T', D
    frame_lengths = (lengths + projector.stack - 1) // projector.stack  # B
    own = torch.tensor(sorted({t for ids in targets for t in ids}), dtype=torch.long)
    others = torch.randint(0, vocabulary.shape[0], (NEGATIVES,), generator=generator)
    others = others[~torch.isin(others, own)]
    classes = torch.cat([own, others.unique()])  # K token ids; class k + 1 in the logits
    position = {int(token): index + 1 for index, token in enumerate(own)}
    logits = adapter.audio_ctc.logits(frames, vocabulary[classes.to(vocabulary.device)])
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # T', B, 1 + K
    flat = torch.tensor([position[t] for ids in targets for t in ids], device=frames.device)
    ctc = nn.functional.ctc_loss(
        log_probs,
        flat,
        frame_lengths,
        torch.tensor([len(ids) for ids in targets]),
        blank=0,
        zero_infinity=True,
    )
    errors = []
    for row, ids in enumerate(targets if embedding else []):
        tokens = frames[row, : int(frame_lengths[row])]  # T_i', D
        labels = adapter.audio_ctc.frame_labels(tokens, vocabulary)  # T_i'
        if collapse(labels.tolist()) != ids:
            continue  # misheard: CTC (and the LM's loss) deal with it
        said = vocabulary[torch.tensor(ids, device=vocabulary.device)]  # N, D
        difference = compress(tokens, labels, vocabulary) - said
        errors.append((difference.pow(2).sum(-1) / said.pow(2).sum(-1)).mean())
    embedding_loss = torch.stack(errors).mean() if errors else frames.sum() * 0.0
    return ctc, embedding_loss


def collapse(labels: list[int]) -> list[int]:
    """Greedy CTC read-out: runs merged, blanks dropped (as compress() groups frames)."""
    out, previous = [], BLANK
    for label in labels:
        if label != BLANK and label != previous:
            out.append(label)
        previous = label
    return out
