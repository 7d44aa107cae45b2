"""A decode step of the LM for up to 8 rows: the same products and the same attention as
transformers' forward, without its per-module calls, from fewer and larger block products.

Once its layers read the GGUF file's blocks (row_linear.py), a decode step of the embedded
LM spent about as long around its products as in them: transformers' forward calls ~700
modules and wrappers per token (decorators, keyword plumbing, hooks), each a few microseconds
of Python, and 211 separate products. Here a step runs the same library functions (its causal
mask, rotary embedding, RMSNorm, attention interface, activation) in a plain loop over the
layers, and each layer's query, key and value projections are one block product, as are its
gate and up projections: 4 products per layer instead of 7. Each output of a block product is
its own dot product, whatever rows the weight has around it, so the logits are those of
transformers' forward bit for bit (tests/test_decode_step.py; the embedded LM: tests/
test_gguf_blocks_bundle.py).

The embedded LM, one stream of 64 tokens, one process, 3 rounds alternating (2-core AVX2
EPYC, 2026-12-05): 43.9 tok/s here, 33.8 through transformers' forward (make bench prints
both); a step of 8 rows 39 ms, of which its products 21 ms.

Only Llama-family LMs whose every linear layer reads blocks (bundle.speed_up_decoding) take
this path; a prefill, more than 8 rows, autograd, or any other LM go through the LM's own
forward (`step_logits`).

Letters: B rows, T cache columns, D LM width, V vocabulary.
"""

from dataclasses import dataclass

import torch
from transformers.masking_utils import create_causal_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (
    LlamaForCausalLM,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

from encoders.gemv import HALF_ROWS, Blocks, Gemv
from fusion.row_linear import RowLinear


@dataclass(frozen=True)
class _Joined:
    """Several linear layers' blocks one under another [O1 + O2 + ..., I/32 * bytes]."""

    blocks: Blocks
    sizes: tuple[int, ...]  # each layer's out_features, in order


class DecodeStep:
    def __init__(self, lm: LlamaForCausalLM, gemv: Gemv, joined: list[tuple[_Joined, _Joined]]):
        """joined: per layer, (query|key|value, gate|up) blocks (`fuse_blocks` makes them)."""
        self.lm, self.gemv, self.joined = lm, gemv, joined

    def _products(self, joined: _Joined, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [B, 1, I] -> each joined layer's output [B, 1, O_k]."""
        rows = x.shape[0]
        if rows == 1:
            out = self.gemv.blocks_unchecked(joined.blocks, x.reshape(-1).contiguous())  # O
        else:
            flat = x.reshape(rows, -1).contiguous()  # B, I
            out = self.gemv.blocks_rows_unchecked(joined.blocks, flat)  # B, O
        return out.view(rows, 1, -1).split(joined.sizes, dim=-1)

    @torch.inference_mode()
    def __call__(
        self,
        input_ids: torch.Tensor,
        cache,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids [B, 1] (1 <= B <= 8), the cache of the rows so far (its layers' update
        appends this step), attention_mask [B, T + 1] or None, position_ids [B, 1] or None (then
        after the cache's columns) -> logits [B, V], as LlamaForCausalLM.forward gives them."""
        model = self.lm.model
        config = model.config
        x = model.embed_tokens(input_ids)  # B, 1, D
        if position_ids is None:
            position_ids = (torch.arange(1, device=x.device) + cache.get_seq_length())[None]
        mask = create_causal_mask(
            config=config,
            inputs_embeds=x,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        cos_sin = model.rotary_emb(x, position_ids=position_ids)
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(
            config._attn_implementation, eager_attention_forward
        )
        rows = x.shape[0]
        for index, (layer, (qkv, gate_up)) in enumerate(zip(model.layers, self.joined)):
            attention, mlp = layer.self_attn, layer.mlp
            heads = (rows, 1, -1, attention.head_dim)
            q, k, v = self._products(qkv, layer.input_layernorm.forward(x))
            q, k = apply_rotary_pos_emb(
                q.view(heads).transpose(1, 2), k.view(heads).transpose(1, 2), *cos_sin
            )  # B, H, 1, Dh each
            keys, values = cache.update(k, v.view(heads).transpose(1, 2), index)
            attended, _ = attend(
                attention, q, keys, values, mask, dropout=0.0, scaling=attention.scaling
            )  # B, 1, H, Dh
            x = x + attention.o_proj.forward(attended.reshape(rows, 1, -1).contiguous())
            gate, up = self._products(gate_up, layer.post_attention_layernorm.forward(x))
            x = x + mlp.down_proj.forward(mlp.act_fn(gate) * up)
        return self.lm.lm_head.forward(model.norm.forward(x))[:, -1]  # B, V


def fuse_blocks(lm: torch.nn.Module) -> DecodeStep | None:
    """Join each layer's query, key and value blocks, and its gate and up blocks, and give the
    LM a DecodeStep (lm.decode_step); the layers keep views of the joined blocks (no second
    copy). None, and nothing changed, where the LM is not a Llama whose every linear layer
    reads blocks of one format per joined group through a vectorised kernel."""
    if type(lm) is not LlamaForCausalLM:
        return None
    layers = lm.model.layers
    groups = [
        (
            [layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj],
            [layer.mlp.gate_proj, layer.mlp.up_proj],
        )
        for layer in layers
    ]
    alone = [lm.lm_head] + [
        m for layer in layers for m in (layer.self_attn.o_proj, layer.mlp.down_proj)
    ]
    linears = alone + [m for pair in groups for group in pair for m in group]
    if not all(isinstance(m, RowLinear) and m.blocks is not None for m in linears):
        return None
    gemv = linears[0].gemv
    if not gemv.blocks_vectorised or any(m.bias is not None for m in linears):
        return None
    if any(len({m.blocks.format for m in group}) != 1 for pair in groups for group in pair):
        return None
    joined = [tuple(_join(group) for group in pair) for pair in groups]
    lm.decode_step = DecodeStep(lm, gemv, joined)
    return lm.decode_step


def _join(layers: list[RowLinear]) -> _Joined:
    first = layers[0].blocks
    data = torch.cat([layer.blocks.data for layer in layers])  # sum O, bytes
    start = 0
    for layer in layers:  # each layer's own blocks become a view of the joined ones
        end = start + layer.blocks.out_features
        layer.blocks = Blocks(first.format, data[start:end], first.in_features)
        start = end
    sizes = tuple(layer.blocks.out_features for layer in layers)
    return _Joined(Blocks(first.format, data, first.in_features), sizes)


def step_logits(
    lm: torch.nn.Module,
    input_ids: torch.Tensor,
    cache,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """One decode step: input_ids [B, 1], each row's next token -> logits [B, V]; through the
    LM's DecodeStep where it has one and B <= 8, else its own forward."""
    step = getattr(lm, "decode_step", None)
    rows, new = input_ids.shape
    on_cpu = input_ids.device.type == "cpu"
    if (
        step is not None
        and new == 1
        and rows <= HALF_ROWS
        and on_cpu
        and not torch.is_grad_enabled()
    ):
        return step(input_ids, cache, attention_mask, position_ids)
    scoped = {"attention_mask": attention_mask, "position_ids": position_ids}
    scoped = {name: value for name, value in scoped.items() if value is not None}
    output = lm(input_ids=input_ids, cache=cache, use_cache=True, **scoped)
    return output.logits[:, -1]
