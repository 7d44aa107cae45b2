"""The vision labeller (encoders/vision_labels.py) and its words after a photo's tokens."""

import dataclasses

import pytest
import torch

from encoders.vision_labels import ImageLabeller, with_article
from fusion.adapter import Adapter
from fusion.conversation import user
from tests.tiny import photo


def labeller_for(dim: int, names: list[str], favourite: int) -> ImageLabeller:
    head = torch.nn.Linear(dim, len(names))
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[favourite] = 5.0  # whatever the tokens, this class wins
    return ImageLabeller(head, names)


def test_labeller_ranks_classes_by_the_head_over_the_mean_token():
    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    labeller = ImageLabeller(head, ["owl", "tabby cat", "egg"])
    tokens = torch.tensor([[[0.0, 4.0], [2.0, 0.0]]])  # mean [1, 2]: class 1, then 0, then 2
    assert labeller.top(tokens, 3).tolist() == [[1, 0, 2]]
    assert labeller.phrase(tokens) == "a tabby cat"
    assert with_article("owl") == "an owl" and with_article("Egg") == "an Egg"


def test_labeller_refuses_names_that_do_not_fit_the_head():
    with pytest.raises(ValueError, match="3 classes but 2 names"):
        ImageLabeller(torch.nn.Linear(4, 3), ["a", "b"])


def test_the_naming_sentence_surrounds_the_photo_tokens_only_when_the_adapter_reads_labels(
    model,
):
    conversation = [user("What is this?", photos=[photo(seed=2)])]
    model.encode_media(conversation)
    plain_counts = model.build_inputs(conversation).prompt_tokens
    saved_adapter, saved_labeller = model.adapter, model.vision.labeller
    try:
        model.vision.labeller = labeller_for(model.vision.dim, ["owl", "tabby cat"], 1)
        assert model.build_inputs(conversation).prompt_tokens == plain_counts  # not read
        config = dataclasses.replace(saved_adapter.config, image_label=True)
        model.adapter = Adapter(config, saved_adapter.info)
        model.adapter.load_state_dict(saved_adapter.state_dict())
        model.adapter.eval().requires_grad_(False)
        inputs = model.build_inputs(conversation)
        words = model.tokenizer.encode("This is a tabby cat.", add_special_tokens=False)
        assert inputs.prompt_tokens["image"] == plain_counts["image"] + 2 * len(words)
        embed = model.lm.get_input_embeddings()
        rows = embed(torch.tensor(words))  # W, D
        found = [
            i
            for i in range(inputs.embeddings.shape[1] - len(words) + 1)
            if torch.equal(inputs.embeddings[0, i : i + len(words)], rows)
        ]
        # the sentence's own token embeddings, before and after the photo's tokens
        assert len(found) == 2 and found[1] - found[0] == len(words) + plain_counts["image"]
    finally:
        model.adapter, model.vision.labeller = saved_adapter, saved_labeller
