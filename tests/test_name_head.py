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


def test_an_icon_is_named_by_its_own_name_less_kinds(tmp_path):
    words = {"food", "fruit", "apple", "fire", "truck", "game", "icons", "park"}
    apple = tmp_path / "icons" / "streamline-plump-color" / "food-fruit-apple-1.png"
    truck = tmp_path / "icons" / "game-icons" / "fire-truck.png"
    assert name_data.named_drawing(apple, words).names == ("apple",)  # food, fruit: kinds
    assert name_data.named_drawing(truck, words).names == ("fire", "truck")  # no folder word
    assert name_data.named_drawing(tmp_path / "icons" / "mdi" / "food.png", words) is None
    # outside the icons folder the same name is a clip-art title with its folder word
    assert name_data.named_drawing(tmp_path / "park" / "fire-truck.png", words).names == (
        "fire", "truck", "park",
    )  # fmt: skip


def test_icons_are_rendered_in_a_colour_on_transparency(tmp_path):
    from PIL import Image

    from fusion.training import icon_data

    square = '<path fill="currentColor" d="M4 4h16v16H4z"/>'
    icons = {"width": 24, "height": 24, "icons": {"box": {"body": square}, "gone": {"body": square, "hidden": True}}}  # fmt: skip
    assert icon_data.render_icon_set(icons, tmp_path, seed="s") == 1
    image = Image.open(tmp_path / "box.png").convert("RGBA")
    assert image.size == (icon_data.RENDER_SIZE, icon_data.RENDER_SIZE)
    centre, corner = image.getpixel((112, 112)), image.getpixel((2, 2))
    assert corner[3] == 0 and centre[3] == 255  # transparent around, the drawing opaque
    assert max(centre[:3]) <= 0.6 * 255 + 1  # dark enough for the light view backgrounds


def test_no_emoji_icon_set_is_fetched():
    import pytest

    from fusion.training import icon_data

    assert not any(w in name for name in icon_data.ICON_SETS for w in icon_data.EMOJI_SET_WORDS)
    with pytest.raises(ValueError, match="held out"):
        icon_data.fetch_icon_set("fluent-emoji-flat", "1.0.0", "sha512-x")  # refused offline


def test_new_drawings_join_the_cached_views_without_encoding_the_others(
    tmp_path, monkeypatch, model
):
    from fusion.training import icon_data

    shape = '<path fill="currentColor" d="M4 4h16v16H4z"/>'
    ring = '<circle cx="12" cy="12" r="8" fill="none" stroke="currentColor" stroke-width="3"/>'
    icons = tmp_path / "icons"
    icon_data.render_icon_set(
        {"width": 24, "height": 24, "icons": {"box": {"body": shape}, "ring": {"body": ring}}},
        icons / "mdi",
        seed="a",
    )
    words = tmp_path / "words"
    words.write_text("box\nring\nwheel\n")
    monkeypatch.setattr(name_data, "WORDS_FILE", words)
    monkeypatch.setattr(name_data, "STAMPS_DIR", tmp_path / "no-stamps")
    monkeypatch.setattr(name_data, "CLIPART_DIR", tmp_path / "no-clipart")
    cache = tmp_path / "views.pt"
    name_data.build_name_set(model, cache, limit=10, icons=icons)
    kept = torch.load(cache, weights_only=False)
    assert len(kept["paths"]) == 2 * name_data.ICON_VIEWS and kept["features"].shape[0] == 4
    icon_data.render_icon_set(
        {"width": 24, "height": 24, "icons": {"wheel": {"body": ring}}}, icons / "mdi", seed="b"
    )
    calls = []
    encode = model.vision.encode
    monkeypatch.setattr(
        model.vision, "encode", lambda images: calls.append(len(images)) or encode(images)
    )
    named = name_data.build_name_set(model, cache, limit=10, icons=icons)
    assert calls == [name_data.ICON_VIEWS]  # only the new icon's views were encoded
    grown = torch.load(cache, weights_only=False)
    assert grown["paths"][: len(kept["paths"])] == kept["paths"]
    assert torch.equal(grown["features"][: len(kept["paths"])], kept["features"])
    assert len(grown["paths"]) == 3 * name_data.ICON_VIEWS
    # names come from the paths when the set is loaded (the vocabulary from the drawings of
    # the training split: which of the three that is depends on a hash of the paths)
    assert set(named.vocabulary) <= {"box", "ring", "wheel"}


def test_an_icon_set_whose_tarball_does_not_match_its_pin_is_refused(monkeypatch):
    import io
    import urllib.request

    import pytest

    from fusion.training import icon_data

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"other"))
    with pytest.raises(ValueError, match="is not the pinned"):
        icon_data.fetch_icon_set("mdi", *icon_data.ICON_SETS["mdi"])

    def unreachable(url, timeout):
        raise urllib.error.URLError("no route")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(OSError, match="could not fetch the icon set .*npm registry"):
        icon_data.fetch_icon_set("mdi", *icon_data.ICON_SETS["mdi"])
