"""Encoders keep their token contract: the count they announce is the count they return."""

import numpy as np
import pytest
import torch
from whisper.audio import log_mel_spectrogram

from encoders.audio_io import MAX_SECONDS, SAMPLE_RATE
from encoders.errors import InputError
from encoders.fingerprint import fingerprint
from encoders.vision_models import load_by_order
from tests.tiny import CLIP_IMAGE_SIZE, CLIP_PATCH, photo, tiny_timm_encoder, tone


@pytest.fixture(params=["clip", "timm"])
def vision(request, clip_encoder, timm_encoder):
    return {"clip": clip_encoder, "timm": timm_encoder}[request.param]


def test_clip_tower_gives_one_token_per_patch(clip_encoder):
    assert clip_encoder.num_tokens == (CLIP_IMAGE_SIZE // CLIP_PATCH) ** 2  # class token dropped
    assert clip_encoder.dim == 32  # the transformer width, not the pooled output_dim (16)


def test_timm_tower_flattens_its_feature_map(timm_encoder):
    size = timm_encoder.tower.trunk.pretrained_cfg["input_size"][-1]
    with torch.inference_mode():
        feature_map = timm_encoder.tower.trunk.forward_features(
            torch.zeros(1, 3, size, size)
        )  # 1, D, h, w
    _, width, h, w = feature_map.shape
    assert (timm_encoder.num_tokens, timm_encoder.dim) == (h * w, width)


@pytest.mark.parametrize("sizes", [[(64, 48)], [(64, 48), (20, 90), (300, 301)]])
def test_encode_returns_announced_tokens_for_any_image_size(vision, sizes):
    images = [photo(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    tokens = vision.encode(images)
    assert tokens.shape == (len(images), vision.num_tokens, vision.dim)
    assert torch.isfinite(tokens).all()


def test_batch_rows_equal_single_images(vision):
    images = [photo(seed=1), photo(seed=2)]
    batch = vision.encode(images)
    single = torch.cat([vision.encode([image]) for image in images])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])  # different photos, different tokens


def test_timm_vit_trunk_drops_prefix_tokens():
    encoder = tiny_timm_encoder("test_vit")
    trunk = encoder.tower.trunk
    grid = trunk.patch_embed.grid_size
    assert trunk.num_prefix_tokens >= 1
    assert encoder.num_tokens == grid[0] * grid[1]
    assert encoder.encode([photo()]).shape == (1, grid[0] * grid[1], trunk.embed_dim)


def test_timm_tower_overrides_rebuild_the_trunk():
    from torchvision import transforms

    from encoders.vision import VisionEncoder
    from encoders.vision_models import timm_tower

    tower = timm_tower("test_vit", img_size=64)  # 64 px / patch 16: a 4 x 4 grid
    preprocess = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    encoder = VisionEncoder(tower, preprocess, "test_vit@64", image_size=64)
    assert encoder.num_tokens == 16
    assert encoder.encode([photo(), photo(seed=1)]).shape == (2, 16, encoder.dim)


def test_encode_without_images_raises(clip_encoder):
    with pytest.raises(ValueError, match="at least one image"):
        clip_encoder.encode([])


def test_vision_tower_is_frozen(vision):
    assert not any(p.requires_grad for p in vision.parameters())
    assert not vision.tower.training


SECONDS = [0.1, 0.1 + 1 / SAMPLE_RATE, 0.37, 1.0, 1.01, 2.5, 7.77, 29.0]


@pytest.mark.parametrize("seconds", SECONDS)
def test_audio_num_tokens_matches_encoding(audio_encoder, seconds):
    waveform = tone(seconds)
    frames = audio_encoder.mel(waveform).shape[-1]  # F mel frames, odd or even
    features = audio_encoder.encode(waveform)
    assert features.shape == (1, audio_encoder.num_tokens(len(waveform)), audio_encoder.dim)
    assert features.shape[1] == (frames + 1) // 2


def test_audio_num_tokens_covers_odd_and_even_frame_counts(audio_encoder):
    for samples in range(1600, 1600 + 2 * 160 + 1, 17):  # F even and odd, every remainder
        assert audio_encoder.encode(tone(samples / SAMPLE_RATE)).shape[
            1
        ] == audio_encoder.num_tokens(samples)


@pytest.mark.parametrize("seconds", [29.75, MAX_SECONDS])
def test_every_accepted_clip_encodes(audio_encoder, seconds):
    waveform = tone(seconds)
    assert audio_encoder.encode(waveform).shape[1] == audio_encoder.num_tokens(len(waveform))
    assert audio_encoder.num_tokens(len(waveform)) <= audio_encoder.max_tokens


def test_audio_over_thirty_seconds_raises(audio_encoder):
    with pytest.raises(InputError, match="the limit is 30 s"):
        audio_encoder.encode(tone(MAX_SECONDS + 0.5))
    mel = torch.zeros(1, audio_encoder.n_mels, 3002)  # 1501 frames: past the positional table
    with pytest.raises(ValueError, match="1501 frames"):
        audio_encoder(mel)


def test_full_window_equals_whisper_encoder(audio_encoder):
    """On a full 30 s window (3000 mel frames) nothing is sliced: Whisper's own encoder output."""
    mel = log_mel_spectrogram(torch.from_numpy(tone(MAX_SECONDS)), n_mels=audio_encoder.n_mels)[
        None
    ]
    assert mel.shape[-1] == 2 * audio_encoder.max_tokens
    with torch.inference_mode():
        expected = audio_encoder.whisper.encoder(mel)
    torch.testing.assert_close(audio_encoder(mel), expected)


def test_audio_batch_rows_equal_single_clips(audio_encoder):
    mels = torch.cat([audio_encoder.mel(tone(1.0, f)) for f in (300.0, 900.0)])  # 2, M, F
    batch = audio_encoder(mels)
    for row, mel in zip(batch, mels):
        torch.testing.assert_close(row, audio_encoder(mel[None])[0], rtol=1e-4, atol=1e-5)


def test_fingerprint_tells_weights_apart():
    first, second = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    assert fingerprint(first) != fingerprint(second)
    second.load_state_dict(first.state_dict())
    assert fingerprint(first) == fingerprint(second)
    assert len(fingerprint(first)) == 16


def test_load_by_order_renames_and_ignores_trailing_head():
    target = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    source = torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 7)
    )
    torch.nn.init.normal_(source[1].weight)
    renamed = {f"backbone.part{i}": t for i, t in enumerate(source.state_dict().values())}
    load_by_order(target, renamed)
    for got, want in zip(target.state_dict().values(), source.state_dict().values()):
        assert torch.equal(got, want)


def test_load_by_order_names_the_shape_mismatch():
    target = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    state = {
        "a.w": torch.zeros(3, 4),
        "a.b": torch.zeros(3),
        "b.w": torch.zeros(5, 3),
        "b.b": torch.zeros(2),
    }
    with pytest.raises(ValueError, match=r"b\.w \(5, 3\) does not fit 1\.weight \(2, 3\)"):
        load_by_order(target, state)


def test_load_by_order_refuses_too_few_tensors():
    target = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="1 tensors; the model needs 2"):
        load_by_order(target, {"w": torch.zeros(3, 4)})


def test_audio_encoder_input_is_checked_first(audio_encoder):
    with pytest.raises(InputError, match="silent"):
        audio_encoder.encode(np.zeros(SAMPLE_RATE, dtype=np.float32))
