"""Weights kept as int8 rows in a saved adapter: each within half a step of its value, only
the matrices asked for, and the shipped (float16) adapter file smaller for it."""

import pytest
import torch
from safetensors.torch import load_file

from fusion import int8_rows
from fusion.adapter import INT8_STORED, WEIGHTS_FILE, Adapter
from fusion.int8_rows import SCALE_SUFFIX, from_int8_rows, to_int8_rows
from tests.tiny import adapter_config, identities


def test_each_weight_comes_back_within_half_a_step_of_its_row():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(300, 400, generator=generator) * torch.logspace(-3, 1, 300)[:, None]
    weight[7] = 0.0  # a row of zeros stays zeros (no division by zero)
    stored = to_int8_rows({"a.weight": weight}, ("a.",))
    assert stored["a.weight"].dtype == torch.int8 and stored["a.weight"].shape == (300, 400)
    step = stored["a.weight" + SCALE_SUFFIX]  # R
    back = from_int8_rows(stored)["a.weight"]
    assert set(from_int8_rows(stored)) == {"a.weight"}
    assert torch.all((back - weight).abs() <= step[:, None] / 2 + 1e-6 * weight.abs())
    assert torch.all(back[7] == 0)
    assert torch.allclose(back.abs().amax(1), weight.abs().amax(1), rtol=1e-6)  # rows' largest


def test_only_large_matrices_under_the_prefixes_are_stored_as_int8():
    tensors = {
        "keep.weight": torch.randn(300, 300),  # other prefix
        "q.weight": torch.randn(300, 300),
        "q.bias": torch.randn(300),  # not a matrix
        "q.small": torch.randn(10, 10),  # below MIN_ELEMENTS
    }
    stored = to_int8_rows(tensors, ("q.",))
    assert {n for n, t in stored.items() if t.dtype == torch.int8} == {"q.weight"}
    for name in ("keep.weight", "q.bias", "q.small"):
        assert stored[name] is tensors[name]


def test_int8_without_its_scales_is_refused():
    with pytest.raises(ValueError, match="row scales"):
        from_int8_rows({"a.weight": torch.zeros(2, 2, dtype=torch.int8)})


def test_a_shipped_adapter_keeps_its_audio_projector_as_int8_rows(
    tmp_path, clip_encoder, audio_encoder, lm, monkeypatch
):
    monkeypatch.setattr(int8_rows, "MIN_ELEMENTS", 1)  # the tiny model's matrices are small
    config = adapter_config(clip_encoder, audio_encoder)
    ids = identities(clip_encoder, audio_encoder, lm)
    adapter = Adapter.untrained(config, ids, seed=3)
    adapter.save(tmp_path / "shipped", dtype=torch.float16)
    adapter.save(tmp_path / "checkpoint")  # float32: no int8, exact
    stored = load_file(tmp_path / "shipped" / WEIGHTS_FILE)
    int8 = {n for n, t in stored.items() if t.dtype == torch.int8}
    assert int8 and all(n.startswith(INT8_STORED) for n in int8)
    assert not any(
        t.dtype == torch.int8 for t in load_file(tmp_path / "checkpoint" / WEIGHTS_FILE).values()
    )
    shipped = Adapter.load(tmp_path / "shipped", ids)
    features = torch.randn(1, 9, config.audio_dim, generator=torch.Generator().manual_seed(1))
    expected = adapter.projectors["audio"](features)
    got = shipped.projectors["audio"](features)
    assert torch.allclose(got, expected, rtol=0.05, atol=0.05 * expected.abs().max().item())
    assert not torch.equal(got, expected)  # it was really stored in int8
    image = torch.randn(1, 3, config.image_dim)
    assert torch.allclose(  # the image projector: float16, as before
        shipped.projectors["image"](image), adapter.projectors["image"](image), atol=1e-2
    )
