"""Writing a Whisper as CTranslate2 would: `model.bin`, format version 6, float16 weights.

The inverse of encoders/ct2_whisper.py, written from CTranslate2's layout rather than from
that reader: attention projections fused (self-attention q|k|v with a zero key bias,
cross-attention k|v), head counts as int16 scalars, the output projection stored once as an
alias of the token embedding.
"""

import struct

import numpy as np
from whisper.model import Whisper

VERSION = 6
_DTYPE_IDS = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
              np.dtype(np.float16): 4}  # fmt: skip


def ct2_variables(model: Whisper) -> dict[str, np.ndarray]:
    """Whisper -> {CTranslate2 name: array}, weights in float16."""
    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def half(array: np.ndarray) -> np.ndarray:
        return array.astype(np.float16)

    def linear(target: str, source: str) -> None:
        out[f"{target}/weight"] = half(state[f"{source}.weight"])
        if f"{source}.bias" in state:
            out[f"{target}/bias"] = half(state[f"{source}.bias"])

    def norm(target: str, source: str) -> None:
        out[f"{target}/gamma"] = half(state[f"{source}.weight"])
        out[f"{target}/beta"] = half(state[f"{source}.bias"])

    def fused(target: str, sources: list[str]) -> None:
        weights, biases = [], []
        for source in sources:
            weights.append(state[f"{source}.weight"])
            bias = state.get(f"{source}.bias")  # Whisper's key projections have none
            biases.append(bias if bias is not None else np.zeros(weights[-1].shape[0], np.float32))
        out[f"{target}/weight"] = half(np.concatenate(weights))
        out[f"{target}/bias"] = half(np.concatenate(biases))

    def ffn(target: str, source: str) -> None:
        linear(f"{target}/ffn/linear_0", f"{source}.mlp.0")
        linear(f"{target}/ffn/linear_1", f"{source}.mlp.2")
        norm(f"{target}/ffn/layer_norm", f"{source}.mlp_ln")

    dims = model.dims
    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    out["encoder/position_encodings/encodings"] = half(state["encoder.positional_embedding"])
    out["encoder/num_heads"] = np.array(dims.n_audio_head, dtype=np.int16)
    for i in range(dims.n_audio_layer):
        src, dst = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        fused(
            f"{dst}/self_attention/linear_0", [f"{src}.attn.{p}" for p in ("query", "key", "value")]
        )
        linear(f"{dst}/self_attention/linear_1", f"{src}.attn.out")
        norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
        ffn(dst, src)
    norm("encoder/layer_norm", "encoder.ln_post")

    out["decoder/embeddings/weight"] = half(state["decoder.token_embedding.weight"])
    out["decoder/position_encodings/encodings"] = half(state["decoder.positional_embedding"])
    out["decoder/num_heads"] = np.array(dims.n_text_head, dtype=np.int16)
    out["decoder/scale_embeddings"] = np.array(0, dtype=np.int8)  # other spec flags: ignored
    for i in range(dims.n_text_layer):
        src, dst = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        fused(
            f"{dst}/self_attention/linear_0", [f"{src}.attn.{p}" for p in ("query", "key", "value")]
        )
        linear(f"{dst}/self_attention/linear_1", f"{src}.attn.out")
        norm(f"{dst}/self_attention/layer_norm", f"{src}.attn_ln")
        linear(f"{dst}/attention/linear_0", f"{src}.cross_attn.query")
        fused(f"{dst}/attention/linear_1", [f"{src}.cross_attn.{p}" for p in ("key", "value")])
        linear(f"{dst}/attention/linear_2", f"{src}.cross_attn.out")
        norm(f"{dst}/attention/layer_norm", f"{src}.cross_attn_ln")
        ffn(dst, src)
    norm("decoder/layer_norm", "decoder.ln")
    return out


def model_bin(
    variables: dict[str, np.ndarray],
    aliases: dict[str, str] | None = None,
    version: int = VERSION,
    spec: str = "WhisperSpec",
) -> bytes:
    """Serialise variables (+ aliases {alias: target}) in CTranslate2's model.bin layout."""
    if aliases is None:
        aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    parts = [
        struct.pack("<I", version),
        _name(spec),
        struct.pack("<I", 3),
    ]  # version, spec, revision
    parts.append(struct.pack("<I", len(variables)))
    for name, array in variables.items():
        array = np.asarray(array)  # scalars stay rank 0; tobytes() writes C order
        parts += [
            _name(name),
            struct.pack("<B", array.ndim),
            struct.pack(f"<{array.ndim}I", *array.shape),
        ]
        parts += [
            struct.pack("<B", _DTYPE_IDS[array.dtype]),
            struct.pack("<I", array.nbytes),
            array.tobytes(),
        ]
    parts.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        parts += [_name(alias), _name(target)]
    return b"".join(parts)


def whisper_model_bin(model: Whisper) -> bytes:
    return model_bin(ct2_variables(model))


def _name(text: str) -> bytes:
    data = text.encode() + b"\0"  # CTranslate2 writes names NUL-terminated, length included
    return struct.pack("<H", len(data)) + data
