"""The adapter: saved and reloaded bit for bit, refused against other models, "auto" falls back."""

import json
import logging

import pytest
import torch

from fusion import bundle
from fusion.adapter import CONFIG_FILE, Adapter, AdapterConfig, AdapterMismatchError
from fusion.bundle import load_adapter
from tests.tiny import adapter_config, identities


@pytest.fixture(scope="module")
def fitting(clip_encoder, audio_encoder, lm):
    """(config, identities) of the session's tiny models."""
    return adapter_config(clip_encoder, audio_encoder), identities(clip_encoder, audio_encoder, lm)


def trained_adapter(config: AdapterConfig, ids: dict, seed: int = 5) -> Adapter:
    adapter = Adapter.untrained(config, ids, seed=seed)
    adapter.info.trained, adapter.info.metrics, adapter.info.notes = True, {"accuracy": 0.5}, "tiny"
    return adapter


def outputs(adapter: Adapter, config: AdapterConfig) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": adapter.projectors["image"](
            torch.randn(2, 5, config.image_dim, generator=generator)
        ),
        "audio": adapter.projectors["audio"](
            torch.randn(1, 9, config.audio_dim, generator=generator)
        ),
    }


def test_save_load_round_trip_gives_identical_outputs(tmp_path, fitting):
    config, ids = fitting
    adapter = trained_adapter(config, ids)
    adapter.save(tmp_path / "adapter")
    loaded = Adapter.load(tmp_path / "adapter", ids)
    assert loaded.config == config and loaded.info == adapter.info
    for kind, expected in outputs(adapter, config).items():
        assert torch.equal(outputs(loaded, config)[kind], expected), kind
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_checkpoint_is_json_and_safetensors(tmp_path, fitting):
    config, ids = fitting
    trained_adapter(config, ids).save(tmp_path)
    payload = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert payload["config"]["audio_stack"] == config.audio_stack
    assert payload["identities"] == ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter.json", "adapter.safetensors"]


@pytest.mark.parametrize("role", ["vision", "audio", "lm"])
def test_loading_against_another_model_names_the_role(tmp_path, fitting, role):
    config, ids = fitting
    trained_adapter(config, ids).save(tmp_path)
    other = {**ids, role: {"name": f"another {role}", "fingerprint": "0123456789abcdef"}}
    with pytest.raises(AdapterMismatchError) as raised:
        Adapter.load(tmp_path, other)
    message = str(raised.value)
    assert (
        f"trained against {role} " in message
        and f"the loaded {role} is 'another {role}'" in message
    )
    assert ids[role]["fingerprint"] in message and "0123456789abcdef" in message


def test_untrained_is_seeded_and_leaves_the_global_rng_alone(fitting):
    config, ids = fitting
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    first = Adapter.untrained(config, ids, seed=1)
    assert torch.equal(torch.rand(4), expected)
    second, third = Adapter.untrained(config, ids, seed=1), Adapter.untrained(config, ids, seed=2)
    for kind, tensor in outputs(first, config).items():
        assert torch.equal(outputs(second, config)[kind], tensor)
        assert not torch.equal(outputs(third, config)[kind], tensor)
    assert first.info.trained is False


def test_missing_adapter_directory_raises(tmp_path, fitting):
    with pytest.raises(FileNotFoundError, match="no adapter at"):
        Adapter.load(tmp_path / "nowhere", fitting[1])


def test_auto_without_a_shipped_adapter_is_untrained(tmp_path, fitting, monkeypatch):
    monkeypatch.setattr(bundle, "SHIPPED_ADAPTER", tmp_path / "absent")
    adapter = load_adapter(bundle.AUTO, *fitting)
    assert adapter.info.trained is False and adapter.config == fitting[0]


def test_auto_falls_back_when_the_shipped_adapter_does_not_fit(
    tmp_path, fitting, monkeypatch, caplog
):
    config, ids = fitting
    other = {**ids, "lm": {"name": "a bigger LM", "fingerprint": "ffffffffffffffff"}}
    trained_adapter(config, other).save(tmp_path)
    monkeypatch.setattr(bundle, "SHIPPED_ADAPTER", tmp_path)
    with caplog.at_level(logging.WARNING, logger="fusion.bundle"):
        adapter = load_adapter(bundle.AUTO, config, ids)
    assert adapter.info.trained is False
    assert "a bigger LM" in caplog.text  # says why the shipped one was not used


def test_auto_uses_the_shipped_adapter_when_it_fits(tmp_path, fitting, monkeypatch):
    config, ids = fitting
    trained_adapter(config, ids).save(tmp_path)
    monkeypatch.setattr(bundle, "SHIPPED_ADAPTER", tmp_path)
    assert load_adapter(bundle.AUTO, config, ids).info.trained is True


def test_explicit_directory_must_fit(tmp_path, fitting):
    config, ids = fitting
    trained_adapter(config, {**ids, "audio": {"name": "x", "fingerprint": "y"}}).save(tmp_path)
    with pytest.raises(AdapterMismatchError, match="audio"):
        load_adapter(str(tmp_path), config, ids)


def test_an_adapter_saved_when_the_cues_were_called_boundary_still_loads(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from fusion.adapter import CONFIG_FILE, WEIGHTS_FILE, Adapter, AdapterConfig

    adapter = Adapter.untrained(
        AdapterConfig(image_dim=4, audio_dim=4, lm_dim=4, audio_cues=True), {}
    )
    with torch.no_grad():
        adapter.audio_cues.copy_(torch.randn(2, 4))
    adapter.save(tmp_path)
    payload = json.loads((tmp_path / CONFIG_FILE).read_text())
    payload["config"]["audio_boundary"] = payload["config"].pop("audio_cues")
    (tmp_path / CONFIG_FILE).write_text(json.dumps(payload))
    weights = load_file(tmp_path / WEIGHTS_FILE)
    weights["audio_boundary"] = weights.pop("audio_cues")
    save_file(weights, tmp_path / WEIGHTS_FILE)
    loaded = Adapter.load(tmp_path, {})
    assert loaded.config.audio_cues and torch.equal(loaded.audio_cues, adapter.audio_cues)
