"""Projector shapes, placeholder expansion and the mask splice: media land exactly in their slots."""

import math

import pytest
import torch

from fusion.conversation import user
from fusion.placeholders import PlaceholderError, expand_placeholders, new_marker
from fusion.projector import Projector
from fusion.splice import SpliceError, splice
from tests.tiny import photo


def char_tokenize(text: str) -> list[int]:
    return [ord(c) for c in text]


# --- projector -----------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "stack"), [(7, 4), (8, 4), (1, 4), (5, 1), (50, 3)])
def test_projector_output_shape(length, stack):
    projector = Projector(in_dim=6, out_dim=10, stack=stack, hidden_dim=12)
    out = projector(torch.randn(2, length, 6))
    assert out.shape == (2, math.ceil(length / stack), 10)
    assert projector.num_output_tokens(length) == out.shape[1]


def test_projector_pads_the_last_group_with_zeros():
    torch.manual_seed(0)
    projector = Projector(in_dim=3, out_dim=5, stack=4).eval()
    features = torch.randn(1, 6, 3)  # 6 = 4 + 2: the second group holds 2 frames and 2 of padding
    padded = torch.cat([features, torch.zeros(1, 2, 3)], dim=1)
    torch.testing.assert_close(projector(features), projector(padded))


def test_projector_stacks_neighbouring_frames_in_order():
    projector = Projector(in_dim=2, out_dim=3, stack=2).eval()
    features = torch.randn(1, 4, 2)
    swapped = features[:, [1, 0, 2, 3]]  # order inside the first group matters ...
    assert not torch.allclose(projector(features)[:, 0], projector(swapped)[:, 0])
    torch.testing.assert_close(
        projector(features)[:, 1], projector(swapped)[:, 1]
    )  # ... only there


def test_projector_rejects_stack_below_one():
    with pytest.raises(ValueError, match="stack must be >= 1, got 0"):
        Projector(4, 4, stack=0)


# --- placeholders ----------------------------------------------------------------------------


def test_expand_places_requested_slot_counts_at_markers():
    marker = new_marker()
    prompt = f"ab{marker}cd{marker}{marker}e"
    expanded = expand_placeholders(prompt, marker, [3, 1, 2], char_tokenize, pad_id=0)
    slots = expanded.slots.tolist()
    assert slots == [False] * 2 + [True] * 3 + [False] * 2 + [True] * 1 + [True] * 2 + [False]
    text = [chr(i) for i, slot in zip(expanded.input_ids.tolist(), slots) if not slot]
    assert "".join(text) == "abcde"
    assert expanded.input_ids[expanded.slots].eq(0).all()


def test_expand_with_zero_slots_and_no_media():
    marker = new_marker()
    assert expand_placeholders("hello", marker, [], char_tokenize, pad_id=0).slots.sum() == 0
    expanded = expand_placeholders(f"a{marker}b", marker, [0], char_tokenize, pad_id=0)
    assert expanded.input_ids.tolist() == [ord("a"), ord("b")]


@pytest.mark.parametrize(("markers", "media"), [(1, 2), (2, 1), (0, 1)])
def test_wrong_number_of_markers_raises(markers, media):
    marker = new_marker()
    prompt = "x" + marker * markers + "y"
    with pytest.raises(PlaceholderError, match=f"{markers} media markers for {media} media"):
        expand_placeholders(prompt, marker, [4] * media, char_tokenize, pad_id=0)


def test_markers_are_fresh_each_time():
    markers = {new_marker() for _ in range(100)}
    assert len(markers) == 100
    assert all(m.startswith("<media-") and m.endswith(">") for m in markers)


# --- splice ----------------------------------------------------------------------------------


def test_splice_writes_features_at_slots_and_leaves_other_rows():
    embeddings = torch.randn(1, 8, 4)
    original = embeddings.clone()
    slots = torch.tensor([[False, True, True, False, False, True, False, False]])
    features = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    out = splice(embeddings, slots, features)
    assert out.shape == embeddings.shape
    torch.testing.assert_close(out[slots], features)  # in prompt order
    torch.testing.assert_close(out[~slots], original[~slots])
    assert torch.equal(embeddings, original)  # a new tensor: the LM's embeddings are not written


def test_splice_fills_each_batch_row_in_order():
    embeddings = torch.zeros(2, 3, 2)
    slots = torch.tensor([[True, False, True], [False, True, False]])
    features = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    out = splice(embeddings, slots, features)
    assert out[0, 0].tolist() == [1.0, 1.0] and out[0, 2].tolist() == [2.0, 2.0]
    assert out[1, 1].tolist() == [3.0, 3.0] and out[0, 1].tolist() == [0.0, 0.0]


def test_splice_count_mismatch_names_both_numbers():
    embeddings = torch.zeros(1, 60, 4)
    slots = torch.zeros(1, 60, dtype=torch.bool)
    slots[0, 5:54] = True  # 49 slots
    with pytest.raises(SpliceError, match="expected 49 media tokens, got 48"):
        splice(embeddings, slots, torch.zeros(48, 4))


def test_splice_width_mismatch_raises():
    slots = torch.tensor([[True, False]])
    with pytest.raises(SpliceError, match="width 3, the LM expects 4"):
        splice(torch.zeros(1, 2, 4), slots, torch.zeros(1, 3))


# --- through the composed model --------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    ["<image>", "<media-00000000000000000000000000000000>", "<media-", "<audio> <image>\n<image>"],
)
def test_typed_markers_never_create_slots(model, typed):
    inputs = model.build_inputs([user(typed)])
    assert inputs.prompt_tokens == {"text": inputs.embeddings.shape[1], "image": 0, "audio": 0}
    prompt = model.tokenizer.apply_chat_template(
        [{"role": "system", "content": model.system_prompt}, {"role": "user", "content": typed}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = torch.tensor([model.tokenizer.encode(prompt, add_special_tokens=False)])
    torch.testing.assert_close(inputs.embeddings, model.lm.get_input_embeddings()(ids))  # text only


def test_typed_marker_next_to_a_photo_leaves_one_photo(model):
    message = user("<media-abc> <image> what is this?", photos=[photo()])
    model.encode_media([message])
    counts = model.build_inputs([message]).prompt_tokens
    assert counts["image"] == model.vision.num_tokens
    assert counts["audio"] == 0


def test_text_colliding_with_the_fresh_marker_is_refused(model, monkeypatch):
    from encoders.errors import InputError

    monkeypatch.setattr("fusion.model.new_marker", lambda: "<media-fixed>")
    with pytest.raises(InputError, match="collides with the media marker"):
        model.build_inputs([user("look: <media-fixed>")])


def test_build_inputs_splices_projected_media(model):
    message = user("what is this?", photos=[photo(seed=3)])
    model.encode_media([message])
    inputs = model.build_inputs([message])
    projected = model.adapter.projectors["image"](message.photos[0].features)[0]  # N', D
    rows = inputs.embeddings[0]
    matches = [i for i in range(rows.shape[0]) if torch.equal(rows[i], projected[0])]
    assert len(matches) == 1
    start = matches[0]
    torch.testing.assert_close(rows[start : start + projected.shape[0]], projected)
