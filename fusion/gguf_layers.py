"""Which GGUF tensor is which layer of a llama-style transformers LM, and its blocks as stored.

A GGUF file written by llama.cpp's converter names a layer's weight 'blk.3.attn_q.weight'
(transformers: 'model.layers.3.self_attn.q_proj'), lists its dimensions innermost first, and
stores the rows of q_proj and k_proj in the rotary order llama.cpp uses, which transformers
undoes on load. The embedded SmolLM2 holds its 210 linear layers in Q4_1 and its token
embedding, which is also its output head, in Q8_0.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.cache import cached_dir
from encoders.gemv import BLOCK_BYTES, GROUP, Blocks

BLOCKS_FILE = "blocks.safetensors"  # inside the cache entry gguf_blocks is given

GGUF_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}  # fmt: skip


def module_name(gguf_name: str) -> str | None:
    """'blk.3.attn_q.weight' -> 'model.layers.3.self_attn.q_proj'; None for other tensors."""
    parts = gguf_name.split(".")
    if len(parts) != 4 or parts[0] != "blk" or parts[3] != "weight" or parts[2] not in GGUF_NAMES:
        return None
    return f"model.layers.{parts[1]}.{GGUF_NAMES[parts[2]]}"


def unpermute(rows: torch.Tensor, heads: int) -> torch.Tensor:
    """Undo llama.cpp's rotary row order within each head (as transformers does on load)."""
    half = rows.shape[0] // heads // 2
    return rows.reshape(heads, half, 2, *rows.shape[1:]).transpose(1, 2).reshape(rows.shape)


def rotary_heads(lm: nn.Module) -> dict[str, int]:
    """The layers whose rows unpermute() reorders, with their head counts."""
    config = lm.config
    return {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}


def gguf_blocks(lm: nn.Module, gguf_file: Path, cache_entry: Path) -> dict[str, Blocks]:
    """{module name: its weight as the file's blocks} for each linear layer of `lm` that
    `gguf_file` holds in Q4_1 or Q8_0, rows in transformers' order; the output head too when
    it is the token embedding (tied) and the file has no head of its own.

    gguf-py's reader takes ~3 s to parse the file's metadata (its 49k-token vocabulary), so
    the blocks are written once into the cache entry `cache_entry` (safetensors, the size of
    the blocks: ~96 MB for the embedded LM) and read from it on later calls (~15 ms)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    def write(out: Path) -> None:
        found = _read_blocks(lm, gguf_file)
        formats = {name: blocks.format for name, blocks in found.items()}
        tensors = {name: blocks.data for name, blocks in found.items()}
        save_file(tensors, out / BLOCKS_FILE, metadata={"formats": json.dumps(formats)})

    path = cached_dir(cache_entry, write) / BLOCKS_FILE
    with safe_open(path, framework="pt") as stored:
        formats = json.loads(stored.metadata()["formats"])
        found = {}
        for name, format in formats.items():
            data = stored.get_tensor(name)  # O, I/32*bytes
            found[name] = Blocks(format, data, data.shape[1] // BLOCK_BYTES[format] * GROUP)
    return found


def _read_blocks(lm: nn.Module, gguf_file: Path) -> dict[str, Blocks]:
    import gguf

    kinds = {
        gguf.GGMLQuantizationType.Q4_1: "q4_1",
        gguf.GGMLQuantizationType.Q8_0: "q8_0",
    }
    tensors = gguf.GGUFReader(gguf_file).tensors
    tied = getattr(lm.config, "tie_word_embeddings", False) and not any(
        t.name == "output.weight" for t in tensors
    )
    heads = rotary_heads(lm)
    found = {}
    for tensor in tensors:
        name = (
            "lm_head" if tied and tensor.name == "token_embd.weight" else module_name(tensor.name)
        )
        if name is None or tensor.tensor_type not in kinds:
            continue
        data = torch.tensor(np.asarray(tensor.data))  # O, I/32*bytes, a copy of the file's
        child = name.rpartition(".")[2]
        if child in heads:
            data = unpermute(data, heads[child]).contiguous()
        format = kinds[tensor.tensor_type]
        found[name] = Blocks(format, data, data.shape[1] // BLOCK_BYTES[format] * GROUP)
    return found
