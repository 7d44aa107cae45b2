"""fusion.bundle.load_model from local checkpoints: the tiny models saved as a user would have them."""

import json

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from encoders.errors import InputError
from encoders.whisper_model import load_whisper
from fusion.bundle import BundleSpec, load_model
from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.language_model import load_language_model
from fusion.model import Stats
from tests.ct2_format import whisper_model_bin
from tests.tiny import photo, tiny_lm, tiny_tokenizer, tone

TINY_CLIP = {
    "model_cfg": {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 2,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
            "mlp_ratio": 2,
        },
        "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
    }
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tokenizer, lm, whisper):
    """A transformers LM directory, an open_clip local-dir and a CTranslate2 Whisper directory."""
    root = tmp_path_factory.mktemp("checkpoints")
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    (root / "clip").mkdir()
    (root / "clip" / "open_clip_config.json").write_text(json.dumps(TINY_CLIP))
    torch.manual_seed(0)
    clip = open_clip.create_model(f"local-dir:{root / 'clip'}")  # random: weights saved for reuse
    save_file(clip.state_dict(), root / "clip" / "open_clip_model.safetensors")
    (root / "whisper").mkdir()
    (root / "whisper" / "model.bin").write_bytes(whisper_model_bin(whisper))
    return root


def spec(root, **overrides) -> BundleSpec:
    fields = {
        "lm": str(root / "lm"),
        "vision": f"local-dir:{root / 'clip'}",
        "audio": str(root / "whisper"),
        "cache_dir": root / "cache",
    }
    return BundleSpec(**{**fields, **overrides})


def test_load_model_assembles_and_answers(checkpoints):
    model = load_model(spec(checkpoints))
    assert model.describe()["adapter"]["trained"] is False  # nothing shipped fits tiny models
    assert model.adapter.config.image_dim == model.vision.dim == 32
    assert model.adapter.config.audio_dim == model.audio.dim
    assert model.adapter.config.lm_dim == model.lm.get_input_embeddings().embedding_dim
    events = list(
        model.stream(
            [user("what?", photos=[photo()], speech=tone(0.6))], GenerationOptions(max_new_tokens=3)
        )
    )
    stats = events[-1]
    assert isinstance(stats, Stats) and stats.new_tokens == 3
    assert (
        stats.prompt_tokens["image"] == model.vision.num_tokens == 16
        and stats.prompt_tokens["audio"] > 0
    )


def test_an_adapter_trained_on_these_models_loads_on_the_next_start(checkpoints, tmp_path):
    first = load_model(spec(checkpoints))
    first.adapter.info.trained = True
    first.adapter.save(tmp_path / "adapter")
    second = load_model(
        spec(checkpoints, adapter=str(tmp_path / "adapter"))
    )  # identities are stable
    assert second.adapter.info.trained is True
    features = torch.randn(1, 7, second.audio.dim)
    assert torch.equal(
        second.adapter.projectors["audio"](features), first.adapter.projectors["audio"](features)
    )


def test_language_model_without_chat_template_is_refused(tmp_path):
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    tiny_lm(len(tokenizer), tokenizer.eos_token_id).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no chat template"):
        load_language_model(str(tmp_path), tmp_path / "cache")


def test_unknown_whisper_spec_lists_the_choices(tmp_path):
    with pytest.raises(InputError, match="unknown Whisper model 'no-such-size'.*embedded"):
        load_whisper("no-such-size", tmp_path)


def test_unknown_vision_model_is_an_input_error():
    from encoders.vision_models import load_vision_encoder

    with pytest.raises(InputError, match="could not load open_clip model 'No-Such-ViT'"):
        load_vision_encoder("No-Such-ViT")
    with pytest.raises(InputError, match="expected MODEL"):
        load_vision_encoder(":openai")


def test_packaged_path_says_how_to_install(tmp_path):
    from encoders.packaged import packaged_path

    with pytest.raises(
        FileNotFoundError, match="no-such-weights-package.*requirements/weights.txt"
    ):
        packaged_path("no_such_weights_package", "model.bin")
    with pytest.raises(FileNotFoundError, match="missing.bin is missing from the package encoders"):
        packaged_path("encoders", "missing.bin")


def test_int4_needs_the_embedded_gguf(checkpoints):
    from encoders.errors import InputError

    with pytest.raises(InputError, match="int4 weights come from the embedded LM's GGUF"):
        load_model(spec(checkpoints, dtype="int4"))
    with pytest.raises(InputError, match="fp32 or int4"):
        load_model(spec(checkpoints, dtype="fp16"))


def test_the_cli_offers_every_dtype_the_bundle_loads():
    from app import cli
    from fusion.bundle import DTYPES

    for dtype in DTYPES:
        args = cli.build_parser().parse_args(["ask", "--dtype", dtype, "hello"])
        assert cli.bundle_spec(args).dtype == dtype
