"""Whisper's text decoder made fast for beam search: packed weights, cross-attention kept split.

Each step of openai-whisper's beam search runs the decoder over one new token of each of the
5 beams: a [5, 512] activation through every linear layer and through the vocabulary
projection (the token embedding, tied: 51,865 x 512, 106 MB in float32). torch's float32
product streams those weights slowly for a few rows: over the 22 steps of a 5 s question the
projection alone took 360 of 830 ms (AMD EPYC, 2 threads, 2026-12-03). Here every linear
layer of the decoder and the projection run on oneDNN's packed layout (packed_linear.py),
float32 as before.

Cross-attention's keys and values are computed once per clip (openai-whisper's KV cache), for
one clip [1, T, D], while the queries come from 5 beams: torch's attention broadcast them to
the 5 beams by copying, at every step, two [5, 8, T, 64] tensors per layer: 40% of a step
once the weights were packed. CrossAttention keeps them split into heads in the same KV
cache, and lets the beams' queries attend to them as more query positions of the one clip
(nothing is masked in cross-attention, so that is the same product). The results agree with
openai-whisper's own to float32 rounding.

The packed weights are bfloat16 (PACKED_DTYPE) where the CPU has bfloat16 instructions
(float32 elsewhere, packed_linear.py `bfloat16_available`): half the bytes of each step's
weights to stream, and the activations rounded to bfloat16 on their way into each product.
Quality was measured with the full `lunettes eval` (README, Evaluation). On the natural tuning half (95 hand-written questions in the held-out neural voice,
2026-12-03), every reading the LM was given stayed the same as with float32 and one of 95
transcripts changed; the 5 s bench question's transcript took 321-421 ms instead of 408-483
(paired in one process, AMD EPYC with AVX-512 BF16, a slow day).

Where the packed weights are float32 (no bfloat16 instructions), the beams' few rows go
through the compiled kernel's float16 product instead (half_rows.py, when `pack_decoder` is
given it): Whisper's weights ship as float16, so the products are the float32 ones from half
the bytes. 24 natural questions in the held-out neural voice and the 5 s bench question, one
process, alternating (2-core AVX2 EPYC, 2026-12-05): every reading of every clip the same, in
the same order; a transcript 209 -> 133 ms (median), the bench question's 450 -> 282 ms.

Letters: B rows (beams), N new tokens, D width, V vocabulary, T audio frames.
"""

import torch
import torch.nn.functional as F
from torch import nn
from whisper.model import Linear as WhisperLinear
from whisper.model import MultiHeadAttention, TextDecoder, Whisper

from encoders.gemv import Gemv
from encoders.half_rows import use_half_rows
from encoders.packed_linear import PackedLinear, bfloat16_available, pack_linears

PACKED_DTYPE = torch.bfloat16  # the packed weights' (float32 without bfloat16 instructions)


class PackedTextDecoder(TextDecoder):
    """openai-whisper's TextDecoder, its vocabulary projection a linear layer over the tied
    token embedding (packed); everything else as TextDecoder.forward does it."""

    vocabulary: nn.Linear  # weight: token_embedding.weight itself [V, D]

    def forward(self, x: torch.Tensor, xa: torch.Tensor, kv_cache: dict | None = None):
        """x [B, N] token ids, xa [B, T, D] encoded audio -> logits [B, N, V] float32."""
        first = self.blocks[0].attn.key  # its cache: [B, positions so far, D]
        offset = kv_cache[first].shape[1] if kv_cache and first in kv_cache else 0
        x = self.token_embedding(x) + self.positional_embedding[offset : offset + x.shape[-1]]
        x = x.to(xa.dtype)
        for block in self.blocks:
            x = block(x, xa, mask=self.mask, kv_cache=kv_cache)
        return self.logits(self.ln(x))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., D] after the final norm -> logits [..., V] float32."""
        return self.vocabulary(hidden).float()


class CrossAttention(MultiHeadAttention):
    """openai-whisper's cross-attention; with a KV cache, its keys and values split into heads
    once per clip (kept in that cache under this module) instead of at every step."""

    def forward(self, x, xa=None, mask=None, kv_cache=None):
        """x [B, N, D], xa [1, T, D] (one clip for every row) -> ([B, N, D], None)."""
        if kv_cache is None or xa is None or xa.shape[0] != 1:
            return super().forward(x, xa, mask, kv_cache)
        heads = kv_cache.get(self)  # keys, values [1, H, T, Dh]
        if heads is None:
            if self.key in kv_cache:
                keys, values = kv_cache[self.key], kv_cache[self.value]
            else:  # the first step: the cache's hooks keep them too
                keys, values = self.key(xa), self.value(xa)
            heads = tuple(
                t.view(*t.shape[:2], self.n_head, -1).transpose(1, 2).contiguous()
                for t in (keys, values)
            )
            kv_cache[self] = heads
        rows, new, width = x.shape
        q = self.query(x).view(rows, new, self.n_head, -1)  # B, N, H, Dh
        q = q.permute(2, 0, 1, 3).reshape(1, self.n_head, rows * new, -1)  # 1, H, B*N, Dh
        attended = F.scaled_dot_product_attention(q, *heads)  # 1, H, B*N, Dh
        attended = attended.reshape(self.n_head, rows, new, -1).permute(1, 2, 0, 3)
        return self.out(attended.reshape(rows, new, width)), None  # B, N, D


def pack_decoder(
    model: Whisper, dtype: torch.dtype = PACKED_DTYPE, gemv: Gemv | None = None
) -> int:
    """Run the decoder's linear layers and vocabulary projection on packed weights (`dtype`:
    bfloat16 or float32; float32 where the CPU has no bfloat16 instructions, packed_linear.py),
    and its cross-attention as CrossAttention (in place); returns how many layers were packed
    (0 where oneDNN is not available: the weights stay as they were). gemv: where the packed
    weights are float32, a few rows (the beams) go through its float16 product instead
    (half_rows.py), the weights being float16 values."""
    decoder = model.decoder
    for block in decoder.blocks:
        if type(block.cross_attn) is MultiHeadAttention:
            block.cross_attn.__class__ = CrossAttention
    vocab, width = decoder.token_embedding.weight.shape
    vocabulary = nn.Linear(width, vocab, bias=False, device="meta")  # no weight of its own:
    vocabulary.weight = decoder.token_embedding.weight  # tied, as in TextDecoder.forward
    packed = pack_linears(decoder, (WhisperLinear,), dtype) + pack_linears(vocabulary, dtype=dtype)
    if not isinstance(vocabulary, PackedLinear):
        return packed
    decoder.__class__ = PackedTextDecoder
    decoder.vocabulary = vocabulary
    if gemv is not None and (dtype == torch.float32 or not bfloat16_available()):
        use_half_rows(decoder, gemv)
    return packed
