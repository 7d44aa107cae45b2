"""CTranslate2 model.bin -> openai-whisper: dims and weights survive, broken files are refused."""

import io
import struct

import numpy as np
import pytest
import torch
from whisper.model import ModelDimensions, Whisper

from encoders.ct2_whisper import (
    ConversionError,
    dimensions_from_ct2,
    read_ct2_variables,
    whisper_state_dict,
)
from encoders.whisper_model import load_whisper
from tests.ct2_format import ct2_variables, model_bin, whisper_model_bin

ODD_DIMS = ModelDimensions(
    n_mels=128, n_audio_ctx=64, n_audio_state=24, n_audio_head=3, n_audio_layer=1,
    n_vocab=100, n_text_ctx=16, n_text_state=24, n_text_head=4, n_text_layer=3,
)  # fmt: skip  # nothing like a real size: the dims must come from the file


@pytest.fixture(scope="module")
def tiny_bin(whisper) -> bytes:
    return whisper_model_bin(whisper)


def odd_whisper() -> Whisper:
    torch.manual_seed(1)
    model = Whisper(ODD_DIMS)
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)  # torch.empty in Whisper
    return model.eval()


def convert(data: bytes) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    variables = read_ct2_variables(io.BytesIO(data))
    dims = dimensions_from_ct2(variables)
    return dims, whisper_state_dict(variables, dims)


@pytest.mark.parametrize("which", ["tiny", "odd"])
def test_round_trip_reproduces_dims_and_fp16_weights(which, whisper):
    model = whisper if which == "tiny" else odd_whisper()
    dims, state = convert(whisper_model_bin(model))
    assert dims == model.dims
    expected = model.state_dict()
    assert state.keys() == expected.keys()
    for name, tensor in state.items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, expected[name].half().float()), name  # exact after fp16


def test_converted_model_computes_like_the_original(whisper, tiny_bin):
    dims, state = convert(tiny_bin)
    converted = Whisper(dims).eval()
    converted.load_state_dict(state)  # strict: every parameter present, no extra
    mel = torch.randn(1, dims.n_mels, 200, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[50258, 50259, 50359, 50363]])  # sot, en, transcribe, notimestamps
    with torch.inference_mode():
        want = whisper.logits(tokens, whisper.embed_audio(torch.nn.functional.pad(mel, (0, 2800))))
        got = converted.logits(
            tokens, converted.embed_audio(torch.nn.functional.pad(mel, (0, 2800)))
        )
    torch.testing.assert_close(got, want, rtol=0.02, atol=0.02)


def test_alias_resolves_to_the_same_array(tiny_bin):
    variables = read_ct2_variables(io.BytesIO(tiny_bin))
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]


def test_fused_key_bias_is_dropped_and_query_value_biases_kept(whisper, tiny_bin):
    _, state = convert(tiny_bin)
    for prefix in ("encoder.blocks.0.attn", "decoder.blocks.1.attn", "decoder.blocks.0.cross_attn"):
        assert f"{prefix}.key.bias" not in state
        assert torch.equal(
            state[f"{prefix}.value.bias"],
            whisper.state_dict()[f"{prefix}.value.bias"].half().float(),
        )


def test_float32_file_converts_too(whisper):
    variables = {
        k: (v.astype(np.float32) if v.dtype == np.float16 else v)
        for k, v in ct2_variables(whisper).items()
    }
    _, state = convert(model_bin(variables))
    torch.testing.assert_close(
        state["decoder.ln.weight"], whisper.state_dict()["decoder.ln.weight"]
    )


def int8_variables(whisper) -> dict[str, np.ndarray]:
    """As CTranslate2's int8 quantization stores them: each 2-D weight as round(w * scale)
    with one scale per output row, scale = 127 / max |w| of the row."""
    variables = ct2_variables(whisper)
    for name in [n for n, v in variables.items() if n.endswith("/weight") and v.ndim == 2]:
        if name == "decoder/embeddings/weight":
            continue  # CTranslate2 keeps embeddings in float
        weight = variables[name].astype(np.float32)
        scale = 127.0 / np.maximum(np.abs(weight).max(axis=1), 1e-8)
        variables[name] = np.round(weight * scale[:, None]).astype(np.int8)
        variables[f"{name}_scale"] = scale.astype(np.float32)
    return variables


def test_int8_weights_are_dequantized_with_their_scales(whisper):
    _, state = convert(model_bin(int8_variables(whisper)))
    want = whisper.state_dict()["decoder.blocks.0.mlp.0.weight"]
    got = state["decoder.blocks.0.mlp.0.weight"]
    row_step = want.abs().amax(dim=1, keepdim=True) / 127  # one quantization step per row
    assert torch.all((got - want).abs() <= row_step / 2 + 1e-3)  # within half a step (+ fp16)
    assert got.abs().max() > 0.01  # not the raw int8 codes, not zeros
    assert (got - want).abs().max() < want.abs().max() / 50


def test_int8_weight_without_its_scale_is_refused(whisper):
    variables = int8_variables(whisper)
    del variables["decoder/layer_0/ffn/linear_0/weight_scale"]
    with pytest.raises(ConversionError, match="linear_0/weight_scale"):
        convert(model_bin(variables))


@pytest.mark.parametrize("version", [5, 7])
def test_wrong_format_version_raises(tiny_bin, version):
    data = struct.pack("<I", version) + tiny_bin[4:]
    with pytest.raises(ConversionError, match=f"version {version}; expected 6"):
        read_ct2_variables(io.BytesIO(data))


def test_other_spec_raises(whisper):
    data = model_bin(ct2_variables(whisper), spec="TransformerSpec")
    with pytest.raises(ConversionError, match="'TransformerSpec', not a WhisperSpec"):
        read_ct2_variables(io.BytesIO(data))


def test_unknown_dtype_raises(whisper):
    data = bytearray(model_bin({"encoder/num_heads": np.array(2, np.int16)}, aliases={}))
    dtype_at = 4 + 2 + len("WhisperSpec") + 1 + 4 + 4 + 2 + len("encoder/num_heads") + 1 + 1
    assert data[dtype_at] == 2  # int16
    data[dtype_at] = 9
    with pytest.raises(ConversionError, match="unsupported dtype id 9"):
        read_ct2_variables(io.BytesIO(bytes(data)))


def truncation_points(size: int) -> list[int]:
    """Every cut in the header and first variable, plus a spread through the body."""
    body = np.random.default_rng(0).integers(300, size - 200, 100).tolist()
    return list(range(300)) + body


def test_truncated_file_raises(tiny_bin):
    for cut in truncation_points(len(tiny_bin) - 100):  # the alias table is the last ~60 bytes
        with pytest.raises(ConversionError):  # "truncated", or a cut spec name that is no Whisper
            read_ct2_variables(io.BytesIO(tiny_bin[:cut]))


def test_file_truncated_in_the_alias_table_raises(tiny_bin):
    for cut in range(len(tiny_bin) - 100, len(tiny_bin)):
        with pytest.raises(ConversionError):
            read_ct2_variables(io.BytesIO(tiny_bin[:cut]))


def test_load_whisper_converts_a_ct2_directory_once(tmp_path, whisper, tiny_bin, monkeypatch):
    source = tmp_path / "whisper-ct2"
    source.mkdir()
    (source / "model.bin").write_bytes(tiny_bin)
    model, name = load_whisper(str(source), tmp_path / "cache")
    assert name == str(source) and model.dims == whisper.dims
    assert not any(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model.decoder.ln.weight, whisper.decoder.ln.weight.half().float())

    def no_second_conversion(*args):
        raise AssertionError("converted again although the cache holds the result")

    monkeypatch.setattr("encoders.whisper_model._convert", no_second_conversion)
    again, _ = load_whisper(str(source), tmp_path / "cache")
    assert torch.equal(again.encoder.conv1.weight, model.encoder.conv1.weight)


def test_replaced_model_bin_is_converted_again(tmp_path, tiny_bin):
    source = tmp_path / "whisper-ct2"
    source.mkdir()
    (source / "model.bin").write_bytes(tiny_bin)
    load_whisper(str(source), tmp_path / "cache")
    replacement = odd_whisper()
    (source / "model.bin").write_bytes(whisper_model_bin(replacement))
    model, _ = load_whisper(str(source), tmp_path / "cache")
    assert model.dims == replacement.dims


def test_failed_conversion_leaves_no_cache_entry(tmp_path, tiny_bin):
    source = tmp_path / "broken"
    source.mkdir()
    (source / "model.bin").write_bytes(tiny_bin[:1000])
    cache = tmp_path / "cache"
    with pytest.raises(ConversionError):
        load_whisper(str(source), cache)
    assert [p.name for p in (cache / "whisper-ct2").iterdir()] == []  # no half-written entry
