"""The adapter's name head: trained on named drawings, says "perhaps" when unsure, saved with
the adapter; emoji stay out of every training source."""

import torch

from fusion.adapter import Adapter, AdapterConfig
from fusion.name_head import NameHead
from fusion.training import name_data, named_images, vision_data
from fusion.training.name_data import NameSet, name_words
from fusion.training.train_names import NameTraining, train_name_head


def separable_set(width=16, per_name=40, names=("cat", "dog", "boat")) -> NameSet:
    """Mean tokens clustered by name: a head must learn to tell them apart."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(len(names), width, generator=generator) * 3
    features, labels, held_out = [], [], []
    for index in range(len(names)):
        for k in range(per_name):
            features.append(centres[index] + torch.randn(width, generator=generator))
            labels.append((index,))
            held_out.append(k % 5 == 0)
    return NameSet(torch.stack(features).half(), labels, held_out, list(names))


def test_the_head_learns_names_from_raw_tokens():
    data = separable_set()
    head, figures = train_name_head(data, NameTraining(max_epochs=30, batch_size=16))
    assert figures["held_out_top1_by_name"] > 0.9
    tokens = data.features[:1].float()[:, None, :].repeat(1, 4, 1)  # 1, N, C: mean is the row
    assert head.best(tokens)[0] == "cat"  # normalisation folded in: raw tokens go straight in


def test_an_unsure_name_is_said_with_perhaps():
    head = NameHead(4, ["cat", "owl"], sure_above=0.9)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([0.2, 0.0]))  # cat, but only just
    tokens = torch.zeros(1, 3, 4)
    assert head.phrase(tokens) == "perhaps a cat"
    head.sure_above = 0.5
    assert head.phrase(tokens) == "a cat"
    head.names = ["owl", "cat"]
    assert head.phrase(tokens) == "an owl"


def test_the_head_is_saved_and_loaded_with_the_adapter(tmp_path):
    config = AdapterConfig(image_dim=8, audio_dim=8, lm_dim=8, image_label=True,
                           image_names=["cat", "dog"], image_names_sure_above=0.4)  # fmt: skip
    adapter = Adapter.untrained(config, {})
    adapter.save(tmp_path)
    loaded = Adapter.load(tmp_path, {})
    assert loaded.image_names.names == ["cat", "dog"] and loaded.image_names.sure_above == 0.4
    assert torch.equal(loaded.image_names.linear.weight, adapter.image_names.linear.weight)


def test_name_words_keep_plain_singular_nouns():
    words = {"bird", "birds", "full", "moon", "dan", "red", "apple"}
    assert name_words("full_moon_dan_gerhards_01", words) == ["moon"]  # the author dropped
    assert name_words("Red apples and birds", words) == ["bird"]  # "apples": no such word
    assert "red" in name_data.NOT_NAMES and "victor" in name_data.NOT_NAMES


def test_no_training_source_draws_on_emoji():
    emoji_font = str(named_images.EMOJI_FONT.parent)
    sources = [str(name_data.STAMPS_DIR), str(name_data.CLIPART_DIR)]
    sources += [str(d) for d in vision_data.WALLPAPER_DIRS] + [str(vision_data.CLIPART_DIR)]
    assert all(not s.startswith(emoji_font) and "emoji" not in s.lower() for s in sources)


def test_classes_vote_for_the_names_among_their_words():
    from fusion.name_head import class_vote_matrix

    matrix = class_vote_matrix(["tabby cat", "tea cup", "espresso"], ["cat", "cup", "tea"])
    votes = torch.tensor([[0.5, 0.4, 0.1]]) @ matrix  # 1, K
    assert torch.allclose(votes, torch.tensor([[0.5, 0.2, 0.2]]))  # espresso: no name, no vote


def test_votes_join_the_heads_own_probabilities():
    head = NameHead(4, ["cat", "flower"], sure_above=0.5)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([0.0, 1.0]))  # the head alone: flower (0.73)
    tokens = torch.zeros(1, 3, 4)
    assert head.phrase(tokens) == "a flower"
    assert head.phrase(tokens, torch.tensor([[0.9, 0.0]])) == "a cat"  # (0.27 + 0.9) / 2
    assert head.phrase(tokens, torch.tensor([[0.0, 0.0]])) == "perhaps a flower"  # 0.37


def test_a_folder_names_a_drawing_only_when_it_names_one_thing(tmp_path):
    words = {"robin", "bird", "birds", "mammal", "mammals", "orso", "step"}
    bird = tmp_path / "animals" / "birds" / "robin_jean_01.png"
    bear = tmp_path / "animals" / "mammals" / "orso_architetto_02.png"
    star = tmp_path / "shapes" / "stars" / "star_92pt09step.png"
    assert name_data.named_drawing(bird, words).names == ("robin", "bird")
    assert name_data.named_drawing(bear, words).names == ("orso",)  # "mammal": a kind
    assert name_data.named_drawing(star, words | {"star", "stars"}).names == ("star",)
    assert name_data.named_drawing(tmp_path / "mammals" / "x.png", words) is None
