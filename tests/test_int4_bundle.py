"""The embedded LM on its GGUF's own 4-bit weights (`--dtype int4`), against the same weights
dequantized to float32 (how `--dtype fp32` loads them): the same next tokens and near-equal
logits; the photo and speech paths run on it."""

import pytest
import torch

from fusion.bundle import BundleSpec, load_model
from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.int4_linear import Int4Linear
from fusion.model import Chunk

pytestmark = pytest.mark.bundle

QUESTIONS = [
    "What is the capital of France?",
    "How do I boil an egg?",
    "Name three colours of the rainbow.",
]


@pytest.fixture(scope="module")
def models():
    return load_model(BundleSpec(dtype="fp32")), load_model(BundleSpec(dtype="int4"))


def test_int4_layers_replace_every_linear_layer_but_the_output_head(models):
    _, int4 = models
    layers = [m for m in int4.lm.modules() if isinstance(m, Int4Linear)]
    assert len(layers) == 7 * int4.lm.config.num_hidden_layers
    assert not isinstance(int4.lm.lm_head, Int4Linear)
    assert int4.adapter.info.trained  # the adapter fits: the LM's identity is its float weights


@torch.inference_mode()
def test_int4_logits_follow_the_dequantized_weights(models):
    fp32, int4 = models
    for question in QUESTIONS:
        ids = fp32.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
        expected, got = fp32.lm(ids).logits[0, -1], int4.lm(ids).logits[0, -1]
        assert got.argmax() == expected.argmax(), question
        assert torch.corrcoef(torch.stack([got, expected]))[0, 1] > 0.99


def test_int4_answers_a_photo_and_a_question(models):
    from encoders.image_io import load_image
    from tests.web_support import PHOTOS

    _, int4 = models
    options = GenerationOptions(max_new_tokens=12)
    events = list(int4.stream([user("What is the capital of France?")], options))
    assert "Paris" in "".join(e.text for e in events if isinstance(e, Chunk))
    photo = load_image(PHOTOS / "cat.jpg")
    events = list(int4.stream([user("What is in this picture?", photos=[photo])], options))
    assert "cat" in "".join(e.text for e in events if isinstance(e, Chunk)).lower()
