"""CTranslate2 Whisper checkpoints (`model.bin`) -> openai-whisper state dicts.

The embedded speech weights ship in CTranslate2's format. Its `model.bin` is a flat list of
named tensors (format version 6): a header, then for each variable its name, shape, dtype
and raw bytes, then aliases. The names map one to one onto openai-whisper's `Whisper`
module, except that CTranslate2 fuses attention projections: self-attention q|k|v into one
linear, cross-attention k|v into one.
"""

import re
import struct
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
import torch
from whisper.model import ModelDimensions

SUPPORTED_VERSION = 6
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ConversionError(RuntimeError):
    """The file is not a CTranslate2 Whisper checkpoint this converter understands."""


def read_ct2_variables(stream: BinaryIO) -> dict[str, np.ndarray]:
    """Parse a CTranslate2 model.bin -> {name: array}; aliases resolve to the same array."""

    def unpack(fmt: str):
        size = struct.calcsize("<" + fmt)
        chunk = stream.read(size)
        if len(chunk) != size:
            raise ConversionError("model.bin ends early: the file is truncated")
        return struct.unpack("<" + fmt, chunk)

    def read_name() -> str:
        (length,) = unpack("H")
        raw = stream.read(length)
        if len(raw) != length or not raw.endswith(b"\0"):
            raise ConversionError("model.bin ends inside a name: the file is truncated")
        return raw[:-1].decode()

    (version,) = unpack("I")
    if version != SUPPORTED_VERSION:
        raise ConversionError(f"model.bin format version {version}; expected {SUPPORTED_VERSION}")
    spec = read_name()
    if spec != "WhisperSpec":
        raise ConversionError(f"model.bin holds a {spec!r}, not a WhisperSpec")
    unpack("I")  # spec revision
    (count,) = unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = read_name()
        (rank,) = unpack("B")
        shape = unpack(f"{rank}I") if rank else ()
        (dtype_id,) = unpack("B")
        (num_bytes,) = unpack("I")
        if dtype_id not in _DTYPES:
            raise ConversionError(f"variable {name} has unsupported dtype id {dtype_id}")
        raw = stream.read(num_bytes)
        if len(raw) != num_bytes:
            raise ConversionError(f"model.bin ends inside variable {name}: the file is truncated")
        variables[name] = np.frombuffer(raw, dtype=_DTYPES[dtype_id]).reshape(shape)
    (alias_count,) = unpack("I")
    for _ in range(alias_count):
        alias, target = read_name(), read_name()
        if target not in variables:
            raise ConversionError(f"model.bin aliases {alias} to a missing variable {target}")
        variables[alias] = variables[target]
    return variables


def dimensions_from_ct2(variables: dict[str, np.ndarray]) -> ModelDimensions:
    """Derive openai-whisper's ModelDimensions from the tensor shapes and head counts."""
    n_audio_ctx, n_audio_state = variables["encoder/position_encodings/encodings"].shape
    n_vocab, n_text_state = variables["decoder/embeddings/weight"].shape
    return ModelDimensions(
        n_mels=variables["encoder/conv1/weight"].shape[1],
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_audio_state,
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=_count_layers(variables, "encoder"),
        n_vocab=n_vocab,
        n_text_ctx=variables["decoder/position_encodings/encodings"].shape[0],
        n_text_state=n_text_state,
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=_count_layers(variables, "decoder"),
    )


def whisper_state_dict(
    variables: dict[str, np.ndarray], dims: ModelDimensions
) -> dict[str, torch.Tensor]:
    """CTranslate2 variables -> openai-whisper `Whisper` state dict (float32)."""
    variables = dequantized(variables)
    state: dict[str, torch.Tensor] = {}

    def put(name: str, array: np.ndarray) -> None:
        state[name] = torch.from_numpy(np.array(array, dtype=np.float32))

    def linear(target: str, source: str) -> None:
        put(f"{target}.weight", variables[f"{source}/weight"])
        if f"{source}/bias" in variables:
            put(f"{target}.bias", variables[f"{source}/bias"])

    def norm(target: str, source: str) -> None:
        put(f"{target}.weight", variables[f"{source}/gamma"])
        put(f"{target}.bias", variables[f"{source}/beta"])

    def split(source: str, targets: Iterable[str], width: int, bias: bool = True) -> None:
        weights = np.split(variables[f"{source}/weight"], len(list(targets)), axis=0)
        biases = np.split(variables[f"{source}/bias"], len(weights), axis=0)
        for target, weight, part_bias in zip(targets, weights, biases, strict=True):
            assert weight.shape[0] == width, (source, weight.shape, width)
            put(f"{target}.weight", weight)
            if not target.endswith(".key"):  # Whisper's key projections have no bias
                put(f"{target}.bias", part_bias)

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", variables["encoder/position_encodings/encodings"])
    for i in range(dims.n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        attn = [f"{dst}.attn.{p}" for p in ("query", "key", "value")]
        split(f"{src}/self_attention/linear_0", attn, dims.n_audio_state)
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    norm("encoder.ln_post", "encoder/layer_norm")

    put("decoder.token_embedding.weight", variables["decoder/embeddings/weight"])
    put("decoder.positional_embedding", variables["decoder/position_encodings/encodings"])
    for i in range(dims.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        attn = [f"{dst}.attn.{p}" for p in ("query", "key", "value")]
        split(f"{src}/self_attention/linear_0", attn, dims.n_text_state)
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        cross = [f"{dst}.cross_attn.{p}" for p in ("key", "value")]
        split(f"{src}/attention/linear_1", cross, dims.n_text_state)
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    return state


def dequantized(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Integer weights (CTranslate2's int8 / int16 quantization) back to float32.

    CTranslate2 stores a quantized `.../weight` [O, I] as round(w * scale) beside its
    `.../weight_scale` (one scale per output row [O], or one for all []), so w = q / scale.
    A quantized weight without its scale cannot be read and is refused.
    """
    out = dict(variables)
    for name, array in variables.items():
        if not name.endswith("/weight") or array.dtype not in (np.int8, np.int16):
            continue
        scale = variables.get(f"{name}_scale")
        if scale is None:
            raise ConversionError(f"{name} is {array.dtype} but model.bin has no {name}_scale")
        scale = np.asarray(scale, dtype=np.float32)
        divisor = scale.reshape(-1, *([1] * (array.ndim - 1))) if scale.ndim else scale
        out[name] = array.astype(np.float32) / divisor
    return out


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    pattern = re.compile(rf"{stack}/layer_(\d+)/")
    return len({match.group(1) for name in variables if (match := pattern.match(name))})
